import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock.js';
import { TokenBucketTable } from '../../../src/transports/ws/rate-limit.js';

describe('TokenBucketTable', () => {
  it('each bucket starts full, refills at its own rate up to its size, and is charged on its own', () => {
    const clock = new ManualClock(1_000_000);
    const t = new TokenBucketTable(
      [
        { rate: 3, perMs: 1000 },
        { rate: 2, perMs: 60_000 },
      ],
      clock,
    );
    const b = t.open();
    expect([t.take(b, 0), t.take(b, 0), t.take(b, 0), t.take(b, 0)]).toEqual([true, true, true, false]);
    expect([t.take(b, 1), t.take(b, 1), t.take(b, 1)]).toEqual([true, true, false]);
    clock.advance(333); // 0.999 of a token: not yet one
    expect(t.take(b, 0)).toBe(false);
    clock.advance(1); // one whole token
    expect([t.take(b, 0), t.take(b, 0)]).toEqual([true, false]);
    clock.advance(10_000); // far more than a bucketful: full, never more
    expect([t.take(b, 0), t.take(b, 0), t.take(b, 0), t.take(b, 0)]).toEqual([true, true, true, false]);
    expect(t.take(b, 1)).toBe(false); // 10.3 s is a third of one token at 2 a minute
    clock.advance(20_000);
    expect([t.take(b, 1), t.take(b, 1)]).toEqual([true, false]);
  });

  it('spend charges in full down to a debt of one bucketful, and refuses while in debt', () => {
    const clock = new ManualClock(5_000);
    const t = new TokenBucketTable([{ rate: 100, perMs: 1000 }], clock);
    const b = t.open();
    expect(t.spend(b, 0, 250)).toBe(true); // was not in debt: paid in full, now -100 (the floor)
    expect(t.spend(b, 0, 1)).toBe(false);
    clock.advance(1000); // +100: back to 0, still not above it
    expect(t.spend(b, 0, 1)).toBe(false);
    clock.advance(1000); // from -1 to 99
    expect(t.spend(b, 0, 50)).toBe(true);
    expect(t.spend(b, 0, 50)).toBe(true); // 49 left before it: not in debt
    expect(t.spend(b, 0, 1)).toBe(false);
  });

  it('keeps each row apart, through growth past its first size, and gives a released row back full', () => {
    const clock = new ManualClock(0);
    const t = new TokenBucketTable([{ rate: 2, perMs: 1000 }], clock, 2);
    const first = t.open();
    const second = t.open();
    expect([t.take(first, 0), t.take(first, 0)]).toEqual([true, true]); // emptied before the table grows
    const rows = [first, second, ...Array.from({ length: 98 }, () => t.open())];
    expect(new Set(rows).size).toBe(100);
    expect(t.size).toBe(100);
    expect(t.take(first, 0)).toBe(false); // still empty after growing
    for (const r of rows.slice(1)) expect([t.take(r, 0), t.take(r, 0), t.take(r, 0)]).toEqual([true, true, false]);
    const emptied = rows[10]!;
    t.release(emptied);
    expect(t.size).toBe(99);
    const again = t.open(); // the released row, reused, full again
    expect(again).toBe(emptied);
    expect([t.take(again, 0), t.take(again, 0), t.take(again, 0)]).toEqual([true, true, false]);
    expect(t.size).toBe(100);
  });

  it('refuses a rate that is not finite and positive', () => {
    const clock = new ManualClock(0);
    for (const r of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => new TokenBucketTable([{ rate: r, perMs: 1000 }], clock)).toThrow(RangeError);
      expect(() => new TokenBucketTable([{ rate: 1, perMs: r }], clock)).toThrow(RangeError);
    }
  });
});
