import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { required } from './required.js';

/**
 * True when a redis-server binary is on PATH (scripts/system-deps.sh installs it). Without one
 * it throws, so the test file fails, unless GATEWAY_TEST_SKIP names redis-server (helpers/required.ts).
 */
export function hasRedisServer(): boolean {
  return required('redis-server');
}

const live = new Set<ChildProcess>();
// Whatever happens to the test process, no redis-server outlives it.
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

/** A free TCP port on 127.0.0.1 (never 6379); with `bus`, port + 10000 is free too (cluster bus). */
export async function freePort(bus = false): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await listenOnce(0);
    if (port === 6379 || (bus && port + 10_000 > 65_535)) continue;
    if (bus && !(await isFree(port + 10_000))) continue;
    return port;
  }
  throw new Error('no free port found');
}

function listenOnce(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(port, '127.0.0.1', () => {
      const p = (srv.address() as { port: number }).port;
      srv.close(() => resolve(p));
    });
  });
}

async function isFree(port: number): Promise<boolean> {
  try {
    await listenOnce(port);
    return true;
  } catch {
    return false;
  }
}

/** Sends one inline command over a raw socket; resolves with the raw reply (or rejects). */
export function rawCommand(port: number, command: string, timeoutMs = 1000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no reply to ${command.split(' ')[0]} within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on('connect', () => sock.write(`${command}\r\n`));
    sock.on('data', (d) => {
      buf += d.toString();
      // A bulk reply ($N) is whole once its N bytes have arrived; others end at their first CRLF.
      const bulk = /^\$(\d+)\r\n/.exec(buf);
      const whole = bulk ? Buffer.byteLength(buf) >= bulk[0].length + Number(bulk[1]) + 2 : buf.endsWith('\r\n');
      if (whole) {
        clearTimeout(timer);
        sock.destroy();
        resolve(buf);
      }
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** Polls `check` every 50 ms until it holds (a failing check counts as not yet), or throws after `timeoutMs`. */
export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

export interface RedisServerOptions {
  /** AOF with fsync on every write: what Redis acknowledged survives kill -9. */
  persist?: boolean;
  /** Extra redis-server arguments. */
  args?: string[];
  port?: number;
  dir?: string;
}

/** One redis-server on a free port, in its own temp directory. */
export class RedisServer {
  readonly port: number;
  readonly dir: string;
  readonly #args: string[];
  #proc: ChildProcess | undefined;
  #ownDir: boolean;

  private constructor(port: number, dir: string, ownDir: boolean, args: string[]) {
    this.port = port;
    this.dir = dir;
    this.#ownDir = ownDir;
    this.#args = args;
  }

  static async start(o: RedisServerOptions = {}): Promise<RedisServer> {
    const port = o.port ?? (await freePort());
    const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'ag-redis-'));
    const persistence = o.persist ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'];
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', ...persistence, '--loglevel', 'warning', ...(o.args ?? [])];
    const server = new RedisServer(port, dir, o.dir === undefined, args);
    await server.restart();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.#proc?.pid;
  }

  /** Starts (again) on the same port and directory; resolves once it answers PING. */
  async restart(): Promise<void> {
    const proc = spawn('redis-server', this.#args, { stdio: ['ignore', 'ignore', 'inherit'] });
    live.add(proc);
    proc.once('exit', () => live.delete(proc));
    this.#proc = proc;
    await waitFor(`redis-server on port ${this.port}`, async () => (await rawCommand(this.port, 'PING', 500)).startsWith('+PONG'));
  }

  /** kill -9: no shutdown, no save; sockets close at once. */
  async crash(): Promise<void> {
    const proc = this.#proc;
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGKILL');
    await exited;
  }

  /** SIGSTOP / SIGCONT: the server hangs with its sockets open (a stalled, not a dead, server). */
  pause(): void {
    this.#proc?.kill('SIGSTOP');
  }

  resume(): void {
    this.#proc?.kill('SIGCONT');
  }

  command(cmd: string): Promise<string> {
    return rawCommand(this.port, cmd);
  }

  async stop(): Promise<void> {
    this.resume();
    await this.crash();
    if (this.#ownDir) rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface RedisClusterOptions {
  masters?: number;
  /** Replicas per master (default 0). */
  replicas?: number;
  /** cluster-node-timeout, ms: how long a master may be unreachable before its replica is promoted. */
  nodeTimeoutMs?: number;
}

/** A Redis Cluster on free ports, built with redis-cli --cluster create (3 masters, no replicas by default). */
export class RedisCluster {
  readonly nodes: RedisServer[];
  readonly #dir: string;

  private constructor(nodes: RedisServer[], dir: string) {
    this.nodes = nodes;
    this.#dir = dir;
  }

  static async start(o: RedisClusterOptions | number = {}): Promise<RedisCluster> {
    const { masters = 3, replicas = 0, nodeTimeoutMs = 5000 } = typeof o === 'number' ? { masters: o } : o;
    const dir = mkdtempSync(join(tmpdir(), 'ag-redis-cluster-'));
    const nodes: RedisServer[] = [];
    try {
      for (let i = 0; i < masters * (1 + replicas); i++) {
        const port = await freePort(true);
        const nodeDir = mkdtempSync(join(dir, `n${i}-`));
        nodes.push(
          await RedisServer.start({
            port,
            dir: nodeDir,
            args: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', String(nodeTimeoutMs)],
          }),
        );
      }
      execFileSync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', String(replicas), '--cluster-yes'], {
        stdio: 'ignore',
        timeout: 30_000,
      });
      for (const n of nodes) {
        await waitFor(`cluster state ok on ${n.port}`, async () => (await n.command('CLUSTER INFO')).includes('cluster_state:ok'));
      }
      if (replicas > 0) {
        // Every replica is attached and synced (so a failover has something to promote), and
        // every node knows it.
        const replicaCount = masters * replicas;
        for (const n of nodes) {
          await waitFor(
            `replicas known to ${n.port}`,
            async () => (await n.command('CLUSTER NODES')).split('\n').filter((l) => /[ ,](slave|replica)[ ,]/.test(l)).length === replicaCount,
            20_000,
          );
        }
        for (const n of nodes) {
          await waitFor(
            `replica sync on ${n.port}`,
            async () => {
              const info = await n.command('INFO replication');
              return info.includes('role:master') || info.includes('master_link_status:up');
            },
            20_000,
          );
        }
      }
    } catch (err) {
      for (const n of nodes) await n.stop();
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    return new RedisCluster(nodes, dir);
  }

  /** The node ids and flags of `CLUSTER NODES`, as one live node sees them, by port. */
  async view(): Promise<Map<number, { id: string; flags: string[]; masterId: string }>> {
    const lines = await this.#view();
    const byPort = new Map<number, { id: string; flags: string[]; masterId: string }>();
    for (const line of lines) {
      const [id, addr, flags, masterId] = line.split(' ');
      const port = Number(addr?.split('@')[0]?.split(':')[1]);
      if (id && flags && masterId) byPort.set(port, { id, flags: flags.split(','), masterId });
    }
    return byPort;
  }

  /** Resolves once one of `master`'s former replicas is a master (a failover happened); the time it took, ms. */
  async waitForPromotion(master: RedisServer, replicaPorts: number[], timeoutMs = 20_000): Promise<number> {
    const start = performance.now();
    await waitFor(
      `promotion of a replica of ${master.port}`,
      async () => {
        const view = await this.view();
        return replicaPorts.some((p) => view.get(p)?.flags.includes('master'));
      },
      timeoutMs,
    );
    return performance.now() - start;
  }

  async #view(): Promise<string[]> {
    for (const n of this.nodes) {
      const out = await n.command('CLUSTER NODES').catch(() => '');
      if (out.includes('myself'))
        return out
          .split('\n')
          .map((l) => l.trim())
          .filter(Boolean);
    }
    throw new Error('no cluster node answers CLUSTER NODES');
  }

  /** The GATEWAY_STORE form of a cluster: every seed node, comma-separated. */
  get url(): string {
    return `redis://${this.nodes.map((n) => `127.0.0.1:${n.port}`).join(',')}`;
  }

  async stop(): Promise<void> {
    for (const n of this.nodes) await n.stop();
    rmSync(this.#dir, { recursive: true, force: true });
  }
}
