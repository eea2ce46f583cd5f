import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildInputs } from '../../scripts/build-inputs.mjs';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = join(ROOT, 'dist', 'cli.js');

/**
 * True when a build input (scripts/build-inputs.mjs: sources and compiler settings, as Make
 * has them) is newer than the last build. The build stamp (dist/.built, written when a whole
 * build ends), not the outputs: an incremental build leaves an output it did not change with
 * its old time.
 */
function stale(): boolean {
  let built: number;
  try {
    built = statSync(join(ROOT, 'dist', '.built')).mtimeMs;
  } catch {
    built = 0;
  }
  return buildInputs().some((p) => statSync(p).mtimeMs > built);
}

const sleep = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/**
 * Builds dist/ (server and client) when a source is newer than it: these tests run the real
 * CLI. Test files run in parallel workers: one builds (holding a lock directory), the others wait.
 */
export function ensureBuilt(): void {
  const lock = join(ROOT, 'dist', '.build-lock');
  mkdirSync(join(ROOT, 'dist'), { recursive: true });
  for (let waited = 0; stale(); waited += 100) {
    try {
      mkdirSync(lock);
    } catch {
      if (waited > 120_000) throw new Error(`waited 120 s for ${lock}; remove it if no build is running`);
      sleep(100);
      continue;
    }
    try {
      if (stale()) execFileSync('npm', ['run', '-s', 'build'], { cwd: ROOT, stdio: 'inherit' });
    } finally {
      rmdirSync(lock);
    }
  }
}

export interface ServerProcess {
  child: ChildProcess;
  url: string;
  http: string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const children = new Set<ChildProcess>();

/** `node dist/cli.js serve` on a free port; resolves once it logs that it listens. A variable given as undefined is not passed on (one set but empty would be refused). */
export function spawnServer(env: Record<string, string | undefined> = {}, args: string[] = []): Promise<ServerProcess> {
  const child = spawn(process.execPath, [CLI, 'serve', ...args], {
    cwd: ROOT,
    // No drain delay or window unless a test asks: nothing balances these nodes.
    env: {
      ...process.env,
      GATEWAY_PORT: '0',
      GATEWAY_HOST: '127.0.0.1',
      GATEWAY_LOG_LEVEL: 'info',
      GATEWAY_DRAIN_DELAY: '0',
      GATEWAY_DRAIN_WINDOW: '0',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let err = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    }),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${err}`)), 15_000);
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      err += d;
      const m = /"url":"(ws:\/\/[^"]+)"/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1]!, http: m[1]!.replace(/^ws/, 'http').replace(/\/$/, ''), stderr: () => err, exited });
      }
    });
    void exited.then((e) => reject(new Error(`serve exited (${e.code ?? e.signal}): ${err}`)));
  });
}

/** Kills every server process still running (afterAll). */
export async function killAll(): Promise<void> {
  await Promise.all(
    [...children].map((c) => {
      const done = new Promise((r) => c.once('exit', r));
      c.kill('SIGKILL');
      return done;
    }),
  );
}
