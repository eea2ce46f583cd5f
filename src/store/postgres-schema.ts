import type pg from 'pg';

/** The layout this code reads and writes; a later layout migrates from the number in `schema_version`. */
export const SCHEMA_VERSION = 1;

/**
 * The schema as SQL: always quoted, so that a name that is also a reserved word (`user`,
 * `order`) names the schema rather than breaking the statement. postgres-url.ts allows only
 * lower-case letters, digits and `_`, so the quoted name is the one PostgreSQL would fold an
 * unquoted one to, and it cannot hold a quote.
 */
export const quoted = (identifier: string): string => `"${identifier}"`;

/** The tables of one schema (names are checked identifiers: see postgres-url.ts). */
export function tables(schema: string) {
  const s = quoted(schema);
  return {
    version: `${s}.schema_version`,
    /** Keyv's table: `key`, `value` (Keyv's JSON with `expires`), plus the expiry as a column. */
    entries: `${s}.entries`,
    /** The per-user index: members with their own expiry. */
    members: `${s}.index_members`,
  };
}

/**
 * Version 1. `expires` is derived from the value Keyv writes (`…,"expires":N}` at its end,
 * the same suffix the Redis swap relies on), so Keyv's plain upsert keeps it right and every
 * read and the sweep can filter on it by index. A regular expression rather than a JSON
 * cast: JSON parsing refuses `\u0000` anywhere in the value, and would refuse the write.
 */
function layout(schema: string): string[] {
  const t = tables(schema);
  return [
    `CREATE TABLE IF NOT EXISTS ${t.entries} (
       key varchar(255) PRIMARY KEY,
       value text NOT NULL,
       expires bigint GENERATED ALWAYS AS ((substring(value from ',"expires":([0-9]+)}$'))::bigint) STORED)`,
    `CREATE INDEX IF NOT EXISTS entries_expires ON ${t.entries} (expires)`,
    `CREATE TABLE IF NOT EXISTS ${t.members} (
       key text NOT NULL,
       member text NOT NULL,
       expires bigint NOT NULL,
       PRIMARY KEY (key, member))`,
    `CREATE INDEX IF NOT EXISTS index_members_expires ON ${t.members} (expires)`,
  ];
}

/** Whether every one of `names` (quoted as in `tables`) is a table there. */
async function present(client: pg.PoolClient, names: string[]): Promise<boolean> {
  const rows = (await client.query<{ all: boolean }>('SELECT bool_and(to_regclass(n) IS NOT NULL) AS all FROM unnest($1::text[]) n', [names])).rows;
  return rows[0]?.all === true;
}

/**
 * SQLSTATEs that say the gateway's schema or tables are not there (42P01 undefined_table,
 * 3F000 invalid_schema_name): dropped, or a server back without its data. The store makes
 * them again, as at start-up; what they held is lost.
 */
export const SCHEMA_GONE = new Set(['42P01', '3F000']);
/** 42501 insufficient_privilege: the role may not use the tables; waiting cures it only once an operator grants. */
export const NOT_ALLOWED = '42501';

/**
 * Checks that the gateway's role may use its tables right now: USAGE on the schema, and each
 * of SELECT, INSERT, UPDATE and DELETE on `entries` and `index_members` (has_table_privilege
 * of a list is true when any one is held: each is asked alone). Rejects with the database's
 * own error when the schema or a table is gone, and with a 42501 error when a privilege is
 * missing. The health probe of a store whose schema is made.
 */
export async function checkTables(db: pg.Pool, schema: string): Promise<void> {
  const t = tables(schema);
  const rows = (
    await db.query<{ ok: boolean }>(
      `SELECT has_schema_privilege($1, 'USAGE') AND bool_and(has_table_privilege(n, p)) AS ok
       FROM unnest($2::text[]) n, unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE']) p`,
      [schema, [t.entries, t.members]],
    )
  ).rows;
  if (rows[0]?.ok !== true) {
    throw Object.assign(new Error(`permission denied: the role lacks USAGE on schema ${schema} or SELECT, INSERT, UPDATE or DELETE on its tables`), {
      code: NOT_ALLOWED,
    });
  }
}

/**
 * Creates or migrates the schema, in one transaction under an advisory lock: nodes that
 * start together take turns, and the later ones find the work done. Idempotent.
 */
export async function migrate(pool: pg.Pool, schema: string): Promise<void> {
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`auth-gateway schema ${schema}`]);
    const t = tables(schema);
    // CREATE … IF NOT EXISTS asks for CREATE on the database or the schema even when nothing is
    // made: only run where something is missing, so that a role granted only USAGE and its
    // tables' rights starts on a schema made before (and a dropped table is made again).
    const made = await present(client, [t.version, t.entries, t.members]);
    if (!made) {
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoted(schema)}`);
      await client.query(`CREATE TABLE IF NOT EXISTS ${t.version} (version integer NOT NULL)`);
    }
    const rows = (await client.query<{ version: number }>(`SELECT max(version) AS version FROM ${t.version}`)).rows;
    const current = rows[0]?.version ?? 0;
    if (current > SCHEMA_VERSION) throw new Error(`schema ${schema} has layout version ${current}, newer than this gateway's ${SCHEMA_VERSION}`);
    if (current < 1 || !made) for (const sql of layout(schema)) await client.query(sql);
    if (current < 1) {
      await client.query(`DELETE FROM ${t.version}`);
      await client.query(`INSERT INTO ${t.version} (version) VALUES ($1)`, [SCHEMA_VERSION]);
    }
    await client.query('COMMIT');
  } catch (err) {
    broken = true;
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release(broken);
  }
}
