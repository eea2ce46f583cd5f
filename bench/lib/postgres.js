import { rmSync } from 'node:fs';
import { databaseUrl, initCluster, postgresBinDir, queryOnce, serverCommand, waitUntilAnswers } from '../../test/helpers/postgres-cluster.js';
import { freePort, start, stop } from './proc.js';

export { postgresBinDir };

/**
 * The bench's own PostgreSQL: a fresh cluster in a temporary folder on a free port (never
 * 5432), fsync off (nothing here must survive a power cut). Resolves once it answers.
 */
export async function startPostgres() {
  const bin = postgresBinDir();
  const port = await freePort();
  const dir = initCluster(bin, 'gw-bench-postgres-');
  const [cmd, args] = serverCommand(bin, dir, port, ['fsync=off', 'max_connections=300']);
  const child = start(cmd, args);
  const url = databaseUrl(port);
  try {
    await waitUntilAnswers(url, () => (child.exitCode !== null ? `postgres did not start: ${child.stderrTail()}` : undefined), 15_000);
  } catch (err) {
    await stop(child, 'SIGINT');
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    port,
    url,
    pid: child.pid,
    /**
     * One statement on a fresh connection.
     * @param {string} sql
     * @param {unknown[]} [values]
     * @returns {Promise<any[]>}
     */
    query: (sql, values = []) => queryOnce(url, sql, values),
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
