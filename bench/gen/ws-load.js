// Load generator for the WebSocket throughput rows (1, 4, 5): C connections, each keeping W
// requests in flight, frames prebuilt, refills sent in one corked batch per turn of the
// event loop. Warm-up first, then the measured phase. Prints one JSON line.
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { cpuSeconds } from '../lib/proc.js';

const o = JSON.parse(process.argv[2]);
const frames = readFileSync(o.file, 'utf8').split('\n').filter(Boolean);
const pattern = Buffer.from(o.expect);
const conns = [];
let sentTotal = 0;
let seen = 0;
let matched = 0;
let budget = 0; // frames still to send in this phase
let phaseDone;
let phaseTarget = 0;
const owed = new Set();
const samples = [];
let flushing = false;

const flush = () => {
  flushing = false;
  for (const c of owed) {
    const n = Math.min(c.owe, budget);
    c.owe = 0;
    if (n <= 0) continue;
    budget -= n;
    const sock = c.ws._socket;
    sock.cork();
    for (let i = 0; i < n; i++) c.ws.send(frames[sentTotal++ % frames.length]);
    sock.uncork();
  }
  owed.clear();
};

function open(i) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(o.url, { headers: o.headers ?? {}, perMessageDeflate: false });
    const c = { ws, owe: 0 };
    ws.on('open', () => resolve(c));
    ws.on('error', reject);
    ws.on('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    ws.on('message', (data) => {
      seen++;
      if (data.indexOf(pattern) !== -1) matched++;
      else if (samples.length < 3) samples.push(data.toString().slice(0, 300));
      c.owe++;
      owed.add(c);
      if (!flushing) {
        flushing = true;
        setImmediate(flush);
      }
      if (seen === phaseTarget) phaseDone();
    });
    ws.on('close', (code) => {
      if (phaseTarget > seen) {
        process.stderr.write(`connection ${i} closed (${code}) during the run\n`);
        process.exit(1);
      }
    });
  });
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
for (const c of conns) c.ws.terminate();
console.log(JSON.stringify({ msgs: o.msgs, seconds, rate: o.msgs / seconds, matched, genCpu: (cpu.user + cpu.system) / 1e6 / seconds, serverCpuUs: (serverCpu / o.msgs) * 1e6, samples }));
process.exit(0);
