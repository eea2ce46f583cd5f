import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ManualClock, systemClock } from '../../src/clock.js';

describe('ManualClock', () => {
  it('starts at 2026-01-01 unless told, and moves only when advanced', () => {
    expect(new ManualClock().now()).toBe(Date.UTC(2026, 0, 1));
    const c = new ManualClock(1000);
    expect(c.now()).toBe(1000);
    c.advance(250);
    expect(c.now()).toBe(1250);
  });

  it('fires timers in time order, each at its own time, including timers set while advancing', () => {
    const c = new ManualClock(0);
    const seen: string[] = [];
    c.setTimer(() => seen.push(`b@${c.now()}`), 200);
    c.setTimer(() => {
      seen.push(`a@${c.now()}`);
      c.setTimer(() => seen.push(`a2@${c.now()}`), 50);
    }, 100);
    c.setTimer(() => seen.push(`same@${c.now()}`), 200);
    const cancelled = c.setTimer(() => seen.push('never'), 10);
    cancelled.cancel();
    expect(c.pending).toBe(3);
    c.advance(1000);
    expect(seen).toEqual(['a@100', 'a2@150', 'b@200', 'same@200']);
    expect(c.pending).toBe(0);
    expect(c.now()).toBe(1000);
  });
});

describe('systemClock', () => {
  it('reads wall time', () => {
    const before = Date.now();
    expect(systemClock.now()).toBeGreaterThanOrEqual(before);
  });

  it('fires and cancels', async () => {
    let fired = 0;
    await new Promise<void>((r) => systemClock.setTimer(() => (fired++, r()), 5));
    const h = systemClock.setTimer(() => fired++, 5);
    h.cancel();
    await new Promise((r) => setTimeout(r, 30));
    expect(fired).toBe(1);
  });

  it('pending timers (clock, store sweep, timer queue) never keep the process alive (needs dist/: npx tsc -p .)', () => {
    const dist = new URL('../../dist/', import.meta.url).href;
    const script = `
      const { systemClock } = await import('${dist}clock.js');
      const { createMemoryStore } = await import('${dist}store/memory.js');
      const { TimerQueue } = await import('${dist}push/timer-queue.js');
      systemClock.setTimer(() => { process.exitCode = 3; }, 60_000);
      const store = createMemoryStore(systemClock);
      await store.set('k', 1, 3_600_000);
      new TimerQueue(systemClock, () => { process.exitCode = 4; }).schedule('k', Date.now() + 60_000);`;
    const started = Date.now();
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { timeout: 10_000, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it("a cancelled timer leaves nothing behind in Node's timer lists (needs dist/: npx tsc -p .)", () => {
    // Node keeps one list per distinct delay. A TimerQueue arms a new delay each time it fills
    // again (the time left to a session's end), so a list left behind by a cancel would stay as
    // long as that delay: one per bound connection on a quiet gateway. Only Node's internals
    // can count the lists, hence a child with --expose-internals.
    const script = `
      import { createRequire } from 'node:module';
      const { timerListMap } = createRequire(import.meta.url)('internal/timers');
      const { systemClock } = await import(${JSON.stringify(new URL('../../dist/clock.js', import.meta.url).href)});
      const lists = () => Object.keys(timerListMap).length;
      const before = lists();
      for (let i = 0; i < 1000; i++) systemClock.setTimer(() => {}, 3_600_000 + i).cancel();
      const cancelled = lists();
      // Cancelling a timer that has already fired changes nothing.
      let fired = 0;
      const done = systemClock.setTimer(() => fired++, 1);
      await new Promise((r) => setTimeout(r, 30));
      done.cancel();
      console.log(JSON.stringify({ before, cancelled, fired, after: lists() }));
    `;
    const r = spawnSync(process.execPath, ['--expose-internals', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 10_000 });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ before: 0, cancelled: 0, fired: 1, after: 0 });
  });
});

describe('systemClock beyond setTimeout range', () => {
  it('a deadline months away neither spins nor warns (Node would turn it into 1 ms)', () => {
    // A child: a one-year timer, 300 ms of waiting; it must not fire and must print nothing.
    const script = `
      import { systemClock } from ${JSON.stringify(new URL('../../dist/clock.js', import.meta.url).href)};
      let fired = 0;
      systemClock.setTimer(() => fired++, 365 * 24 * 3600 * 1000);
      const keep = setTimeout(() => { console.log(JSON.stringify({ fired })); }, 300);
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 10_000 });
    expect(r.stderr).not.toContain('TimeoutOverflowWarning');
    expect(JSON.parse(r.stdout)).toEqual({ fired: 0 });
  });
});
