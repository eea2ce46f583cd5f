import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';

const TICKS = 100; // USER_HZ on Linux

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Resolves once something accepts TCP connections on the port. */
export async function waitForPort(port, timeoutMs = 15000, child) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (child && child.exitCode !== null) throw new Error(`process exited (${child.exitCode}) before listening on ${port}: ${child.stderrTail?.() ?? ''}`);
    const ok = await new Promise((resolve) => {
      const sock = connect(port, '127.0.0.1');
      sock.once('connect', () => (sock.destroy(), resolve(true)));
      sock.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`nothing listens on ${port} after ${timeoutMs} ms`);
    await sleep(50);
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Every child started here, so that an error or Ctrl-C still kills them all. */
const children = new Set();

/**
 * Spawns a process through bash (so `ulimit -n` can be raised for it), keeping the
 * last few KiB of its stderr for error messages.
 */
export function start(cmd, args, { env = {}, stdio = ['ignore', 'pipe', 'pipe'], ulimit } = {}) {
  const line = [cmd, ...args].map((a) => `'${String(a).replace(/'/g, `'\\''`)}'`).join(' ');
  // Raise the open-file limit for this process only (to the hard limit if that is lower).
  const script = `${ulimit ? `{ ulimit -n ${ulimit} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; } ; ` : ''}exec ${line}`;
  const child = spawn('bash', ['-c', script], { env: { ...process.env, ...env }, stdio });
  let tail = '';
  child.stderr?.on('data', (d) => {
    tail = (tail + d.toString()).slice(-4000);
  });
  child.stderrTail = () => tail;
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Kills one child we started and waits for it to go. */
export async function stop(child, signal = 'SIGKILL') {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  await Promise.race([gone, sleep(3000)]);
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

export function killAll() {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {}
  }
}

/** Runs a generator script to its end and returns the JSON it prints as its last stdout line. */
export function runJson(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    const child = start(cmd, args, opts);
    let out = '';
    child.stdout.on('data', (d) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 300000);
    child.once('exit', (code, sig) => {
      clearTimeout(timer);
      const last = out.trim().split('\n').pop() ?? '';
      if (code !== 0) return reject(new Error(`${args[0] ?? cmd} failed (${code ?? sig}): ${child.stderrTail().trim().split('\n').slice(-5).join(' | ')}`));
      try {
        resolve(JSON.parse(last));
      } catch {
        reject(new Error(`${args[0] ?? cmd} printed no JSON result: ${last.slice(0, 200)}`));
      }
    });
  });
}

/** CPU seconds (user + system) a process has used so far, from /proc. */
export function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / TICKS;
  } catch {
    return NaN;
  }
}

/** Resident memory of a process in bytes, from /proc. */
export function rssBytes(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}
