#!/usr/bin/env node
// Sessions ending by TTL on PostgreSQL, at scale: N sessions (default 100,000) created with
// a 5 s TTL on node A, each subscribed on node B by its own subscriber as soon as it
// exists; then, within 60 s of the last creation, the tables must hold none of them and
// every one must have been pushed `session_expired` (reason ttl) to its subscriber.
// Two stdio gateways on the bench's own PostgreSQL. Prints one JSON line; exit 1 when a
// condition is not met.   node bench/postgres-expiry.js [N]
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startPostgres } from './lib/postgres.js';
import { percentile } from './lib/stats.js';
import { jwtSecret } from './lib/workload.js';

const N = Number(process.argv[2] ?? 100_000);
const TTL = 5;
const WINDOW = 100;
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const schema = 'bench_expiry';
const log = (s) => process.stderr.write(`${s}\n`);

/** A stdio gateway: requests by msg_id, pushes handed to `onPush`. */
function node(url, id, secret, onPush) {
  const proc = spawn(process.execPath, [join(root, 'dist/cli.js'), 'stdio'], {
    env: {
      PATH: process.env.PATH ?? '',
      GATEWAY_STORE: url,
      GATEWAY_JWT_SECRET: secret,
      GATEWAY_NODE_ID: id,
      GATEWAY_LOG_LEVEL: 'fatal',
      GATEWAY_MAX_SUBSCRIPTIONS: String(N + 10),
    },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const waiting = new Map();
  let seq = 0;
  createInterface({ input: proc.stdout }).on('line', (line) => {
    const msg = JSON.parse(line);
    const to = msg.body.in_reply_to;
    if (to === undefined) onPush(msg, performance.now());
    else {
      waiting.get(to)?.(msg.body);
      waiting.delete(to);
    }
  });
  return {
    proc,
    request: (body, src = 'client') =>
      new Promise((resolve) => {
        const msgId = ++seq;
        waiting.set(msgId, resolve);
        proc.stdin.write(`${JSON.stringify({ src, dest: 'gateway', body: { ...body, msg_id: msgId } })}\n`);
      }),
    stop: () => new Promise((resolve) => (proc.once('exit', resolve), proc.stdin.end())),
  };
}

const pg = await startPostgres();
let a;
let b;
try {
  const url = `${pg.url}?schema=${schema}`;
  const secret = jwtSecret();
  /** session id -> { subscriber, endAt (ms, performance clock), pushedAt } */
  const sessions = new Map();
  const wrong = [];
  a = node(url, 'node-a', secret, () => {});
  b = node(url, 'node-b', secret, (msg, at) => {
    const s = sessions.get(msg.body.session_id);
    if (msg.body.type !== 'session_expired') return;
    if (s === undefined || msg.dest !== s.subscriber || msg.body.reason !== 'ttl' || s.pushedAt !== undefined) wrong.push(msg);
    else s.pushedAt = at;
  });
  let invalid = 0;
  /** Why a subscribe failed, by reply type or error code. */
  const notSubscribed = {};
  let retries = 0;
  /** Error 11 means "temporarily unavailable": a client tries again, as one would. */
  const retrying = async (send) => {
    for (let attempt = 0; ; attempt++) {
      const reply = await send();
      if (!(reply.type === 'error' && reply.code === 11) || attempt >= 20) return reply;
      retries++;
      await new Promise((r) => setTimeout(r, 50 * (attempt + 1)));
    }
  };
  const t0 = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < N) {
      const i = next++;
      // The end lies between the request and its reply: lateness is given from both.
      const sent = performance.now();
      const created = await retrying(() => a.request({ type: 'create_session', user_id: `user-${i % 1000}`, ttl: TTL }));
      if (created.type !== 'session_created') throw new Error(`create: ${JSON.stringify(created)}`);
      const subscriber = `web-${i}`;
      sessions.set(created.session_id, { subscriber, endAt: sent + TTL * 1000, endBy: performance.now() + TTL * 1000 });
      const sub = await retrying(() => b.request({ type: 'subscribe_session', session_id: created.session_id }, subscriber));
      if (sub.type !== 'subscribed') {
        invalid++;
        const kind = sub.type === 'error' ? `error ${sub.code}` : sub.type;
        notSubscribed[kind] = (notSubscribed[kind] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: WINDOW }, worker));
  const createdIn = performance.now() - t0;
  log(`created and subscribed ${N} in ${(createdIn / 1000).toFixed(1)} s (${invalid} could not be subscribed)`);
  const [peak] = await pg.query(`SELECT count(*)::int AS n FROM ${schema}.entries`);

  // Counted, not timed: every push, then empty tables, within 60 s of the last creation.
  const deadline = performance.now() + 60_000;
  let pushed = 0;
  let rows = -1;
  let emptyAt;
  while (performance.now() < deadline) {
    pushed = [...sessions.values()].filter((s) => s.pushedAt !== undefined).length;
    if (emptyAt === undefined) {
      const [r] = await pg.query(`SELECT (SELECT count(*) FROM ${schema}.entries) + (SELECT count(*) FROM ${schema}.index_members) AS n`);
      rows = Number(r.n);
      if (rows === 0) emptyAt = performance.now();
    }
    if (pushed === N && emptyAt !== undefined) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  const done = [...sessions.values()].filter((s) => s.pushedAt !== undefined);
  const upper = done.map((s) => s.pushedAt - s.endAt).sort((x, y) => x - y);
  const lower = done.map((s) => s.pushedAt - s.endBy).sort((x, y) => x - y);
  const spread = (l) => ({ p50: Math.round(percentile(l, 50)), p99: Math.round(percentile(l, 99)), max: Math.round(l.at(-1) ?? NaN) });
  const result = {
    sessions: N,
    ttl_s: TTL,
    created_and_subscribed_s: +(createdIn / 1000).toFixed(1),
    rows_at_peak: peak.n,
    not_subscribed: invalid,
    not_subscribed_replies: notSubscribed,
    error_11_retried: retries,
    pushed_ttl: pushed,
    wrong_pushes: wrong.length,
    tables_empty_s_after_last_creation: emptyAt === undefined ? null : +((emptyAt - t0 - createdIn) / 1000).toFixed(1),
    rows_left: emptyAt === undefined ? rows : 0,
    // From the end counted at the create request (an upper bound) and at its reply (a lower one).
    push_lateness_ms: { from_request: spread(upper), from_reply: spread(lower) },
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exitCode = pushed === N && invalid === 0 && wrong.length === 0 && emptyAt !== undefined ? 0 : 1;
} finally {
  await a?.stop();
  await b?.stop();
  await pg.stop();
}
