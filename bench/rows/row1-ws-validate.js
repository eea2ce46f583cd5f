import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { paired } from '../lib/paired.js';
import { median } from '../lib/stats.js';
import { runJson } from '../lib/proc.js';
import { SERVICE_KEY, startGateway, startTarget } from '../lib/servers.js';
import { requestLines, sessionIds, validateBody, writeFixtures } from '../lib/workload.js';

/**
 * Row 1, and the shared driver of the rows on other stores (same load). The baseline is the
 * bare echo that batches its writes (`cork`); `uncorked` also measures the echo that writes
 * each reply on its own.
 */
export async function wsValidate(ctx, { name, storeEnv = {}, baseline = true, uncorked = false }) {
  const msgs = ctx.quick ? 40_000 : 200_000;
  const warm = ctx.quick ? 10_000 : 20_000;
  const ids = sessionIds(1000);
  const fixtures = writeFixtures(ctx.tmp, `${name}-fixtures.json`, ids);
  const file = join(ctx.tmp, `${name}-frames.txt`);
  writeFileSync(file, requestLines(100_000, validateBody, ids).join(''));
  const load = (server, expect, headers) =>
    runJson('node', [
      ctx.gen('ws-load.js'),
      JSON.stringify({ url: server.url, serverPid: server.child.pid, headers, connections: 1, inFlight: 1000, msgs, warm, file, expect }),
    ]);
  const echo = async (args) => {
    const t = await startTarget(ctx, 'ws-echo.js', { args });
    try {
      const r = await load(t, '"type":"validate_session"');
      return { value: r.rate, seconds: r.seconds, genCpu: r.genCpu, cpuUs: r.serverCpuUs };
    } finally {
      await t.stop();
    }
  };
  const res = await paired(
    ctx.runs,
    async () => {
      const gw = await startGateway(ctx, { args: ['--fixtures', fixtures], env: storeEnv });
      try {
        const r = await load(gw, '"type":"session_valid"', { Authorization: `Bearer ${SERVICE_KEY}` });
        if (r.matched !== r.msgs) throw new Error(`${r.msgs - r.matched} replies were not session_valid, e.g. ${r.samples.join(' | ')}`);
        return { value: r.rate, seconds: r.seconds, genCpu: r.genCpu, cpuUs: r.serverCpuUs };
      } finally {
        await gw.stop();
      }
    },
    baseline ? () => echo(['cork']) : null,
    ctx.log,
  );
  if (uncorked) {
    ctx.log('  the same echo writing each reply on its own:');
    const c = [];
    for (let i = 0; i < Math.min(3, ctx.runs); i++) c.push((await echo([])).value);
    res.uncorked = median(c);
  }
  return res;
}

export const row = {
  id: 1,
  what: 'validate_session over one WebSocket, 1,000 in flight, memory store, 1,000 sessions',
  unit: 'msgs/s',
  baselineWhat: 'bare ws server: parse each frame, reply of the same size, the replies of one burst in one write',
  target: { on: 'ratio', op: '>=', limit: 0.55 },

  async run(ctx) {
    const res = await wsValidate(ctx, { name: 'row1', uncorked: true });
    ctx.shared.row1 = res;
    return {
      value: res.gateway,
      baseline: res.baseline,
      note: 'service connection (not rate limited), load generator in its own process; uncorked = the same echo with one write per reply (one ws.send each, as ws is used)',
      extra: { uncorked: Math.round(res.uncorked), ratio_to_uncorked: +(res.gateway / res.uncorked).toFixed(3) },
    };
  },
};
