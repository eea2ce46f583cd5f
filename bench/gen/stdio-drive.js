// Load generator for the stdio rows: spawns the target (the gateway or a baseline) as its
// own child, warms it up, then writes the measured lines as fast as the pipe takes them
// and counts the replies. Prints one JSON line: {msgs, seconds, rate, matched}.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpuSeconds } from '../lib/proc.js';

const o = JSON.parse(process.argv[2]);
const all = readFileSync(o.file);

/** Byte offset just after the n-th newline. */
function cut(buf, n) {
  let at = 0;
  for (let i = 0; i < n; i++) at = buf.indexOf(0x0a, at) + 1;
  return at;
}
const warmEnd = cut(all, o.warm);
const warm = all.subarray(0, warmEnd);
const measured = all.subarray(warmEnd);
const total = o.lines - o.warm;
const pattern = Buffer.from(o.expect);

const child = spawn(o.cmd, o.args, { env: { ...process.env, ...o.env }, stdio: ['pipe', 'pipe', 'pipe'] });
let errTail = '';
child.stderr.on('data', (d) => (errTail = (errTail + d).slice(-2000)));
child.on('exit', (code) => {
  if (!finished) {
    process.stderr.write(`target exited early (${code}): ${errTail}\n`);
    process.exit(1);
  }
});

let seen = 0;
let matched = 0;
let rest = Buffer.alloc(0);
let waiter = null;
let finished = false;

child.stdout.on('data', (chunk) => {
  const buf = rest.length ? Buffer.concat([rest, chunk]) : chunk;
  const last = buf.lastIndexOf(0x0a);
  if (last === -1) {
    rest = buf;
    return;
  }
  let at = -1;
  while ((at = buf.indexOf(0x0a, at + 1)) !== -1 && at <= last) seen++;
  let m = -1;
  while ((m = buf.indexOf(pattern, m + 1)) !== -1 && m < last) matched++;
  rest = buf.subarray(last + 1);
  if (waiter && seen >= waiter.n) {
    const w = waiter;
    waiter = null;
    w.resolve(performance.now());
  }
});

const until = (n) => new Promise((resolve) => (seen >= n ? resolve(performance.now()) : (waiter = { n, resolve })));

child.stdin.on('error', () => {});
child.stdin.write(warm);
await until(o.warm);
const cpu0 = process.cpuUsage();
const tcpu0 = cpuSeconds(child.pid);
seen = 0;
matched = 0;
const t0 = performance.now();
child.stdin.write(measured);
const t1 = await until(total);
finished = true;
const cpu = process.cpuUsage(cpu0);
const targetCpu = cpuSeconds(child.pid) - tcpu0;
child.stdin.end();
if (o.graceful) await new Promise((r) => child.once('exit', r));
else child.kill('SIGKILL');
const seconds = (t1 - t0) / 1000;
console.log(
  JSON.stringify({
    msgs: total,
    seconds,
    rate: total / seconds,
    matched,
    genCpu: (cpu.user + cpu.system) / 1e6 / seconds,
    targetCpuUs: (targetCpu / total) * 1e6,
  }),
);
process.exit(0);
