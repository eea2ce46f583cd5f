// @ts-check
// One gateway under test: a child process spoken to in JSON lines over stdin/stdout.
// Every line it prints is parsed and queued; steps take lines out of the queue.
import { spawn } from 'node:child_process';
import { isObject } from './values.mjs';

/** @typedef {{src?: unknown, dest?: unknown, body: Record<string, unknown> & {type: string}}} Envelope */
/** @typedef {{code: number | null, signal: NodeJS.Signals | null}} Exit */

export class NodeProcess {
  /**
   * @param {string} command @param {string[]} args @param {Record<string, string>} env
   * @param {(message: Envelope) => void} onMessage every message, in arrival order
   */
  constructor(command, args, env, onMessage) {
    /** @type {Envelope[]} lines printed and not yet taken by a step */
    this.queue = [];
    /** Messages printed so far: none yet means the command may still be starting. */
    this.heard = 0;
    /** @type {string[]} output that breaks the contract (not JSON, not an envelope) */
    this.problems = [];
    /** @type {Exit | null} */
    this.exit = null;
    this.stderr = '';
    /** @type {Set<() => void>} */
    this.waiters = new Set();
    this.child = spawn(command, args, {
      env: { ...process.env, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
      // Its own process group: a wrapper script's server goes down with it.
      detached: true,
    });
    let partial = '';
    this.child.stdout.setEncoding('utf8');
    this.child.stdout.on('data', (/** @type {string} */ chunk) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) this.#take(line, onMessage);
      this.#wake();
    });
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (/** @type {string} */ chunk) => {
      // The tail is what explains a failure; keep it bounded.
      this.stderr = (this.stderr + chunk).slice(-4000);
    });
    // A node that exits early closes its stdin under us; the case reports the exit instead.
    this.child.stdin.on('error', () => {});
    /** @type {Promise<Exit>} settles once the process has exited and its stdout is read */
    this.closed = new Promise((resolve) => {
      this.child.on('error', (err) => {
        this.problems.push(`could not start ${command}: ${err.message}`);
        // A process that never started will not close either.
        if (this.child.pid === undefined) {
          this.exit = { code: null, signal: null };
          resolve(this.exit);
          this.#wake();
        }
      });
      this.child.on('close', (code, signal) => {
        if (partial.trim()) this.#take(partial, onMessage);
        partial = '';
        this.exit = { code, signal };
        resolve(this.exit);
        this.#wake();
      });
    });
  }

  /** @param {string} line @param {(message: Envelope) => void} onMessage */
  #take(line, onMessage) {
    const text = line.endsWith('\r') ? line.slice(0, -1) : line;
    if (!text.trim()) return;
    /** @type {unknown} */
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      this.problems.push(`stdout line is not JSON: ${text.slice(0, 120)}`);
      return;
    }
    if (!isObject(message) || !isObject(message.body) || typeof message.body.type !== 'string') {
      this.problems.push(`stdout line is not a {src, dest, body: {type}} message: ${text.slice(0, 120)}`);
      return;
    }
    const envelope = /** @type {Envelope} */ (message);
    this.heard++;
    onMessage(envelope);
    this.queue.push(envelope);
  }

  #wake() {
    for (const w of [...this.waiters]) w();
  }

  /** @param {string} text one line, newline added */
  write(text) {
    if (!this.child.stdin.writable) return;
    this.child.stdin.write(`${text}\n`);
  }

  closeStdin() {
    this.child.stdin.end();
  }

  /**
   * Takes the first queued message that `accept` accepts, waiting up to `ms` for it;
   * null when time runs out or the process exits without printing one.
   * @param {(m: Envelope) => boolean} accept @param {number} ms
   * @returns {Promise<Envelope | null>}
   */
  take(accept, ms) {
    return new Promise((resolve) => {
      const check = () => {
        const i = this.queue.findIndex(accept);
        if (i >= 0) done(this.queue.splice(i, 1)[0] ?? null);
        else if (this.exit) done(null);
      };
      /** @param {Envelope | null} value */
      const done = (value) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(value);
      };
      const timer = setTimeout(() => done(null), ms);
      this.waiters.add(check);
      check();
    });
  }

  /**
   * The exit, or null if the process is still running after `ms`.
   * @param {number} ms @returns {Promise<Exit | null>}
   */
  async exited(ms) {
    /** @type {NodeJS.Timeout | undefined} */
    let timer;
    const late = new Promise((resolve) => {
      timer = setTimeout(() => resolve(null), ms);
    });
    try {
      return /** @type {Exit | null} */ (await Promise.race([this.closed, late]));
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Ends the process and everything it started; resolves once it is gone. SIGTERM first, so
   * a wrapper script's exit trap stops its server and removes its files; SIGKILL after
   * `graceMs` for whatever is still running.
   * @param {number} [graceMs]
   */
  async stop(graceMs = 3000) {
    if (this.exit) return;
    this.#signal('SIGTERM');
    if (!(await this.exited(graceMs))) this.#signal('SIGKILL');
    await this.closed;
  }

  /**
   * Sends `signal` to the process group (the process alone if that fails).
   * @param {NodeJS.Signals} signal
   */
  #signal(signal) {
    if (this.exit || this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, signal);
    } catch {
      this.child.kill(signal);
    }
  }
}
