import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';

const TICKS = 100; // USER_HZ on Linux

/** @typedef {import('node:child_process').ChildProcess & { stderrTail: () => string }} Child */
/**
 * @typedef {object} StartOptions
 * @property {Record<string, string | undefined>} [env]
 * @property {import('node:child_process').StdioOptions} [stdio]
 * @property {number} [ulimit] open-file limit for this process
 * @property {number} [timeoutMs] runJson only: killed after this long
 */

/**
 * A free TCP port on 127.0.0.1.
 * @returns {Promise<number>}
 */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {import('node:net').AddressInfo} */ (s.address());
      s.close(() => resolve(port));
    });
  });
}

/**
 * Resolves once something accepts TCP connections on the port.
 * @param {number} port
 * @param {Child} [child]
 */
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

/** @param {number} ms @returns {Promise<void>} */
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Every child started here, so that an error or Ctrl-C still kills them all. @type {Set<Child>} */
const children = new Set();

/**
 * Spawns a process through bash (so `ulimit -n` can be raised for it), keeping the
 * last few KiB of its stderr for error messages.
 * @param {string} cmd
 * @param {readonly unknown[]} args
 * @param {StartOptions} [options]
 * @returns {Child}
 */
export function start(cmd, args, { env = {}, stdio = ['ignore', 'pipe', 'pipe'], ulimit } = {}) {
  const line = [cmd, ...args].map((a) => `'${String(a).replace(/'/g, `'\\''`)}'`).join(' ');
  // Raise the open-file limit for this process only (to the hard limit if that is lower).
  const script = `${ulimit ? `{ ulimit -n ${ulimit} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; } ; ` : ''}exec ${line}`;
  const proc = spawn('bash', ['-c', script], { env: { ...process.env, ...env }, stdio });
  let tail = '';
  proc.stderr?.on('data', (d) => {
    tail = (tail + d.toString()).slice(-4000);
  });
  const child = Object.assign(proc, { stderrTail: () => tail });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/**
 * Kills one child we started and waits for it to go.
 * @param {import('node:child_process').ChildProcess | undefined} child
 * @param {NodeJS.Signals} [signal]
 */
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
    } catch {
      // already gone
    }
  }
}

/**
 * Runs a generator script to its end and returns the JSON it prints as its last stdout line.
 * @param {string} cmd
 * @param {readonly unknown[]} args
 * @param {StartOptions} [opts]
 * @returns {Promise<any>}
 */
export function runJson(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    const child = start(cmd, args, opts);
    let out = '';
    child.stdout?.on('data', (d) => (out += d.toString()));
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

/**
 * CPU seconds (user + system) a process has used so far, from /proc.
 * @param {number | undefined} pid
 */
export function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / TICKS;
  } catch {
    return NaN;
  }
}

/**
 * Resident memory of a process in bytes, from /proc.
 * @param {number | undefined} pid
 */
export function rssBytes(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/**
 * Starts a generator that answers JSON lines: `next()` resolves with its next stdout line
 * (parsed), `ask(obj)` writes one line to its stdin and resolves with the answer. Rejects
 * if the process exits first or says nothing for `timeoutMs`.
 * @param {string} cmd
 * @param {readonly unknown[]} args
 * @param {StartOptions} [opts]
 */
export function startTalking(cmd, args, opts = {}) {
  const child = start(cmd, args, { ...opts, stdio: ['pipe', 'pipe', 'pipe'] });
  /** @type {string[]} */
  const lines = [];
  /** @type {((line: string | undefined) => void)[]} */
  const waiting = [];
  let rest = '';
  child.stdout?.on('data', (d) => {
    const parts = (rest + d.toString()).split('\n');
    rest = parts.pop() ?? '';
    for (const line of parts) {
      const w = waiting.shift();
      if (w) w(line);
      else lines.push(line);
    }
  });
  child.once('exit', () => {
    for (const w of waiting.splice(0)) w(undefined);
  });
  const next = (timeoutMs = opts.timeoutMs ?? 120_000) =>
    new Promise((resolve, reject) => {
      const done = (/** @type {string | undefined} */ line) => {
        clearTimeout(timer);
        if (line === undefined)
          reject(new Error(`${args[0] ?? cmd} exited (${child.exitCode ?? child.signalCode}): ${child.stderrTail().trim().split('\n').slice(-3).join(' | ')}`));
        else resolve(JSON.parse(line));
      };
      const timer = setTimeout(() => {
        const i = waiting.indexOf(done);
        if (i !== -1) waiting.splice(i, 1);
        reject(new Error(`${args[0] ?? cmd} said nothing for ${timeoutMs} ms`));
      }, timeoutMs);
      if (lines.length > 0) done(lines.shift());
      else if (child.exitCode !== null || child.signalCode !== null) done(undefined);
      else waiting.push(done);
    });
  return {
    child,
    next,
    /** @param {unknown} obj @param {number} [timeoutMs] */
    ask: (obj, timeoutMs) => {
      child.stdin?.write(`${JSON.stringify(obj)}\n`);
      return next(timeoutMs);
    },
    stop: () => stop(child),
  };
}
