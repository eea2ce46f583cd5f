import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock.js';
import { FailedAuthThrottle } from '../../../src/transports/auth-throttle.js';
import { AddressBudget } from '../../../src/transports/ws/address-budget.js';

describe('AddressBudget', () => {
  it('gives each address perMinute, refilled continuously, independently of the others', () => {
    const clock = new ManualClock();
    const b = new AddressBudget({ perMinute: 3, clock });
    expect([b.take('a'), b.take('a'), b.take('a'), b.take('a')]).toEqual([true, true, true, false]);
    expect(b.take('b')).toBe(true);
    clock.advance(10_000); // half a token
    expect(b.take('a')).toBe(false);
    clock.advance(10_000); // the other half
    expect([b.take('a'), b.take('a')]).toEqual([true, false]);
    clock.advance(600_000); // a long pause refills to one minute's worth, no more
    expect([b.take('a'), b.take('a'), b.take('a'), b.take('a')]).toEqual([true, true, true, false]);
  });

  it('holds at most maxAddresses; sweep forgets the addresses whose budget is full again', () => {
    const clock = new ManualClock();
    const b = new AddressBudget({ perMinute: 2, clock, maxAddresses: 100 });
    for (let i = 0; i < 1000; i++) b.take(`10.0.${i >> 8}.${i & 255}`);
    expect(b.size).toBeLessThanOrEqual(100);
    clock.advance(60_000);
    b.sweep();
    expect(b.size).toBe(0);
  });

  it('refuses a bad option at construction', () => {
    for (const perMinute of [0, -1, 1.5, Number.NaN]) {
      expect(() => new AddressBudget({ perMinute, clock: new ManualClock() })).toThrow('The perMinute option must be a positive integer.');
    }
  });
});

describe('per-address tables once full', () => {
  /** A ManualClock that counts its reads: a sweep of the whole table reads it once. */
  const countingClock = () => {
    const clock = new ManualClock();
    let reads = 0;
    const now = clock.now.bind(clock);
    clock.now = () => (reads++, now());
    return { clock, reads: () => reads };
  };

  it('a new address in a full table sweeps it at most once a second, then forgets the oldest (no whole-table visit per address)', () => {
    // Clock reads per new address in a full table: the budget's own, or the throttle's two (its
    // table's and the failure's time); a sweep adds one.
    for (const [perAddress, make] of [
      [
        1,
        (clock: ManualClock) => {
          const b = new AddressBudget({ perMinute: 1, clock, maxAddresses: 1000 });
          return (a: string) => void b.take(a);
        },
      ],
      [
        2,
        (clock: ManualClock) => {
          const t = new FailedAuthThrottle({ limit: 1, clock, maxAddresses: 1000 });
          return (a: string) => t.fail(a);
        },
      ],
    ] as const) {
      const { clock, reads } = countingClock();
      const hit = make(clock);
      // 1,000 addresses that no sweep can forget (each spent its budget within the minute).
      for (let i = 0; i < 1000; i++) hit(`10.0.${i >> 8}.${i & 255}`);
      const before = reads();
      for (let i = 0; i < 1000; i++) hit(`10.1.${i >> 8}.${i & 255}`);
      // Its reads per address, and one for the single sweep of that second.
      expect(reads() - before).toBe(1000 * perAddress + 1);
      clock.advance(1000);
      const later = reads();
      hit('10.2.0.1');
      hit('10.2.0.2');
      expect(reads() - later).toBe(2 * perAddress + 1);
    }
  });
});
