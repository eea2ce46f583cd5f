import fc from 'fast-check';
import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { HotHistogram, PendingCounts } from '../../src/hot-metrics.js';

const BUCKETS = [0.0001, 0.001, 0.01, 0.1, 1];

/** The same two metrics, once as prom-client makes them and once as the hot path counts them. */
function pair() {
  const plain = new Registry();
  const counter = new Counter({ name: 'm_total', help: 'h', labelNames: ['type', 'outcome'], registers: [plain] });
  const histogram = new Histogram({ name: 'd_seconds', help: 'h', labelNames: ['type'], buckets: BUCKETS, registers: [plain] });
  const byTwo = new Histogram({ name: 'op_seconds', help: 'h', labelNames: ['op', 'outcome'], buckets: BUCKETS, registers: [plain] });
  const hot = new Registry();
  const counted: { counts?: PendingCounts } = {};
  const hotCounter = new Counter({ name: 'm_total', help: 'h', labelNames: ['type', 'outcome'], registers: [hot], collect: () => counted.counts?.flush() });
  counted.counts = new PendingCounts(hotCounter);
  const hotHistogram = new HotHistogram({ name: 'd_seconds', help: 'h', labels: ['type'], buckets: BUCKETS, registers: [hot] });
  const hotByTwo = new HotHistogram({ name: 'op_seconds', help: 'h', labels: ['op', 'outcome'], buckets: BUCKETS, registers: [hot] });
  return {
    plain,
    hot,
    record(type: string, outcome: string, seconds: number) {
      counter.inc({ type, outcome });
      histogram.observe({ type }, seconds);
      counted.counts!.add(type, outcome);
      hotHistogram.observe(seconds, type);
      // The store's histogram: by operation (here the type) and outcome.
      byTwo.observe({ op: type, outcome }, seconds);
      hotByTwo.observe(seconds, type, outcome);
    },
  };
}

describe('hot metrics', () => {
  it('expose exactly what prom-client exposes for the same requests, scrape after scrape', async () => {
    const type = fc.constantFrom('validate_session', 'verify_token', 'create_session', 'a"b\\c\n');
    const outcome = fc.constantFrom('session_valid', 'session_invalid', 'error_11');
    const seconds = fc.oneof(fc.constantFrom(0, 0.0001, 0.001, 1, 5), fc.double({ min: 0, max: 2, noNaN: true }));
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(fc.tuple(type, outcome, seconds), { maxLength: 40 }), { minLength: 1, maxLength: 4 }), async (scrapes) => {
        const p = pair();
        for (const requests of scrapes) {
          for (const [t, o, s] of requests) p.record(t, o, s);
          expect(await p.hot.metrics()).toBe(await p.plain.metrics());
          expect(await p.hot.getMetricsAsJSON()).toEqual(await p.plain.getMetricsAsJSON());
        }
      }),
      { numRuns: 300 },
    );
  });

  it('counts each request once however often it is scraped', async () => {
    const p = pair();
    for (let i = 0; i < 5; i++) p.record('validate_session', 'session_valid', 0.0002);
    await p.hot.metrics();
    await p.hot.metrics();
    expect(await p.hot.metrics()).toContain('m_total{type="validate_session",outcome="session_valid"} 5');
    expect(await p.hot.metrics()).toContain('d_seconds_count{type="validate_session"} 5');
    expect(await p.hot.metrics()).toContain('op_seconds_count{op="validate_session",outcome="session_valid"} 5');
  });

  it('forgets everything on a registry reset', async () => {
    const p = pair();
    p.record('validate_session', 'session_valid', 0.0002);
    p.hot.resetMetrics();
    expect(await p.hot.metrics()).not.toContain('d_seconds_count{type="validate_session"}');
    expect(await p.hot.metrics()).not.toContain('op_seconds_count');
    // Counting again after the reset starts the series afresh, as prom-client does.
    p.record('validate_session', 'error_11', 0.5);
    expect(await p.hot.metrics()).toContain('op_seconds_count{op="validate_session",outcome="error_11"} 1');
    expect(await p.hot.metrics()).not.toContain('op_seconds_count{op="validate_session",outcome="session_valid"}');
  });
});
