// Load generator of row 6: C browser connections, each bound to its own session by the
// cookie, then an open-loop offered load of R msgs/s in total (validate_session of the
// connection's own session, round robin). Latency is measured from each message's
// scheduled send time, so a stall is not hidden (no coordinated omission). Also reports
// the server's RSS before and after the connections opened (idle), this process's CPU, and
// the heartbeat's pings each connection got during the measured run (answered with pongs).
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { percentile } from '../lib/stats.js';
import { cpuSeconds, rssBytes, sleep } from '../lib/proc.js';
import { maskedFrame, openRaw } from '../lib/raw-ws.js';

const o = JSON.parse(process.argv[2]);
const ids = JSON.parse(readFileSync(o.ids, 'utf8')).slice(0, o.connections);
const conns = [];
/** @type {{ lat: Float64Array, n: number, start: number }} */
let phase = { lat: new Float64Array(0), n: 0, start: 0 }; // replaced by the measured run
let unexpected = 0;
/** True during the measured run: pings are counted per connection. */
let recording = false;
let closed = 0;
const REPLY = Buffer.from('"in_reply_to"');
const VALID = Buffer.from('"type":"session_valid"');
const mask = randomBytes(4);
/** Frames per connection, prebuilt and masked once; msg_id cycles through 1..8. */
const FRAMES = 8;

async function open(i) {
  /** @type {{ i: number, sent: number[], n: number, frames: Buffer[], pings: number, ws?: any }} */
  const c = { i, sent: [], n: 0, frames: [], pings: 0 };
  for (let k = 1; k <= FRAMES; k++)
    c.frames.push(maskedFrame(`{"src":"b${i}","dest":"gateway","body":{"type":"validate_session","msg_id":${k},"session_id":"${ids[i]}"}}`, mask));
  c.ws = await openRaw(
    o.url,
    { Cookie: `${o.cookie}=${ids[i]}` },
    (buf, start, end) => {
      const now = performance.now();
      const r = buf.indexOf(REPLY, start);
      if (r === -1 || r >= end) return; // a push (session_expiring): not a reply
      const at = c.sent.shift();
      const v = buf.indexOf(VALID, start);
      if (v === -1 || v >= end) unexpected++;
      if (phase && at !== undefined && at >= phase.start) phase.lat[phase.n++] = now - at;
    },
    {
      onPing: () => {
        if (recording) c.pings++;
      },
    },
  );
  c.ws.socket.on('close', () => closed++);
  return c;
}

const rss0 = rssBytes(o.serverPid);
const tOpen = performance.now();
for (let i = 0; i < o.connections; i += 250) {
  const batch = [];
  for (let k = i; k < Math.min(o.connections, i + 250); k++) batch.push(open(k));
  conns.push(...(await Promise.all(batch)));
}
const openSeconds = (performance.now() - tOpen) / 1000;
await sleep(o.idleMs);
const rss1 = rssBytes(o.serverPid);

/** Sends at `rate` msgs/s for `ms`, recording latencies of messages scheduled after `start`. */
async function run(ms, record) {
  const total = Math.floor((o.rate * ms) / 1000);
  const t0 = performance.now();
  if (record) phase = { lat: new Float64Array(total), n: 0, start: t0 };
  let next = 0;
  let rr = 0;
  await new Promise((resolve) => {
    const tick = () => {
      const now = performance.now();
      const due = Math.min(total, Math.floor(((now - t0) * o.rate) / 1000));
      for (; next < due; next++) {
        const c = conns[rr++ % conns.length];
        const scheduled = t0 + (next * 1000) / o.rate;
        c.sent.push(scheduled);
        c.ws.socket.write(c.frames[c.n++ % FRAMES]);
      }
      if (next < total) setTimeout(tick, 1);
      else resolve(undefined);
    };
    tick();
  });
  // The last replies: wait for them, but not for ever (what never comes counts as infinite).
  const until = performance.now() + 2000;
  while (performance.now() < until && conns.some((c) => c.sent.length > 0)) await sleep(20);
}

await run(o.warmMs, false);
const cpu0 = process.cpuUsage();
const server0 = cpuSeconds(o.serverPid);
const w0 = performance.now();
recording = true;
await run(o.ms, true);
recording = false;
const wall = (performance.now() - w0) / 1000;
const cpu = process.cpuUsage(cpu0);
const serverCpu = (cpuSeconds(o.serverPid) - server0) / wall;
const expected = Math.floor((o.rate * o.ms) / 1000);
// Unanswered messages count as infinitely late, so they can only raise the percentiles.
const lat = new Float64Array(expected).fill(Number.POSITIVE_INFINITY);
lat.set(phase.lat.subarray(0, Math.min(phase.n, expected)));
lat.sort();
for (const c of conns) c.ws.close();
console.log(
  JSON.stringify({
    connections: conns.length,
    offered: o.rate,
    expected,
    answered: phase.n,
    unexpected,
    closedEarly: closed,
    p50: percentile(lat, 50),
    p99: percentile(lat, 99),
    p999: percentile(lat, 99.9),
    max: phase.n > 0 ? phase.lat.subarray(0, phase.n).reduce((a, b) => (b > a ? b : a), 0) : null,
    genCpu: (cpu.user + cpu.system) / 1e6 / wall,
    serverCpu,
    serverCpuUsPerMsg: (serverCpu * wall * 1e6) / expected,
    rssBefore: rss0,
    rssIdle: rss1,
    openSeconds,
    pings: conns.reduce((a, c) => a + c.pings, 0),
    pingedConnections: conns.filter((c) => c.pings > 0).length,
  }),
);
process.exit(0);
