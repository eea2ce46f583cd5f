import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { collectGarbage } from '../lib/inspector.js';
import { cpuSeconds, freePort, rssBytes, runJson, sleep } from '../lib/proc.js';
import { startGateway } from '../lib/servers.js';
import { sessionIds, writeFixtures } from '../lib/workload.js';

/** Loopback source addresses no other row uses: the local ports of closed connections stay in TIME_WAIT for a minute. */
const ADDRESSES = Array.from({ length: 8 }, (_, i) => `127.0.2.${i + 2}`);

export const row = {
  id: 10,
  what: 'connection churn: 2,000 bound browser connections opened and closed a second: p99 upgrade time',
  unit: 'ms',
  baselineWhat: null,
  target: { on: 'value', op: '<=', limit: 20 },
  // RSS after a full collection (see docs/benchmarks.md, row 10's memory): what the gateway
  // holds after the churn against before it, and a second equal churn must not add to it.
  checks: { rss_after_over_before: { op: '<=', limit: 1.1 }, rss_second_over_first: { op: '<=', limit: 1.05 } },

  async run(ctx) {
    const rate = 2000;
    const ms = ctx.quick ? 5_000 : 30_000;
    const warmMs = ctx.quick ? 2_000 : 5_000;
    // The measured churn's generator first runs this long at the same rate, unmeasured.
    const rampMs = ctx.quick ? 1_000 : 2_000;
    const secondMs = ctx.quick ? 5_000 : 15_000;
    const holdMs = 100;
    const ids = sessionIds(4000);
    const fixtures = writeFixtures(ctx.tmp, 'row10-fixtures.json', ids);
    const idsFile = join(ctx.tmp, 'row10-ids.json');
    writeFileSync(idsFile, JSON.stringify(ids));
    // Upgrades that wait in a busy gateway pile up: no per-address limit may refuse them.
    const inspectPort = await freePort();
    const gw = await startGateway(ctx, {
      args: ['--fixtures', fixtures],
      nodeArgs: [`--inspect=127.0.0.1:${inspectPort}`],
      ulimit: 20_000,
      env: { GATEWAY_MAX_CONNECTIONS_PER_ADDRESS: '20000' },
    });
    try {
      const churn = (churnMs, ramp = 0) =>
        runJson(
          'node',
          [
            ctx.gen('ws-churn.js'),
            JSON.stringify({
              url: gw.url,
              origin: `http://127.0.0.1:${gw.port}`,
              ids: idsFile,
              cookie: 'sid',
              rate,
              ms: churnMs,
              rampMs: ramp,
              holdMs,
              addresses: ADDRESSES,
            }),
          ],
          { ulimit: 20_000, timeoutMs: ramp + churnMs + 60_000 },
        );
      /** RSS at rest (as V8 left its heap), then after a full collection (what the gateway holds). */
      const rss = async (restMs) => {
        await sleep(restMs);
        const rest = rssBytes(gw.child.pid);
        await collectGarbage(inspectPort);
        return { rest, held: rssBytes(gw.child.pid) };
      };
      // A warm-up churn first (the JIT, the allocator's arenas grown to the load), then the
      // measured one, then a second as long: memory a leak keeps grows again with it.
      await churn(warmMs);
      const before = await rss(2000);
      const cpu0 = cpuSeconds(gw.child.pid);
      const r = await churn(ms, rampMs);
      const cpuPerConnection = (cpuSeconds(gw.child.pid) - cpu0) / r.opened;
      const after = await rss(3000);
      // Long enough to churn the connections over many times; only memory is read from it.
      const r2 = await churn(secondMs);
      const second = await rss(3000);
      const mb = (/** @type {number} */ b) => +(b / 2 ** 20).toFixed(1);
      ctx.log(
        `  ${r.upgraded}/${r.total} upgraded in ${r.seconds.toFixed(1)} s, ${r.failed} failed, ${r.serverClosed} closed by the gateway; upgrade p50 ${r.p50?.toFixed(2)}, p99 ${r.p99?.toFixed(2)}, max ${r.max?.toFixed(1)} ms; generator CPU ${Math.round(r.genCpu * 100)}%, its event-loop delay p99 ${r.genLagP99.toFixed(1)}, max ${r.genLagMax.toFixed(1)} ms; gateway CPU ${(cpuPerConnection * 1e6).toFixed(0)} µs per connection`,
      );
      ctx.log(
        `  RSS after a full collection: ${mb(before.held)} MB before, ${mb(after.held)} after, ${mb(second.held)} after the second churn (${r2.upgraded}/${r2.total} upgraded, p99 ${r2.p99?.toFixed(2)} ms); at rest: ${mb(before.rest)} -> ${mb(after.rest)} -> ${mb(second.rest)} MB`,
      );
      if (r.failed > 0 || r.serverClosed > 0 || r.upgraded !== r.total)
        throw new Error(`row 10: ${r.upgraded} of ${r.total} upgraded, ${r.failed} failed (${r.firstError}), ${r.serverClosed} closed by the gateway`);
      return {
        runs: 1,
        value: r.p99,
        note: `${ms / 1000} s at ${rate} a second measured, after ${rampMs / 1000} s at the same rate from the same generator process unmeasured (open loop, times from each scheduled start), each connection held ${holdMs} ms then closed with a close handshake, from ${ADDRESSES.length} loopback source addresses, ${ids.length} sessions (memory store), GATEWAY_MAX_CONNECTIONS_PER_ADDRESS raised to 20,000; RSS after a full collection (through the inspector): after a ${warmMs / 1000} s warm-up churn, after the measured churn, after a second ${secondMs / 1000} s churn; RSS at rest (no collection) also reported`,
        extra: {
          p50_ms: +r.p50.toFixed(3),
          max_ms: +r.max.toFixed(1),
          rss_before_mb: mb(before.held),
          rss_after_mb: mb(after.held),
          rss_second_mb: mb(second.held),
          rss_after_over_before: +(after.held / before.held).toFixed(3),
          rss_second_over_first: +(second.held / after.held).toFixed(3),
          rss_rest_before_mb: mb(before.rest),
          rss_rest_after_mb: mb(after.rest),
          rss_rest_second_mb: mb(second.rest),
          // Only memory is read from the second churn: its failures (a loaded machine) are reported, not judged.
          second_churn_not_upgraded: r2.total - r2.upgraded,
          generator_cpu_pct_of_core: Math.round(r.genCpu * 100),
          generator_lag_p99_ms: +r.genLagP99.toFixed(1),
          generator_lag_max_ms: +r.genLagMax.toFixed(1),
          gateway_cpu_us_per_connection: Math.round(cpuPerConnection * 1e6),
        },
      };
    } finally {
      await gw.stop();
    }
  },
};
