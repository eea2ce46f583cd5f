import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from './redis-server.js';

/**
 * The directory of Debian's PostgreSQL binaries: `pg_config --bindir` when it has initdb,
 * else the newest /usr/lib/postgresql/N/bin (Debian keeps them off PATH).
 * Throws when there is none: a test that needs PostgreSQL fails, it never skips.
 */
export function postgresBinDir(): string {
  try {
    const dir = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
    if (existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'postgres'))) return dir;
  } catch {
    // no pg_config: look where Debian puts the server
  }
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'postgres'))) : [];
  versions.sort((a, b) => Number(b) - Number(a));
  if (versions[0] === undefined) throw new Error("PostgreSQL server binaries not found (run scripts/system-deps.sh, which installs Debian's postgresql)");
  return join(root, versions[0], 'bin');
}

/**
 * initdb and postgres refuse to run as root: as root, run them as the `postgres` system
 * user (Debian's package creates it) through setpriv, which execs in place, so the pid we
 * hold is the server's own.
 */
function asServerUser(cmd: string, args: string[]): [string, string[]] {
  if (process.getuid?.() !== 0) return [cmd, args];
  return ['setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', '--', cmd, ...args]];
}

function serverIds(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = execFileSync('getent', ['passwd', 'postgres'], { encoding: 'utf8' }).trim();
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

const live = new Set<ChildProcess>();
// Whatever happens to the test process, no server outlives it.
process.once('exit', () => {
  // The backends exit on their own once the postmaster is gone.
  for (const p of live) p.kill('SIGKILL');
});

/** One PostgreSQL server of our own: a fresh cluster in a temp directory, on a free port (never 5432). */
export class PostgresServer {
  readonly port: number;
  readonly dir: string;
  readonly #bin: string;
  #proc: ChildProcess | undefined;

  private constructor(port: number, dir: string, bin: string) {
    this.port = port;
    this.dir = dir;
    this.#bin = bin;
  }

  static async start(): Promise<PostgresServer> {
    const bin = postgresBinDir();
    const dir = mkdtempSync(join(tmpdir(), 'ag-postgres-'));
    const ids = serverIds();
    if (ids !== undefined) chownSync(dir, ids.uid, ids.gid);
    let port = await freePort();
    while (port === 5432) port = await freePort();
    const server = new PostgresServer(port, dir, bin);
    try {
      const [cmd, args] = asServerUser(join(bin, 'initdb'), [
        '-D',
        join(dir, 'data'),
        '-U',
        'postgres',
        '-A',
        'trust',
        '-E',
        'UTF8',
        '--locale=C',
        '--no-sync',
      ]);
      execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 60_000 });
      await server.restart();
    } catch (err) {
      await server.stop();
      throw err;
    }
    return server;
  }

  /** The database URL (user postgres, trust authentication on 127.0.0.1). */
  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  /** `GATEWAY_STORE` for a store in its own schema. */
  storeUrl(schema: string): string {
    return `${this.url}?schema=${schema}`;
  }

  /** Starts (again) on the same port and data; resolves once it answers a query. */
  async restart(): Promise<void> {
    const [cmd, args] = asServerUser(join(this.#bin, 'postgres'), [
      '-D',
      join(this.dir, 'data'),
      '-p',
      String(this.port),
      '-k',
      this.dir,
      '-c',
      'listen_addresses=127.0.0.1',
      // A test server: nothing here must survive a power cut, only a killed process (the
      // OS keeps what was written), so no fsync.
      '-c',
      'fsync=off',
      '-c',
      'full_page_writes=off',
      '-c',
      'shared_buffers=32MB',
      '-c',
      'max_connections=200',
    ]);
    const proc = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'ignore'] });
    live.add(proc);
    proc.once('exit', () => live.delete(proc));
    this.#proc = proc;
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`postgres exited with ${proc.exitCode} on port ${this.port}`);
      if (await this.#answers()) return;
      if (Date.now() > deadline) throw new Error(`postgres on port ${this.port} did not answer within 30 s`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async #answers(): Promise<boolean> {
    const c = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: 1000 });
    c.on('error', () => {});
    try {
      await c.connect();
      await c.query('SELECT 1');
      return true;
    } catch {
      return false;
    } finally {
      await c.end().catch(() => {});
    }
  }

  /**
   * The postmaster and its children. Each backend makes itself a process-group leader
   * (so the postmaster can signal its own children), so a signal to the postmaster's group
   * would miss them: they are found by parent pid instead.
   */
  #pids(): number[] {
    const pid = this.#proc?.pid;
    if (pid === undefined || this.#proc?.exitCode !== null || this.#proc?.signalCode !== null) return [];
    const pids = [pid];
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
        // pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        if (ppid === pid) pids.push(Number(entry));
      } catch {
        // exited meanwhile
      }
    }
    return pids;
  }

  #signal(sig: NodeJS.Signals): void {
    for (const pid of this.#pids()) {
      try {
        process.kill(pid, sig);
      } catch {
        // already gone
      }
    }
  }

  /** kill -9 of the postmaster and every backend: no shutdown; sockets close at once. */
  async crash(): Promise<void> {
    const proc = this.#proc;
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    const pids = this.#pids();
    for (const sig of ['SIGKILL', 'SIGCONT'] as const) {
      for (const pid of pids) {
        try {
          process.kill(pid, sig);
        } catch {
          // already gone
        }
      }
    }
    await exited;
    // Backends are reaped by init, not by us: wait until none is left holding shared memory.
    const deadline = Date.now() + 5000;
    while (pids.some((p) => existsSync(`/proc/${p}/stat`) && !readFileSync(`/proc/${p}/stat`, 'utf8').includes(') Z ')) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** SIGSTOP / SIGCONT of every server process: it hangs with its sockets open. */
  pause(): void {
    this.#signal('SIGSTOP');
  }

  resume(): void {
    this.#signal('SIGCONT');
  }

  /** One SQL statement on a fresh connection (for tests that look at the tables). */
  async query<R extends pg.QueryResultRow = Record<string, unknown>>(sql: string, values: unknown[] = []): Promise<R[]> {
    const c = new pg.Client({ connectionString: this.url });
    c.on('error', () => {});
    await c.connect();
    try {
      return (await c.query<R>(sql, values)).rows;
    } finally {
      await c.end();
    }
  }

  async stop(): Promise<void> {
    await this.crash();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
