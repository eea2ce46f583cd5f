import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock.js';
import { createMemoryStore } from '../../../src/store/memory.js';
import { MAX_CACHED_CHARS, MAX_CACHED_USERS, UserMarks } from '../../../src/tokens/user-marks.js';
import type { TokenOptions } from '../../../src/tokens/types.js';

const T0 = Date.UTC(2026, 0, 1);

function marks() {
  const clock = new ManualClock(T0);
  const store = createMemoryStore(clock);
  const o = { store, clock, accessTtl: 900, refreshTtl: 1_209_600, clockTolerance: 30 } as unknown as TokenOptions;
  return { m: new UserMarks(o), clock };
}

describe('UserMarks: the per-node cache of revoke_user_tokens marks', () => {
  it('is bounded by the characters of the user ids it holds, not only by their count', async () => {
    const { m } = marks();
    // User ids of 5,000 characters (a long `sub`): the count bound alone would allow 500 MB.
    const long = (i: number) => `${String(i).padStart(6, '0')}${'x'.repeat(4994)}`;
    const n = Math.ceil((MAX_CACHED_CHARS / 5000) * 1.5);
    for (let i = 0; i < n; i++) await m.load(long(i));
    expect(m.size.chars).toBeLessThanOrEqual(MAX_CACHED_CHARS);
    expect(m.size.users).toBe(Math.floor(MAX_CACHED_CHARS / 5000));
    // The oldest went first; the newest are cached.
    expect(m.cached(long(0))).toBeUndefined();
    expect(m.cached(long(n - 1))).toBe(0);
  });

  it('is bounded by count for short user ids', async () => {
    const { m } = marks();
    for (let i = 0; i < MAX_CACHED_USERS + 10; i++) await m.load(`u${i}`);
    expect(m.size.users).toBe(MAX_CACHED_USERS);
    expect(m.cached('u0')).toBeUndefined();
  });

  it('a user dropped from the cache still has the mark of the store', async () => {
    const { m, clock } = marks();
    await m.revoke('alice', Math.floor(T0 / 1000));
    expect(await m.get('alice')).toBe(Math.floor(T0 / 1000));
    const filler = 'y'.repeat(MAX_CACHED_CHARS - 2);
    await m.load(filler);
    expect(m.cached('alice')).toBeUndefined();
    clock.advance(1000);
    expect(await m.get('alice')).toBe(Math.floor(T0 / 1000));
    // Forgetting keeps the characters counted right: nothing is left once every entry is gone.
    m.forgetAll();
    expect(m.size).toEqual({ users: 0, chars: 0 });
  });
});
