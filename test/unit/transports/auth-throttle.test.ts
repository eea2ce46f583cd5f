/**
 * The failed-auth throttle holds at most `maxAddresses` tallies. An address forgotten to make
 * room for another (many distinct addresses) may have attempts waiting for room (`enter`, the
 * back-channel logout route): they are refused then (429), not left waiting for ever, which
 * would leave their requests unanswered and a drain waiting for them.
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock.js';
import { FailedAuthThrottle } from '../../../src/transports/auth-throttle.js';
import { settle } from '../harness.js';

describe('FailedAuthThrottle at maxAddresses', () => {
  it('refuses the waiting attempts of an address it forgets to make room for another', async () => {
    const clock = new ManualClock();
    const t = new FailedAuthThrottle({ limit: 1, clock, maxAddresses: 2 });
    expect(await t.enter('a')).toBe(true);
    const outcomes: boolean[] = [];
    // Past the limit: these wait for the one in flight.
    for (let i = 0; i < 3; i++) void t.enter('a').then((admitted) => outcomes.push(admitted));
    await settle();
    expect(outcomes).toEqual([]);
    // Two more addresses: 'a', the oldest, is forgotten.
    expect(await t.enter('b')).toBe(true);
    expect(await t.enter('c')).toBe(true);
    await settle();
    expect(outcomes).toEqual([false, false, false]);
    expect(t.size).toBe(2);
  });

  it('keeps an address it has room for: its waiting attempts are admitted in turn', async () => {
    const clock = new ManualClock();
    const t = new FailedAuthThrottle({ limit: 1, clock, maxAddresses: 2 });
    expect(await t.enter('a')).toBe(true);
    const outcomes: boolean[] = [];
    void t.enter('a').then((admitted) => outcomes.push(admitted));
    expect(await t.enter('b')).toBe(true);
    t.finish('a', false);
    await settle();
    expect(outcomes).toEqual([true]);
  });
});
