import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { paired } from '../lib/paired.js';
import { freePort, runJson, start, stop, waitForPort } from '../lib/proc.js';
import { sharedRedis } from '../lib/redis.js';
import { SERVICE_KEY, startGateway } from '../lib/servers.js';
import { requestLines, sessionIds, validateBody, writeFixtures } from '../lib/workload.js';

/**
 * Rows 5 and 10: the gateway checking a session per request over 100 WebSocket connections
 * against express-session doing the same per HTTP request, both on one store server.
 * `gatewayStore`: GATEWAY_STORE; `peer`: the target file and its store URL; `loadStore`:
 * how http-load.js reaches the peer's store to delete a session.
 */
export async function sessionCheckRow(ctx, { name, gatewayStore, peer, peerStore, loadStore }) {
  const clients = 100;
  const seconds = ctx.quick ? 2 : 4;
  const msgs = ctx.quick ? 30_000 : 100_000;
  const ids = sessionIds(clients);
  const fixtures = writeFixtures(ctx.tmp, `${name}-fixtures.json`, ids);
  const file = join(ctx.tmp, `${name}-frames.txt`);
  writeFileSync(file, requestLines(10_000, validateBody, ids).join(''));
  const secret = randomBytes(32).toString('base64url');
  const runs = Math.min(3, ctx.runs);
  const res = await paired(
    runs,
    async () => {
      const gw = await startGateway(ctx, { args: ['--fixtures', fixtures], env: { GATEWAY_STORE: gatewayStore } });
      try {
        const r = await runJson('node', [
          ctx.gen('ws-load.js'),
          JSON.stringify({
            url: gw.url,
            serverPid: gw.child.pid,
            headers: { Authorization: `Bearer ${SERVICE_KEY}` },
            connections: clients,
            inFlight: 1,
            msgs,
            warm: ctx.quick ? 10_000 : 20_000,
            file,
            expect: '"type":"session_valid"',
          }),
        ]);
        if (r.matched !== r.msgs) throw new Error(`${name}: ${r.msgs - r.matched} replies were not session_valid, e.g. ${r.samples.join(' | ')}`);
        return { value: r.rate, seconds: r.seconds, genCpu: r.genCpu };
      } finally {
        await gw.stop();
      }
    },
    async () => {
      const port = await freePort();
      const child = start('node', [ctx.target(peer), String(port), peerStore, secret]);
      try {
        await waitForPort(port, 20000, child);
        const r = await runJson('node', [
          ctx.gen('http-load.js'),
          JSON.stringify({ port, ...loadStore, users: clients, connections: clients, seconds, warmSeconds: ctx.quick ? 1 : 2 }),
        ]);
        if (r.non2xx > 0 || r.errors > 0) throw new Error(`${name} peer: ${r.non2xx} non-2xx, ${r.errors} errors`);
        return { value: r.rate, p99ms: r.p99ms, genCpu: r.genCpu };
      } finally {
        await stop(child);
      }
    },
    ctx.log,
  );
  return { value: res.gateway, baseline: res.baseline, runs };
}

export const row = {
  id: 5,
  what: 'session check per request, 100 clients one in flight each, Redis store',
  unit: 'req/s',
  baselineWhat: 'express 5 + express-session + connect-redis 9, HTTP with the cookie, autocannon',
  target: { on: 'ratio', op: '>=', limit: 5 },

  async run(ctx) {
    const redis = await sharedRedis(ctx);
    await redis.flush();
    const res = await sessionCheckRow(ctx, {
      name: 'row5',
      gatewayStore: redis.url,
      peer: 'express-peer.js',
      peerStore: redis.url,
      loadStore: { redis: redis.url },
    });
    return {
      ...res,
      note: 'gateway: 100 service WebSocket connections sending validate_session; peer: GET /me with each connection its own user cookie, checked first to refuse no cookie, a forged signature and a session deleted from Redis; both on the same redis-server',
    };
  },
};
