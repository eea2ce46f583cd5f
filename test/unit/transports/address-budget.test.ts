import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock.js';
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
