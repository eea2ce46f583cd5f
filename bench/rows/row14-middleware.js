import { randomBytes } from 'node:crypto';
import { interleaved } from '../lib/paired.js';
import { freePort, runJson, start, stop, waitForPort } from '../lib/proc.js';
import { sharedRedis } from '../lib/redis.js';
import { SERVICE_KEY, startGateway } from '../lib/servers.js';

/**
 * Rows 14 and 15: one small Express app (POST /login, GET /me answering the user or 401)
 * three ways, each driven by autocannon with 100 connections, one request in flight each,
 * every connection with its own user's cookie: with auth-gateway's middleware (a gateway on
 * the bench's redis-server behind it), with express-session + connect-redis on the same
 * redis-server, and with no session at all. The runs are interleaved so that noise hits
 * the three alike; both rows report the one measurement (made once per bench run).
 */
export async function middlewareApps(ctx) {
  if (ctx.shared.middlewareApps) return ctx.shared.middlewareApps;
  const redis = await sharedRedis(ctx);
  await redis.flush();
  const clients = 100;
  const seconds = ctx.quick ? 2 : 3;
  const warmSeconds = 1;
  const runs = Math.min(3, ctx.runs);
  const secret = randomBytes(32).toString('base64url');

  /** Starts an app of bench/targets, loads it, stops it. */
  const load = async (name, target, args, check, env = {}) => {
    const port = await freePort();
    const child = start('node', [ctx.target(target), String(port), ...args], { env });
    try {
      await waitForPort(port, 20000, child);
      const r = await runJson('node', [
        ctx.gen('http-load.js'),
        JSON.stringify({ port, users: clients, connections: clients, seconds, warmSeconds, ...check }),
      ]);
      if (r.non2xx > 0 || r.errors > 0) throw new Error(`${name}: ${r.non2xx} non-2xx, ${r.errors} errors`);
      return { value: r.rate, p99ms: r.p99ms, genCpu: r.genCpu };
    } finally {
      await stop(child);
    }
  };

  const res = await interleaved(
    runs,
    {
      'express-session': () => load('express-session', 'express-peer.js', [redis.url, secret], { redis: redis.url }),
      'no session': () => load('no session', 'express-bare.js', [], { checks: false }),
      middleware: async () => {
        const gw = await startGateway(ctx, { env: { GATEWAY_STORE: redis.url } });
        try {
          const check = { gateway: { http: `http://127.0.0.1:${gw.port}`, serviceKey: SERVICE_KEY } };
          return await load('middleware', 'express-middleware.js', [gw.url], check, { GATEWAY_SERVICE_KEY: SERVICE_KEY });
        } finally {
          await gw.stop();
        }
      },
    },
    ctx.log,
  );
  ctx.shared.middlewareApps = { middleware: res.middleware.median, session: res['express-session'].median, bare: res['no session'].median, runs };
  return ctx.shared.middlewareApps;
}

export const row = {
  id: 14,
  what: 'Express app checking the session per request with the middleware, 100 clients one in flight each',
  unit: 'req/s',
  baselineWhat: 'the same app with express-session + connect-redis 9 on the same redis-server',
  target: { on: 'ratio', op: '>=', limit: 3 },

  async run(ctx) {
    const m = await middlewareApps(ctx);
    return {
      value: m.middleware,
      baseline: m.session,
      runs: m.runs,
      note: 'GET /me through auth-gateway/middleware (its cache, ended sessions pushed to it) with a gateway on the bench redis-server, against express-session + connect-redis; each checked first to refuse no cookie, a forged cookie and a session ended behind its back',
    };
  },
};
