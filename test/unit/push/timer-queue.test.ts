import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock.js';
import { TimerQueue } from '../../../src/push/timer-queue.js';

const T0 = Date.UTC(2026, 0, 1);

describe('TimerQueue', () => {
  it('fires each key once at its time, in time order, on one clock timer', () => {
    const clock = new ManualClock();
    const fired: [string, number][] = [];
    const q = new TimerQueue<string>(clock, (k) => fired.push([k, clock.now() - T0]));
    q.schedule('c', T0 + 300);
    q.schedule('a', T0 + 100);
    q.schedule('b', T0 + 200);
    expect(clock.pending).toBe(1);
    expect(q.size).toBe(3);
    clock.advance(1000);
    expect(fired).toEqual([
      ['a', 100],
      ['b', 200],
      ['c', 300],
    ]);
    expect(q.size).toBe(0);
    expect(clock.pending).toBe(0);
  });

  it('rescheduling moves a key (earlier or later); cancel drops it', () => {
    const clock = new ManualClock();
    const fired: string[] = [];
    const q = new TimerQueue<string>(clock, (k) => fired.push(`${k}@${clock.now() - T0}`));
    q.schedule('a', T0 + 100);
    q.schedule('b', T0 + 200);
    q.schedule('a', T0 + 500);
    q.schedule('b', T0 + 50);
    q.schedule('c', T0 + 10);
    q.cancel('c');
    expect(q.has('c')).toBe(false);
    clock.advance(1000);
    expect(fired).toEqual(['b@50', 'a@500']);
  });

  it('cancelling the last key cancels the clock timer', () => {
    const clock = new ManualClock();
    const q = new TimerQueue<string>(clock, () => {});
    q.schedule('a', T0 + 100);
    q.cancel('a');
    expect(clock.pending).toBe(0);
  });

  it('a due time in the past fires on the next turn of the clock', () => {
    const clock = new ManualClock();
    const fired: string[] = [];
    const q = new TimerQueue<string>(clock, (k) => fired.push(k));
    q.schedule('late', T0 - 5000);
    clock.advance(0);
    expect(fired).toEqual(['late']);
  });

  it('a throwing callback does not stop the others', () => {
    const clock = new ManualClock();
    const fired: string[] = [];
    const q = new TimerQueue<string>(clock, (k) => {
      if (k === 'bad') throw new Error('boom');
      fired.push(k);
    });
    q.schedule('bad', T0 + 1);
    q.schedule('good', T0 + 1);
    clock.advance(1);
    expect(fired).toEqual(['good']);
  });

  it('heavy rescheduling keeps the heap proportional to live keys and the order right', () => {
    const clock = new ManualClock();
    const fired: number[] = [];
    const q = new TimerQueue<number>(clock, (k) => fired.push(k));
    for (let round = 0; round < 20; round++) for (let k = 0; k < 1000; k++) q.schedule(k, T0 + 10_000 + ((k * 7919 + round) % 1000));
    expect(q.size).toBe(1000);
    clock.advance(20_000);
    expect(fired).toHaveLength(1000);
    expect(new Set(fired).size).toBe(1000);
  });
});
