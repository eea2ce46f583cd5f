import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort, sleep, start, stop } from './proc.js';

/** Debian keeps the server binaries off PATH: `pg_config --bindir`, else the newest /usr/lib/postgresql/N/bin. */
export function postgresBinDir() {
  try {
    const dir = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
    if (existsSync(join(dir, 'initdb'))) return dir;
  } catch {
    // no pg_config
  }
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'postgres'))) : [];
  versions.sort((a, b) => Number(b) - Number(a));
  if (!versions[0]) throw new Error("PostgreSQL server binaries not found (scripts/system-deps.sh installs Debian's postgresql)");
  return join(root, versions[0], 'bin');
}

/** initdb and postgres refuse root: run them as the `postgres` system user then. */
const asServerUser = (cmd, args) =>
  process.getuid?.() === 0 ? ['setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', '--', cmd, ...args]] : [cmd, args];

/**
 * The bench's own PostgreSQL: a fresh cluster in a temporary folder on a free port (never
 * 5432), fsync off (nothing here must survive a power cut). Resolves once it answers.
 */
export async function startPostgres() {
  const bin = postgresBinDir();
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'gw-bench-postgres-'));
  if (process.getuid?.() === 0) {
    const [, , uid, gid] = execFileSync('getent', ['passwd', 'postgres'], { encoding: 'utf8' }).trim().split(':');
    chownSync(dir, Number(uid), Number(gid));
  }
  const [initCmd, initArgs] = asServerUser(join(bin, 'initdb'), [
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
  execFileSync(initCmd, initArgs, { stdio: 'ignore', timeout: 60_000 });
  const [cmd, args] = asServerUser(join(bin, 'postgres'), [
    '-D',
    join(dir, 'data'),
    '-p',
    String(port),
    '-k',
    dir,
    '-c',
    'listen_addresses=127.0.0.1',
    '-c',
    'fsync=off',
    '-c',
    'max_connections=300',
  ]);
  const child = start(cmd, args);
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  for (let i = 0; ; i++) {
    const c = new pg.Client({ connectionString: url });
    c.on('error', () => {});
    try {
      await c.connect();
      await c.end();
      break;
    } catch {
      if (i > 200 || child.exitCode !== null) throw new Error(`postgres did not start: ${child.stderrTail()}`);
      await sleep(50);
    }
  }
  /**
   * One statement on a fresh connection.
   * @param {string} sql
   * @param {unknown[]} [values]
   * @returns {Promise<any[]>}
   */
  const query = async (sql, values = []) => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      return (await c.query(sql, values)).rows;
    } finally {
      await c.end();
    }
  };
  return {
    port,
    url,
    pid: child.pid,
    query,
    stop: async () => {
      // Fast shutdown: the backends end with the postmaster.
      await stop(child, 'SIGINT');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** One PostgreSQL per bench run, shared by the PostgreSQL rows. */
export async function sharedPostgres(ctx) {
  if (!ctx.postgres) {
    ctx.postgres = await startPostgres();
    ctx.cleanups.push(() => ctx.postgres.stop());
  }
  return ctx.postgres;
}
