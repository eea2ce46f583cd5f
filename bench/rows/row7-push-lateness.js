import { paired } from '../lib/paired.js';
import { runJson } from '../lib/proc.js';

export const row = {
  id: 7,
  what: '100,000 subscribed sessions ending over 10 s: p99 push lateness (stdio)',
  unit: 'ms',
  baselineWhat: null,
  target: { on: 'value', op: '<=', limit: 50 },

  async run(ctx) {
    const n = ctx.quick ? 10_000 : 100_000;
    const spreadMs = ctx.quick ? 1_000 : 10_000;
    const ttl = ctx.quick ? 2 : 12;
    const runs = ctx.quick ? 1 : 2;
    /** @type {any} */
    let last;
    const res = await paired(
      runs,
      async () => {
        const r = await runJson('node', [
          ctx.gen('push-lateness.js'),
          JSON.stringify({ cmd: 'node', args: [ctx.cli, 'stdio'], env: ctx.gatewayEnv({ GATEWAY_MAX_SUBSCRIPTIONS: String(2 * n) }), n, spreadMs, ttl }),
        ]);
        if (r.subscribed !== n || r.invalid !== 0) throw new Error(`row 7: ${r.subscribed} of ${n} subscribed, ${r.invalid} unexpected replies`);
        last = r;
        return { value: r.p99, p50: r.p50, max: r.max, received: r.received, gatewayCpu: r.gatewayCpu };
      },
      null,
      ctx.log,
    );
    const missing = res.g.reduce((a, r) => a + (n - r.received), 0);
    return {
      runs,
      value: res.gateway,
      baseline: null,
      ratio: null,
      note: `${n.toLocaleString('en')} sessions created evenly over ${spreadMs / 1000} s with ttl ${ttl} s, each subscribed; lateness = arrival - lower bound of the scheduled end (overstates, never understates); ${runs} runs, pushes missing: ${missing}`,
      extra: { p50_ms: last.p50, max_ms: Math.max(...res.g.map((r) => r.max)) },
    };
  },
};
