// Load generator of row 7: spawns a stdio gateway, creates N sessions paced evenly over S
// seconds (ttl T > S, so all are subscribed before the first ends), subscribes to each,
// then records when each session_expired push arrives. Lateness is measured against a
// lower bound of the scheduled end, max(create sent + ttl, expires_at), so it can only be
// overstated. Prints {n, received, p50, p99, max, ...}.
import { spawn } from 'node:child_process';
import { percentile } from '../lib/stats.js';
import { cpuSeconds } from '../lib/proc.js';

const o = JSON.parse(process.argv[2]);
const { n, spreadMs, ttl } = o;
const child = spawn(o.cmd, o.args, { env: { ...process.env, ...o.env }, stdio: ['pipe', 'pipe', 'pipe'] });
let errTail = '';
child.stderr.on('data', (d) => (errTail = (errTail + d).slice(-2000)));
child.on('exit', (code) => {
  if (!done) {
    process.stderr.write(`gateway exited early (${code}): ${errTail}\n`);
    process.exit(1);
  }
});
child.stdin.on('error', () => {});

const sentAt = new Float64Array(n);
const endLow = new Float64Array(n);
const lateness = new Float64Array(n).fill(Number.POSITIVE_INFINITY);
const index = new Map();
let subscribed = 0;
let received = 0;
let invalid = 0;
let done = false;
/** @type {(v?: unknown) => void} */
let finish = () => {};
const finished = new Promise((r) => (finish = r));

const line = (body) => `{"src":"client","dest":"gateway","body":${JSON.stringify(body)}}\n`;

let rest = '';
child.stdout.setEncoding('utf8');
child.stdout.on('data', (chunk) => {
  const now = Date.now();
  const text = rest + chunk;
  let start = 0;
  let nl;
  let out = '';
  while ((nl = text.indexOf('\n', start)) !== -1) {
    const m = JSON.parse(text.slice(start, nl));
    start = nl + 1;
    const b = m.body;
    if (b.type === 'session_expired') {
      const i = index.get(b.session_id);
      if (i !== undefined && lateness[i] === Number.POSITIVE_INFINITY) {
        lateness[i] = now - endLow[i];
        if (++received === n) finish();
      }
    } else if (b.type === 'session_created') {
      const i = b.in_reply_to - 1;
      index.set(b.session_id, i);
      endLow[i] = Math.max(sentAt[i] + ttl * 1000, b.expires_at * 1000);
      out += line({ type: 'subscribe_session', msg_id: n + i + 1, session_id: b.session_id });
    } else if (b.type === 'subscribed') {
      subscribed++;
    } else if (b.type !== 'init_ok') {
      invalid++;
    }
  }
  rest = text.slice(start);
  if (out) child.stdin.write(out);
});

// Warm-up: one round trip, so start-up is not counted in the pacing.
await new Promise((resolve) => {
  child.stdout.once('data', resolve);
  child.stdin.write(line({ type: 'init', msg_id: 0, node_id: 'gateway' }));
});

const t0 = Date.now();
const cpu0 = cpuSeconds(child.pid);
let next = 0;
await new Promise((resolve) => {
  const tick = () => {
    const due = Math.min(n, Math.ceil(((Date.now() - t0) / spreadMs) * n));
    if (due > next) {
      let out = '';
      const now = Date.now();
      for (; next < due; next++) {
        sentAt[next] = now;
        out += line({ type: 'create_session', msg_id: next + 1, user_id: `user-${next % 10000}`, ttl });
      }
      child.stdin.write(out);
    }
    if (next < n) setTimeout(tick, 2);
    else resolve(undefined);
  };
  tick();
});
const createdBy = Date.now() - t0;
const timeout = setTimeout(finish, ttl * 1000 + 5000);
await finished;
clearTimeout(timeout);
done = true;
const cpu = cpuSeconds(child.pid) - cpu0;
const wall = (Date.now() - t0) / 1000;
child.kill('SIGKILL');
const s = lateness.slice().sort();
console.log(
  JSON.stringify({
    n,
    subscribed,
    received,
    invalid,
    p50: percentile(s, 50),
    p99: percentile(s, 99),
    max: s[s.length - 1],
    createSeconds: createdBy / 1000,
    gatewayCpu: cpu / wall,
  }),
);
process.exit(0);
