import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpuSeconds, rssBytes, runJson, sleep } from '../lib/proc.js';
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
  checks: { rss_after_over_before: { op: '<=', limit: 1.1 } },

  async run(ctx) {
    const rate = 2000;
    const ms = ctx.quick ? 5_000 : 30_000;
    const holdMs = 100;
    const ids = sessionIds(4000);
    const fixtures = writeFixtures(ctx.tmp, 'row10-fixtures.json', ids);
    const idsFile = join(ctx.tmp, 'row10-ids.json');
    writeFileSync(idsFile, JSON.stringify(ids));
    // Upgrades that wait in a busy gateway pile up: no per-address limit may refuse them.
    const gw = await startGateway(ctx, { args: ['--fixtures', fixtures], ulimit: 20_000, env: { GATEWAY_MAX_CONNECTIONS_PER_ADDRESS: '20000' } });
    try {
      const churn = (churnMs) =>
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
              holdMs,
              addresses: ADDRESSES,
            }),
          ],
          { ulimit: 20_000, timeoutMs: churnMs + 60_000 },
        );
      // A short churn first (the JIT, the heap grown to the load), then the measured one.
      await churn(ctx.quick ? 1_000 : 3_000);
      await sleep(2000);
      const before = rssBytes(gw.child.pid);
      const cpu0 = cpuSeconds(gw.child.pid);
      const r = await churn(ms);
      const cpuPerConnection = (cpuSeconds(gw.child.pid) - cpu0) / r.upgraded;
      await sleep(3000);
      const after = rssBytes(gw.child.pid);
      ctx.log(
        `  ${r.upgraded}/${r.total} upgraded in ${r.seconds.toFixed(1)} s, ${r.failed} failed, ${r.serverClosed} closed by the gateway; upgrade p50 ${r.p50?.toFixed(2)}, p99 ${r.p99?.toFixed(2)}, max ${r.max?.toFixed(1)} ms; RSS ${(before / 2 ** 20).toFixed(1)} -> ${(after / 2 ** 20).toFixed(1)} MB; generator CPU ${Math.round(r.genCpu * 100)}%; gateway CPU ${(cpuPerConnection * 1e6).toFixed(0)} µs per connection`,
      );
      if (r.failed > 0 || r.serverClosed > 0 || r.upgraded !== r.total)
        throw new Error(`row 10: ${r.upgraded} of ${r.total} upgraded, ${r.failed} failed (${r.firstError}), ${r.serverClosed} closed by the gateway`);
      return {
        runs: 1,
        value: r.p99,
        note: `${ms / 1000} s at ${rate} a second (open loop, times from each scheduled start), each connection held ${holdMs} ms then closed with a close handshake, from ${ADDRESSES.length} loopback source addresses, ${ids.length} sessions (memory store), GATEWAY_MAX_CONNECTIONS_PER_ADDRESS raised to 20,000; RSS after 3 s of rest against RSS after a 3 s warm-up churn`,
        extra: {
          p50_ms: +r.p50.toFixed(3),
          max_ms: +r.max.toFixed(1),
          rss_before_mb: +(before / 2 ** 20).toFixed(1),
          rss_after_mb: +(after / 2 ** 20).toFixed(1),
          rss_after_over_before: +(after / before).toFixed(3),
          generator_cpu_pct_of_core: Math.round(r.genCpu * 100),
          gateway_cpu_us_per_connection: Math.round(cpuPerConnection * 1e6),
        },
      };
    } finally {
      await gw.stop();
    }
  },
};
