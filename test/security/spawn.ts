/**
 * Real gateway processes for the security, fuzz and fault tests: `node dist/cli.js stdio`
 * driven over its pipes, and `node dist/cli.js serve` on a free port. Every process started
 * here is killed when the test process exits, whatever happens.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

type Body = Record<string, unknown> & { type: string };
export interface Envelope {
  src: string;
  dest: string;
  body: Body;
}

function track(proc: ChildProcess): void {
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
}

/** Splits a stream into lines as they arrive. */
function lines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let rest = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    rest += chunk;
    let nl: number;
    while ((nl = rest.indexOf('\n')) >= 0) {
      onLine(rest.slice(0, nl));
      rest = rest.slice(nl + 1);
    }
  });
  stream.on('end', () => {
    if (rest) onLine(rest);
  });
}

export interface StdioNode {
  proc: ChildProcess;
  /** Raw stdout lines, in order. */
  stdout: string[];
  /** Raw stderr lines, in order. */
  stderr: string[];
  call(body: Body, src?: string, timeoutMs?: number): Promise<Body>;
  /** Writes text as is. */
  write(text: string): void;
  /** Closes stdin and resolves with the exit code (kills after `timeoutMs`). */
  end(timeoutMs?: number): Promise<number | null>;
  kill(): void;
}

/** Spawns `node [nodeArgs] dist/cli.js stdio [args]` with `env` (on top of a clean environment). */
export function spawnStdio(env: Record<string, string>, args: string[] = [], nodeArgs: string[] = []): StdioNode {
  const proc = spawn(process.execPath, [...nodeArgs, CLI, 'stdio', ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  track(proc);
  const stdout: string[] = [];
  const stderr: string[] = [];
  const waiting = new Map<number, (b: Body) => void>();
  lines(proc.stdout!, (line) => {
    stdout.push(line);
    try {
      const id = (JSON.parse(line) as Envelope).body?.in_reply_to;
      if (typeof id === 'number') waiting.get(id)?.((JSON.parse(line) as Envelope).body);
    } catch {
      // not JSON: the test looks at stdout itself
    }
  });
  lines(proc.stderr!, (line) => stderr.push(line));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  let seq = 0;
  return {
    proc,
    stdout,
    stderr,
    call(body, src = 'c1', timeoutMs = 5000) {
      const msg_id = ++seq;
      return new Promise<Body>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no reply to ${body.type} (msg_id ${msg_id})`)), timeoutMs);
        waiting.set(msg_id, (b) => {
          clearTimeout(t);
          waiting.delete(msg_id);
          resolve(b);
        });
        proc.stdin!.write(`${JSON.stringify({ src, dest: 'gateway', body: { ...body, msg_id } })}\n`);
      });
    },
    write(text) {
      proc.stdin!.write(text);
    },
    async end(timeoutMs = 5000) {
      proc.stdin!.end();
      const t = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
    kill() {
      proc.kill('SIGKILL');
    },
  };
}

export interface ServeNode {
  proc: ChildProcess;
  port: number;
  url: string;
  stderr: string[];
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code or signal. */
  stop(graceMs?: number): Promise<number | string | null>;
  /** kill -9. */
  crash(): Promise<void>;
}

/** A free TCP port on 127.0.0.1 (never 6379). */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => resolve(p));
      });
    });
    if (port !== 6379) return port;
  }
}

/** Spawns `node dist/cli.js serve` on a free port and resolves once /healthz answers. */
export async function spawnServe(env: Record<string, string>, args: string[] = []): Promise<ServeNode> {
  const port = env.GATEWAY_PORT ? Number(env.GATEWAY_PORT) : await freePort();
  const proc = spawn(process.execPath, [CLI, 'serve', ...args], {
    // No drain delay or window unless a test asks: nothing balances these nodes, and stop() waits.
    env: { PATH: process.env.PATH ?? '', GATEWAY_HOST: '127.0.0.1', GATEWAY_DRAIN_DELAY: '0', GATEWAY_DRAIN_WINDOW: '0', ...env, GATEWAY_PORT: String(port) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  track(proc);
  const stderr: string[] = [];
  lines(proc.stderr!, (line) => stderr.push(line));
  const exited = new Promise<number | string | null>((resolve) => proc.once('exit', (code, signal) => resolve(code ?? signal)));
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`serve exited: ${stderr.join('\n')}`);
    const ok = await fetch(`http://127.0.0.1:${port}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`serve did not start: ${stderr.join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    proc,
    port,
    url: `ws://127.0.0.1:${port}/`,
    stderr,
    async stop(graceMs = 5000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return exited;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      const r = await exited;
      clearTimeout(t);
      return r;
    },
    async crash() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGKILL');
      await exited;
    },
  };
}
