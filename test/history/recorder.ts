/**
 * Records a history of gateway operations: every request with the time it was sent
 * (invoke) and the time its reply arrived (complete), every push with its arrival time,
 * all on one clock (this process's `performance.now()`), across several gateway processes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = `${ROOT}dist/cli.js`;
/** The contract answers every request (error 11 within about a second when the store is away). */
const NO_REPLY_MS = 10_000;

export type Body = Record<string, unknown> & { type: string };

export interface Op {
  /** Index in the history. */
  readonly id: number;
  readonly node: number;
  readonly src: string;
  readonly msgId: number;
  readonly req: Body;
  readonly invoke: number;
  complete?: number;
  reply?: Body;
  /** Replies received for this msg_id (the contract: exactly one). */
  replies: number;
}

export interface PushRecord {
  readonly node: number;
  readonly dest: string;
  readonly body: Body;
  readonly at: number;
}

export interface History {
  readonly ops: Op[];
  readonly pushes: PushRecord[];
  /** Replies whose `in_reply_to` matched no request sent on that node. */
  readonly strays: { node: number; body: Body }[];
  /** Store outages injected by the run: [start, end] on the same clock. */
  readonly outages: [number, number][];
}

export function newHistory(): History {
  return { ops: [], pushes: [], strays: [], outages: [] };
}

/** One `node dist/cli.js stdio` gateway process whose traffic is recorded into a history. */
export class RecordedNode {
  readonly proc: ChildProcess;
  readonly stderr: string[] = [];
  #seq = 0;
  readonly #byMsgId = new Map<number, { op: Op; resolve: (op: Op) => void }>();
  readonly #exited: Promise<number | null>;

  constructor(
    readonly index: number,
    readonly history: History,
    env: Record<string, string>,
  ) {
    this.proc = spawn(process.execPath, [CLI, 'stdio'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', GATEWAY_LOG_LEVEL: 'error', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.#exited = new Promise((r) => this.proc.once('exit', (code) => r(code)));
    createInterface({ input: this.proc.stdout! }).on('line', (line) => this.#onLine(line));
    createInterface({ input: this.proc.stderr! }).on('line', (line) => {
      if (this.stderr.length < 200) this.stderr.push(line);
    });
  }

  #onLine(line: string): void {
    const at = performance.now();
    const msg = JSON.parse(line) as { dest?: string; body: Body };
    const to = msg.body.in_reply_to;
    if (to === undefined) {
      this.history.pushes.push({ node: this.index, dest: msg.dest ?? '', body: msg.body, at });
      return;
    }
    const waiting = typeof to === 'number' ? this.#byMsgId.get(to) : undefined;
    if (waiting === undefined) {
      this.history.strays.push({ node: this.index, body: msg.body });
      return;
    }
    const { op } = waiting;
    op.replies += 1;
    if (op.replies > 1) return;
    op.complete = at;
    op.reply = msg.body;
    waiting.resolve(op);
  }

  /** Sends one request as client `src`; resolves with the recorded operation once answered. */
  request(body: Body, src: string): Promise<Op> {
    const msgId = ++this.#seq;
    const op: Op = { id: this.history.ops.length, node: this.index, src, msgId, req: body, invoke: performance.now(), replies: 0 };
    this.history.ops.push(op);
    return new Promise((resolve) => {
      // A request never answered is recorded as such (0 replies) instead of hanging the run.
      const timer = setTimeout(() => resolve(op), NO_REPLY_MS);
      this.#byMsgId.set(msgId, {
        op,
        resolve: (o) => {
          clearTimeout(timer);
          resolve(o);
        },
      });
      this.proc.stdin!.write(`${JSON.stringify({ src, dest: 'gateway', body: { ...body, msg_id: msgId } })}\n`);
    });
  }

  /** Resolves once the node answers (start-up done); not recorded in the history. */
  async ready(): Promise<void> {
    const msgId = ++this.#seq;
    await new Promise<void>((resolve) => {
      const op: Op = { id: -1, node: this.index, src: 'ready', msgId, req: { type: 'validate_session' }, invoke: 0, replies: 0 };
      this.#byMsgId.set(msgId, { op, resolve: () => resolve() });
      this.proc.stdin!.write(
        `${JSON.stringify({ src: 'ready', dest: 'gateway', body: { type: 'validate_session', msg_id: msgId, session_id: 'not-a-session' } })}\n`,
      );
    });
  }

  /** Requests sent and not yet answered. */
  get pending(): number {
    let n = 0;
    for (const { op } of this.#byMsgId.values()) if (op.replies === 0) n++;
    return n;
  }

  /** Closes stdin (the node answers what it read and exits), killing it if it lingers. */
  async stop(): Promise<void> {
    if (this.proc.exitCode !== null) return;
    this.proc.stdin!.end();
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    await this.#exited;
    clearTimeout(timer);
  }
}
