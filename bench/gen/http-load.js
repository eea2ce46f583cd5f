// Load generator of the Express apps of rows 5, 10, 14 and 15: logs in N users, checks that
// the app really validates (valid cookie 200 with the user; no cookie, a forged cookie and a
// session ended behind its back all 401), then drives GET /me with autocannon: C
// connections, one request in flight each, every connection with its own user's cookie.
// How the session is ended: deleted from Redis or PostgreSQL (express-session), or revoked
// through the gateway's /v1/rpc (the middleware, whose cache must then refuse it). An app
// that checks nothing (`checks: false`) gets only the valid-cookie check. Prints one JSON line.
import autocannon from 'autocannon';
import pg from 'pg';
import { createClient } from 'redis';

const o = JSON.parse(process.argv[2]);
const base = `http://127.0.0.1:${o.port}`;

async function login(user) {
  const res = await fetch(`${base}/login?user=${user}`, { method: 'POST' });
  const set = res.headers.get('set-cookie');
  if (res.status !== 200 || !set) throw new Error(`login failed: ${res.status}`);
  return set.split(';')[0];
}
const me = (cookie) => fetch(`${base}/me`, { headers: cookie ? { cookie } : {} });

const cookies = [];
for (let i = 0; i < o.users; i++) cookies.push(await login(`user-${i}`));

// Checked to really validate.
const ok = await me(cookies[0]);
const body = /** @type {{ user?: string }} */ (await ok.json());
if (ok.status !== 200 || body.user !== 'user-0') throw new Error(`valid cookie: ${ok.status}`);
if (o.checks !== false) {
  if ((await me()).status !== 401) throw new Error('no cookie was not refused');
  const forged = cookies[0].replace(/.$/, (c) => (c === 'A' ? 'B' : 'A'));
  if ((await me(forged)).status !== 401) throw new Error('a forged cookie was not refused');
  const victim = await login('victim');
  await endBehindItsBack(victim);
  if ((await me(victim)).status !== 401) throw new Error('a session ended behind its back was not refused');
}

/** Ends the victim's session without the app's help: in its store, or through the gateway. */
async function endBehindItsBack(victim) {
  if (o.gateway) {
    const res = await fetch(`${o.gateway.http}/v1/rpc`, {
      method: 'POST',
      headers: { authorization: `Bearer ${o.gateway.serviceKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'revoke_user_sessions', user_id: 'victim' }),
    });
    const reply = /** @type {{ count?: number }} */ (await res.json());
    if (reply.count !== 1) throw new Error(`could not revoke the session through the gateway: ${JSON.stringify(reply)}`);
    // The app's cache learns of the end by a push: give it that long (a cached "valid" after
    // a second is a failure of the row).
    for (const until = Date.now() + 1000; Date.now() < until;) {
      if ((await me(victim)).status === 401) return;
      await new Promise((r) => setTimeout(r, 10));
    }
    return;
  }
  const sid = decodeURIComponent(victim.split('=')[1]).slice(2).split('.')[0];
  if (o.postgres) {
    const db = new pg.Client({ connectionString: o.postgres });
    await db.connect();
    const { rowCount } = await db.query('DELETE FROM session WHERE sid = $1', [sid]);
    await db.end();
    if (rowCount !== 1) throw new Error('could not find the session in PostgreSQL');
  } else {
    const redis = createClient({ url: o.redis });
    await redis.connect();
    if ((await redis.del(`peer:${sid}`)) !== 1) throw new Error('could not find the session in Redis');
    await redis.quit();
  }
}

const run = (duration) =>
  new Promise((resolve, reject) => {
    let next = 0;
    autocannon(
      {
        url: base,
        connections: o.connections,
        pipelining: 1,
        duration,
        requests: [
          {
            method: 'GET',
            path: '/me',
            setupRequest: (req, context) => {
              context.cookie ??= cookies[next++ % cookies.length];
              req.headers = { ...req.headers, cookie: context.cookie };
              return req;
            },
          },
        ],
      },
      (err, result) => (err ? reject(err) : resolve(result)),
    );
  });

await run(o.warmSeconds);
const cpu0 = process.cpuUsage();
const r = await run(o.seconds);
const cpu = process.cpuUsage(cpu0);
const total = r['2xx'] + r.non2xx;
console.log(
  JSON.stringify({
    rate: r['2xx'] / o.seconds,
    total,
    ok: r['2xx'],
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    p99ms: r.latency.p99,
    genCpu: (cpu.user + cpu.system) / 1e6 / o.seconds,
  }),
);
process.exit(0);
