// Load generator of the peers of rows 5 and 10: logs in N users, checks that the peer
// really validates (valid cookie 200 with the user; no cookie, a forged signature and a
// session deleted from Redis or PostgreSQL all 401), then drives GET /me with autocannon:
// C connections, one request in flight each, every connection with its own user's cookie.
// Prints one JSON line.
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
if ((await me()).status !== 401) throw new Error('no cookie was not refused');
const forged = cookies[0].replace(/.$/, (c) => (c === 'A' ? 'B' : 'A'));
if ((await me(forged)).status !== 401) throw new Error('a forged signature was not refused');
const victim = await login('victim');
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
if ((await me(victim)).status !== 401) throw new Error('a session deleted from the store was not refused');

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
