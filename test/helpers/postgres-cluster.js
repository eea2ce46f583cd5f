// A PostgreSQL server of our own, for the tests (postgres-server.ts) and the benchmarks
// (bench/lib/postgres.js): Debian's binaries, a fresh cluster in a temporary directory, run as
// the `postgres` user when we are root. Plain JavaScript with JSDoc types, so that node runs it
// in the bench and the tests' TypeScript checks it strictly.
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

/**
 * The directory of Debian's PostgreSQL binaries: `pg_config --bindir` when it has initdb,
 * else the newest /usr/lib/postgresql/N/bin (Debian keeps them off PATH).
 * Throws when there is none: a test that needs PostgreSQL fails, it never skips.
 * @returns {string}
 */
export function postgresBinDir() {
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
 * @param {string} cmd
 * @param {string[]} args
 * @returns {[string, string[]]}
 */
export function asServerUser(cmd, args) {
  if (process.getuid?.() !== 0) return [cmd, args];
  return ['setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', '--', cmd, ...args]];
}

/**
 * A fresh cluster (user postgres, trust authentication, UTF-8, no fsync at creation) in a new
 * temporary directory named `prefix`..., owned by the server's user; returns the directory
 * (the data are in its `data`, the socket goes in the directory itself).
 * @param {string} bin
 * @param {string} prefix
 * @returns {string}
 */
export function initCluster(bin, prefix) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (process.getuid?.() === 0) {
    const [, , uid, gid] = execFileSync('getent', ['passwd', 'postgres'], { encoding: 'utf8' }).trim().split(':');
    chownSync(dir, Number(uid), Number(gid));
  }
  const [cmd, args] = asServerUser(join(bin, 'initdb'), ['-D', join(dir, 'data'), '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
  try {
    execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 60_000 });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return dir;
}

/**
 * The command that runs the server of `dir` on 127.0.0.1:`port`, with `settings` (`name=value`).
 * @param {string} bin
 * @param {string} dir
 * @param {number} port
 * @param {readonly string[]} settings
 * @returns {[string, string[]]}
 */
export function serverCommand(bin, dir, port, settings) {
  return asServerUser(join(bin, 'postgres'), [
    '-D',
    join(dir, 'data'),
    '-p',
    String(port),
    '-k',
    dir,
    '-c',
    'listen_addresses=127.0.0.1',
    ...settings.flatMap((s) => ['-c', s]),
  ]);
}

/** The URL of the cluster's `postgres` database on `port` (user postgres, trust). @param {number} port */
export const databaseUrl = (port) => `postgres://postgres@127.0.0.1:${port}/postgres`;

/**
 * True when the server at `url` answers a query within a second.
 * @param {string} url
 * @returns {Promise<boolean>}
 */
export async function answers(url) {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
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
 * Waits until the server at `url` answers; throws once `exited()` says it is gone, or after `timeoutMs`.
 * @param {string} url
 * @param {() => string | undefined} exited why the server is gone, if it is
 * @param {number} timeoutMs
 * @returns {Promise<void>}
 */
export async function waitUntilAnswers(url, exited, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const gone = exited();
    if (gone !== undefined) throw new Error(gone);
    if (await answers(url)) return;
    if (Date.now() > deadline) throw new Error(`postgres at ${url} did not answer within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * One SQL statement on a fresh connection.
 * @template {pg.QueryResultRow} R
 * @param {string} url
 * @param {string} sql
 * @param {unknown[]} [values]
 * @returns {Promise<R[]>}
 */
export async function queryOnce(url, sql, values = []) {
  const c = new pg.Client({ connectionString: url });
  c.on('error', () => {});
  await c.connect();
  try {
    return (await c.query(sql, values)).rows;
  } finally {
    await c.end();
  }
}
