// Load generator for the WebSocket throughput rows (1, 4, 5): C connections, each keeping W
// requests in flight. Frames are prebuilt and masked once (lib/raw-ws.js); refills go out
// as one write per connection per turn of the event loop. Warm-up first, then the measured
// phase. Prints one JSON line: {msgs, seconds, rate, matched, genCpu, serverCpuUs, samples}.
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { cpuSeconds } from '../lib/proc.js';
import { maskedFrame, openRaw } from '../lib/raw-ws.js';

const o = JSON.parse(process.argv[2]);
const mask = randomBytes(4);
const frames = readFileSync(o.file, 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((t) => maskedFrame(t, mask));
const pattern = Buffer.from(o.expect);
const conns = [];
const samples = [];
let sentTotal = 0;
let seen = 0;
let matched = 0;
let budget = 0; // frames still to send in this phase
let phaseDone;
let phaseTarget = 0;
const owed = new Set();
let flushing = false;

const flush = () => {
  flushing = false;
  for (const c of owed) {
    const n = Math.min(c.owe, budget);
    c.owe = 0;
    if (n <= 0) continue;
    budget -= n;
    const batch = new Array(n);
    for (let i = 0; i < n; i++) batch[i] = frames[sentTotal++ % frames.length];
    c.ws.send(batch);
  }
  owed.clear();
};

async function open(i) {
  /** @type {{ ws: any, owe: number }} */
  const c = { ws: null, owe: 0 };
  c.ws = await openRaw(o.url, o.headers, (buf, start, end) => {
    seen++;
    const at = buf.indexOf(pattern, start);
    if (at !== -1 && at < end) matched++;
    else if (samples.length < 3) samples.push(buf.toString('utf8', start, Math.min(end, start + 300)));
    c.owe++;
    owed.add(c);
    if (!flushing) {
      flushing = true;
      setImmediate(flush);
    }
    if (seen === phaseTarget) phaseDone();
  });
  c.ws.socket.on('close', () => {
    if (phaseTarget > seen) {
      process.stderr.write(`connection ${i} closed during the run\n`);
      process.exit(1);
    }
  });
  return c;
}

for (let i = 0; i < o.connections; i += 200) {
  const batch = [];
  for (let k = i; k < Math.min(o.connections, i + 200); k++) batch.push(open(k));
  conns.push(...(await Promise.all(batch)));
}

async function phase(total) {
  seen = 0;
  matched = 0;
  phaseTarget = total;
  budget = total;
  const done = new Promise((r) => (phaseDone = r));
  const t0 = performance.now();
  for (const c of conns) {
    c.owe = o.inFlight;
    owed.add(c);
  }
  flush();
  await done;
  return (performance.now() - t0) / 1000;
}

await phase(o.warm);
const cpu0 = process.cpuUsage();
const server0 = o.serverPid ? cpuSeconds(o.serverPid) : NaN;
const seconds = await phase(o.msgs);
const cpu = process.cpuUsage(cpu0);
const serverCpu = o.serverPid ? cpuSeconds(o.serverPid) - server0 : NaN;
for (const c of conns) c.ws.close();
console.log(
  JSON.stringify({
    msgs: o.msgs,
    seconds,
    rate: o.msgs / seconds,
    matched,
    genCpu: (cpu.user + cpu.system) / 1e6 / seconds,
    serverCpuUs: (serverCpu / o.msgs) * 1e6,
    samples,
  }),
);
process.exit(0);
