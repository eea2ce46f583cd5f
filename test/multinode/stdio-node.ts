import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { required } from '../helpers/required.js';
import { waitForItem } from '../helpers/wait-for.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CLI = `${ROOT}dist/cli.js`;
export const SECRET = 'eaRLHGSxjlhCWTYaKCkqfRQkvy2xvIb/zB61z/gmGSw=';

/** True when dist/cli.js is built; without it throws (the test fails) unless GATEWAY_TEST_SKIP names `build`. */
export function hasBuild(): boolean {
  return required('build');
}

export type Body = Record<string, unknown> & { type: string };

export interface Push {
  body: Body;
  /** The `dest` of the envelope: the subscriber's `src`. */
  dest: string;
  at: number;
}

/** One `node dist/cli.js stdio` gateway process: requests by msg_id, pushes collected. */
export class StdioNode {
  readonly proc: ChildProcess;
  readonly pushes: Push[] = [];
  readonly stderr: string[] = [];
  #seq = 0;
  readonly #waiting = new Map<number, (body: Body) => void>();
  readonly #exited: Promise<number | null>;

  constructor(storeUrl: string, env: Record<string, string> = {}) {
    this.proc = spawn(process.execPath, [CLI, 'stdio'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', GATEWAY_STORE: storeUrl, GATEWAY_JWT_SECRET: SECRET, GATEWAY_LOG_LEVEL: 'warn', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.#exited = new Promise((r) => this.proc.once('exit', (code) => r(code)));
    createInterface({ input: this.proc.stdout! }).on('line', (line) => {
      const msg = JSON.parse(line) as { dest: string; body: Body };
      const to = msg.body.in_reply_to;
      if (typeof to === 'number' && this.#waiting.has(to)) {
        this.#waiting.get(to)!(msg.body);
        this.#waiting.delete(to);
      } else if (to === undefined) {
        this.pushes.push({ body: msg.body, dest: msg.dest, at: performance.now() });
      }
    });
    createInterface({ input: this.proc.stderr! }).on('line', (line) => this.stderr.push(line));
  }

  /** Sends one request; resolves with the reply body. */
  request(body: Record<string, unknown> & { type: string }, src = 'client'): Promise<Body> {
    const msgId = ++this.#seq;
    return new Promise((resolve) => {
      this.#waiting.set(msgId, resolve);
      this.proc.stdin!.write(`${JSON.stringify({ src, dest: 'gateway', body: { ...body, msg_id: msgId } })}\n`);
    });
  }

  /** Waits (bounded) for a push matching `pred`. */
  push(pred: (b: Body) => boolean, timeoutMs = 2000): Promise<Push> {
    return waitForItem(this.pushes, (p) => pred(p.body), timeoutMs, 'push');
  }

  /** Closes stdin (the node answers what it read and exits 0), killing it if it lingers. */
  async stop(): Promise<number | null> {
    if (this.proc.exitCode !== null) return this.proc.exitCode;
    this.proc.stdin!.end();
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    const code = await this.#exited;
    clearTimeout(timer);
    return code;
  }
}
