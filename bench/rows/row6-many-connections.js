import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { median } from '../lib/stats.js';
import { cpuSeconds, runJson, sleep } from '../lib/proc.js';
import { startGateway } from '../lib/servers.js';
import { sessionIds, writeFixtures } from '../lib/workload.js';

const ms2 = (x) => (x === null ? 'inf' : x.toFixed(2));
const pct = (x) => `${Math.round(x * 100)}%`;

export const row = {
  id: 6,
  what: '5,000 WebSocket connections, each bound to a session, 20k msgs/s offered: p99 latency',
  unit: 'ms',
  baselineWhat: null,
  target: { on: 'value', op: '<=', limit: 5 },

  async run(ctx) {
    const connections = 5000;
    const rate = 20_000;
    const ms = ctx.quick ? 2_000 : 10_000;
    const runs = ctx.quick ? 1 : 3;
    // Half the measured window: whatever the connect and warm-up took, at least one whole
    // round of pings (and their pongs) falls inside it.
    const heartbeatSeconds = Math.max(1, Math.floor(ms / 2000));
    const ids = sessionIds(connections);
    const fixtures = writeFixtures(ctx.tmp, 'row6-fixtures.json', ids);
    const idsFile = join(ctx.tmp, 'row6-ids.json');
    writeFileSync(idsFile, JSON.stringify(ids));
    const measure = async (i, runs, nodeArgs) => {
      // 5,000 users, all from 127.0.0.1 here: lift the per-address cap (256) above them. The
      // heartbeat pings each connection once per interval.
      const gw = await startGateway(ctx, {
        args: ['--fixtures', fixtures],
        nodeArgs,
        ulimit: 16384,
        env: { GATEWAY_MAX_CONNECTIONS_PER_ADDRESS: String(2 * connections), GATEWAY_HEARTBEAT_INTERVAL: String(heartbeatSeconds) },
      });
      try {
        await sleep(500);
        const cpu0 = cpuSeconds(gw.child.pid);
        const r = await runJson(
          'node',
          [
            ctx.gen('ws-paced.js'),
            JSON.stringify({
              url: gw.url,
              serverPid: gw.child.pid,
              ids: idsFile,
              cookie: 'sid',
              connections,
              rate,
              ms,
              warmMs: ctx.quick ? 500 : 3000,
              idleMs: ctx.quick ? 1000 : 2000,
            }),
          ],
          { ulimit: 16384 },
        );
        r.gatewayCpu = cpuSeconds(gw.child.pid) - cpu0;
        if (r.connections !== connections || r.closedEarly > 0 || r.unexpected > 0)
          throw new Error(`row 6: ${r.connections} connections, ${r.closedEarly} closed early, ${r.unexpected} unexpected replies`);
        // The window must hold the heartbeat's work: a run without a ping measured something else.
        if (r.pings === 0) throw new Error(`row 6: no heartbeat ping during the measured ${ms / 1000} s (interval ${heartbeatSeconds} s)`);
        ctx.log(
          `  run ${i + 1}/${runs}: ${r.answered}/${r.expected} answered; p50 ${ms2(r.p50)}, p99 ${ms2(r.p99)}, p99.9 ${ms2(r.p999)}, max ${ms2(r.max)} ms; ${r.pings} heartbeat pings answered (${r.pingedConnections} connections); gateway CPU ${pct(r.serverCpu)}, generator CPU ${pct(r.genCpu)} of a core; RSS +${((r.rssIdle - r.rssBefore) / connections).toFixed(0)} B per idle connection`,
        );
        return r;
      } finally {
        await gw.stop();
      }
    };
    const results = [];
    for (let i = 0; i < runs; i++) results.push(await measure(i, runs, []));
    const perConn = median(results.map((r) => (r.rssIdle - r.rssBefore) / connections));
    return {
      runs,
      value: median(results.map((r) => r.p99)),
      baseline: null,
      ratio: null,
      note: `browser connections (cookie-bound, rate-limited role), open loop from scheduled send times, ${ms / 1000} s measured after warm-up, ${runs} run(s); heartbeat every ${heartbeatSeconds} s, so at least one whole round of pings falls in the measured run; generator and gateway each raise their open-file limit`,
      extra: {
        p50_ms: +median(results.map((r) => r.p50)).toFixed(3),
        p999_ms: +median(results.map((r) => r.p999)).toFixed(3),
        rss_per_idle_connection_bytes: Math.round(perConn),
        generator_cpu_pct_of_core: Math.round(median(results.map((r) => r.genCpu)) * 100),
        gateway_cpu_pct_of_core: Math.round(median(results.map((r) => r.serverCpu)) * 100),
        heartbeat_pings_per_run: median(results.map((r) => r.pings)),
        connections_pinged_per_run: median(results.map((r) => r.pingedConnections)),
        answered_pct: +((100 * results.reduce((a, r) => a + r.answered, 0)) / results.reduce((a, r) => a + r.expected, 0)).toFixed(2),
      },
    };
  },
};
