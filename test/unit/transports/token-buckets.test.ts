import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock.js';
import { TokenBuckets } from '../../../src/transports/ws/rate-limit.js';

describe('TokenBuckets', () => {
  it('each bucket starts full, refills at its own rate up to its size, and is charged on its own', () => {
    const clock = new ManualClock(1_000_000);
    const b = new TokenBuckets(
      [
        { rate: 3, perMs: 1000 },
        { rate: 2, perMs: 60_000 },
      ],
      clock,
    );
    expect([b.take(0), b.take(0), b.take(0), b.take(0)]).toEqual([true, true, true, false]);
    expect([b.take(1), b.take(1), b.take(1)]).toEqual([true, true, false]);
    clock.advance(333); // 0.999 of a token: not yet one
    expect(b.take(0)).toBe(false);
    clock.advance(1); // one whole token
    expect([b.take(0), b.take(0)]).toEqual([true, false]);
    clock.advance(10_000); // far more than a bucketful: full, never more
    expect([b.take(0), b.take(0), b.take(0), b.take(0)]).toEqual([true, true, true, false]);
    expect(b.take(1)).toBe(false); // 10.3 s is a third of one token at 2 a minute
    clock.advance(20_000);
    expect([b.take(1), b.take(1)]).toEqual([true, false]);
  });

  it('spend charges in full down to a debt of one bucketful, and refuses while in debt', () => {
    const clock = new ManualClock(5_000);
    const b = new TokenBuckets([{ rate: 100, perMs: 1000 }], clock);
    expect(b.spend(0, 250)).toBe(true); // was not in debt: paid in full, now -100 (the floor)
    expect(b.spend(0, 1)).toBe(false);
    clock.advance(1000); // +100: back to 0, still not above it
    expect(b.spend(0, 1)).toBe(false);
    clock.advance(1000); // from -1 to 99
    expect(b.spend(0, 50)).toBe(true);
    expect(b.spend(0, 50)).toBe(true); // 49 left before it: not in debt
    expect(b.spend(0, 1)).toBe(false);
  });

  it('refuses a rate that is not finite and positive', () => {
    const clock = new ManualClock(0);
    for (const r of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => new TokenBuckets([{ rate: r, perMs: 1000 }], clock)).toThrow(RangeError);
      expect(() => new TokenBuckets([{ rate: 1, perMs: r }], clock)).toThrow(RangeError);
    }
  });
});
