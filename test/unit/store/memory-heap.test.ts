import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

/**
 * Heap check in a child process with --expose-gc (needs dist/: npx tsc -p .): 100,000 sessions
 * created and expired on a ManualClock give their memory back once the sweep has passed.
 */
describe('memory store heap', () => {
  it('100,000 created-and-expired sessions: heap back near where it started', () => {
    const dist = new URL('../../../dist/', import.meta.url).href;
    const script = `
      const { ManualClock } = await import('${dist}clock.js');
      const { Gateway } = await import('${dist}gateway.js');
      const { silentLogger } = await import('${dist}log.js');
      const { createMemoryStore } = await import('${dist}store/memory.js');
      const clock = new ManualClock();
      const store = createMemoryStore(clock);
      const gateway = new Gateway({ store, clock, log: silentLogger(), nodeId: 'g', sessionTtl: 60, sessionIdleTimeout: 0,
        accessTokenTtl: 900, refreshTokenTtl: 3600, clockTolerance: 30, jwtKeys: [{ secret: Buffer.alloc(32, 7) }], maxInFlight: 64, maxSubscriptions: 10 });
      const heap = () => { global.gc(); global.gc(); return process.memoryUsage().heapUsed; };
      // Warm up code paths so JIT and caches are not counted as session memory.
      for (let i = 0; i < 1000; i++) await gateway.sessions.create('warm' + i, { i });
      clock.advance(60_000 + 5_100);
      const before = heap();
      for (let i = 0; i < 100_000; i++) await gateway.sessions.create('user' + (i % 1000), { i });
      const full = heap();
      clock.advance(60_000 + 5_100);
      const after = heap();
      console.log(JSON.stringify({ size: store.size(), before, full, after }));
      await gateway.close();`;
    const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const m = JSON.parse(r.stdout) as { size: number; before: number; full: number; after: number };
    console.log(
      `heap: before ${(m.before / 1e6).toFixed(1)} MB, with 100k sessions ${(m.full / 1e6).toFixed(1)} MB, after expiry ${(m.after / 1e6).toFixed(1)} MB`,
    );
    expect(m.size).toBe(0);
    expect(m.full - m.before).toBeGreaterThan(10e6); // the sessions really were held
    expect(m.after - m.before).toBeLessThan(0.1 * (m.full - m.before));
  }, 90_000);
});
