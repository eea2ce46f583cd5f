import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import type pg from 'pg';
import { databaseUrl, initCluster, postgresBinDir, queryOnce, serverCommand, waitUntilAnswers } from './postgres-cluster.js';
import { freePort } from './redis-server.js';

export { postgresBinDir };

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
    let port = await freePort();
    while (port === 5432) port = await freePort();
    const dir = initCluster(bin, 'ag-postgres-');
    const server = new PostgresServer(port, dir, bin);
    try {
      await server.restart();
    } catch (err) {
      await server.stop();
      throw err;
    }
    return server;
  }

  /** The database URL (user postgres, trust authentication on 127.0.0.1). */
  get url(): string {
    return databaseUrl(this.port);
  }

  /** `GATEWAY_STORE` for a store in its own schema. */
  storeUrl(schema: string): string {
    return `${this.url}?schema=${schema}`;
  }

  /** Starts (again) on the same port and data; resolves once it answers a query. */
  async restart(): Promise<void> {
    // A test server: nothing here must survive a power cut, only a killed process (the OS
    // keeps what was written), so no fsync.
    const [cmd, args] = serverCommand(this.#bin, this.dir, this.port, ['fsync=off', 'full_page_writes=off', 'shared_buffers=32MB', 'max_connections=200']);
    const proc = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'ignore'] });
    live.add(proc);
    proc.once('exit', () => live.delete(proc));
    this.#proc = proc;
    await waitUntilAnswers(this.url, () => (proc.exitCode !== null ? `postgres exited with ${proc.exitCode} on port ${this.port}` : undefined), 30_000);
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
    const [postmaster, ...backends] = this.#pids();
    if (postmaster === undefined) return;
    // The postmaster first: once it is stopped it forks no new backend, so the list of its
    // children read after that is complete (read before, a backend forked for a new pool
    // connection in between would go on answering).
    const send = (pid: number) => {
      try {
        process.kill(pid, sig);
      } catch {
        // already gone
      }
    };
    send(postmaster);
    for (const pid of sig === 'SIGSTOP' ? this.#pids().slice(1) : backends) send(pid);
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
  query<R extends pg.QueryResultRow = Record<string, unknown>>(sql: string, values: unknown[] = []): Promise<R[]> {
    return queryOnce<R>(this.url, sql, values);
  }

  async stop(): Promise<void> {
    await this.crash();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
