import { createHash } from 'node:crypto';
import type pg from 'pg';
import { codePointCount } from '../protocol/code-points.js';
import type { Atomics } from './keyv-store.js';
import { Batcher } from './batcher.js';
import { ParsedReads } from './parsed-reads.js';
import { tables } from './postgres-schema.js';

/** What the atomics need of a pool: `pg.Pool`'s query with a prepared-statement name. */
export interface Queryable {
  query<R extends pg.QueryResultRow>(config: { name: string; text: string; values: unknown[] }): Promise<pg.QueryResult<R>>;
}

/** Calls per statement at most. */
const MAX_BATCH = 1000;
/** Batched statements of one kind in flight at once (see Batcher). */
const MAX_IN_FLIGHT = 2;
/** Rows per sweep statement: short enough that no statement holds many row locks for long. */
export const SWEEP_BATCH = 1000;

export type Op =
  | 'set'
  | 'get'
  | 'getMany'
  | 'take'
  | 'remove'
  | 'removeMany'
  | 'swap'
  | 'swapUntil'
  | 'swapIf'
  | 'claim'
  | 'indexAdd'
  | 'indexRemove'
  | 'indexMembers'
  | 'indexMembersMany'
  | 'sweepEntries'
  | 'sweepMembers';

/** Where Keyv's stored form `{"value":…,"expires":N}` carries the expiry it computed on this node's clock. */
const EXPIRES_SUFFIX = ',"expires":';

/** Keyv's stored form `{"value":…,"expires":N}`, parsed (expiry is checked in SQL). */
const parseStored = (raw: string): { value: unknown } => JSON.parse(raw) as { value: unknown };

/** Longest key of the entries table, in characters (`key varchar(255)`, postgres-schema.ts). */
const ENTRY_KEY_CHARS = 255;

/** A key PostgreSQL cannot hold as it is, stored under `#` and its SHA-256 (no key the gateway makes starts with `#`). */
const hashedKey = (key: string): string => `#${createHash('sha256').update(key).digest('base64url')}`;

/**
 * The key of the entries row for `key`. PostgreSQL text cannot hold U+0000 and the column
 * holds 255 characters: such a key (a jti with U+0000, or a long one, of a token signed
 * elsewhere with the key) failed its statement, and with it every key of its batch. It was
 * never stored, so it goes under its hash; every other key is stored as it is, as before.
 */
const entryKey = (key: string): string =>
  key.includes('\u0000') || (key.length > ENTRY_KEY_CHARS && codePointCount(key) > ENTRY_KEY_CHARS) ? hashedKey(key) : key;

/** The key of the index rows for `key` (a text column: only U+0000 cannot be held; see entryKey). */
const indexKey = (key: string): string => (key.includes('\u0000') ? hashedKey(key) : key);

/** The value of a row that is no longer stored (take, swap): reads go through ParsedReads. */
const decode = (raw: string): unknown => parseStored(raw).value;

/**
 * Store operations Keyv has no word for, and the reads that bypass it, each one SQL
 * statement on the shared pool, atomic in PostgreSQL: DELETE … RETURNING for take and
 * delete, WITH (SELECT … FOR UPDATE) UPDATE for swap (the row lock makes concurrent
 * swaps queue, and each re-reads the row its predecessor wrote), INSERT … ON CONFLICT for
 * the index. Every read compares `expires` with now in SQL: PostgreSQL has no TTL, and a
 * row past its end may still be there until the sweep removes it.
 *
 * One clock, PostgreSQL's, decides every expiry: a write's `expires` is PostgreSQL's time plus
 * the TTL, and every read, take, delete, swap, claim, index read and the sweep compares with
 * PostgreSQL's time, never with the calling node's. Nodes on one database whose clocks differ
 * therefore agree on what is live: a node running ahead sweeps, claims and skips nothing the
 * others hold live, and a node running behind serves nothing they hold ended. Only the times
 * a caller passes (a session's end to move to, a deadline) are its own, and are compared with
 * PostgreSQL's clock as they are.
 * Reads, deletes and index reads are batched (Batcher): one statement for the calls of a
 * tick, its keys joined from an array (see `statements`). Statements are named, so each
 * connection plans them once.
 */
export class PostgresAtomics implements Atomics {
  readonly #db: Queryable;
  readonly #sql: Record<Op, string>;
  readonly #names: Record<Op, string>;
  readonly #reads: Batcher<string, unknown>;
  readonly #parsed = new ParsedReads(parseStored);
  readonly #removes: Batcher<string, boolean>;
  readonly #indexReads: Batcher<string, string[]>;

  /** `slotMs`: see BatcherOptions.slotMs (the store's time limit). */
  constructor(db: Queryable, schema: string, slotMs = 1000) {
    this.#db = db;
    const batching = { maxBatch: MAX_BATCH, maxInFlight: MAX_IN_FLIGHT, slotMs };
    this.#reads = new Batcher({ ...batching, send: (keys) => this.#readMany(keys) });
    this.#removes = new Batcher({ ...batching, send: (keys) => this.#removeMany(keys) });
    this.#indexReads = new Batcher({ ...batching, send: (calls) => this.#indexMembersMany(calls) });
    this.#sql = statements(schema);
    // Prepared statements are per connection and per name; the schema keeps names of two
    // stores apart (and short: PostgreSQL cuts names at 63 bytes).
    this.#names = Object.fromEntries(Object.keys(this.#sql).map((k, i) => [k, `ag${i}_${schema}`])) as Record<Op, string>;
  }

  #run<R extends pg.QueryResultRow>(op: Op, values: unknown[]): Promise<R[]> {
    return this.#db.query<R>({ name: this.#names[op], text: this.#sql[op], values }).then((r) => r.rows);
  }

  /**
   * Keyv's set (its upsert), with the expiry Keyv computed on this node's clock replaced by
   * PostgreSQL's time plus `ttlMs`. `raw` is Keyv's serialized `{"value":…,"expires":N}`;
   * without a TTL it is stored as it is.
   */
  async set(key: string, raw: string, ttlMs?: number): Promise<void> {
    const at = raw.lastIndexOf(EXPIRES_SUFFIX);
    if (ttlMs === undefined || at < 0) await this.#run('set', [entryKey(key), raw, null]);
    else await this.#run('set', [entryKey(key), raw.slice(0, at), Math.ceil(ttlMs)]);
  }

  /**
   * Keyv's get without Keyv, with the expiry checked in SQL (Keyv's own get reads the row
   * whatever its expiry, then deletes it in a second statement when it has expired).
   */
  read(key: string): Promise<unknown> {
    return this.#reads.add(key);
  }

  async #readMany(asked: readonly string[]): Promise<(key: string) => unknown> {
    const keys = asked.map(entryKey);
    if (keys.length === 1) {
      const [row] = await this.#run<{ value: string }>('get', [keys[0]]);
      return () => (row === undefined ? undefined : this.#parsed.parse(asked[0]!, row.value).value);
    }
    const rows = await this.#run<{ key: string; value: string }>('getMany', [[...new Set(keys)]]);
    const found = new Map(rows.map((r) => [r.key, r.value]));
    return (key) => {
      const raw = found.get(entryKey(key));
      return raw === undefined ? undefined : this.#parsed.parse(key, raw).value;
    };
  }

  async take(key: string): Promise<unknown> {
    const [row] = await this.#run<{ value: string; live: boolean }>('take', [entryKey(key)]);
    if (row === undefined || !row.live) return undefined;
    return decode(row.value);
  }

  /** One DELETE … RETURNING: true only when a live value was there (@keyv/postgres reads, then deletes). */
  remove(key: string): Promise<boolean> {
    return this.#removes.add(key);
  }

  async #removeMany(asked: readonly string[]): Promise<(key: string) => boolean> {
    const keys = asked.map(entryKey);
    const rows =
      keys.length === 1
        ? await this.#run<{ key: string; live: boolean }>('remove', [keys[0]])
        : await this.#run<{ key: string; live: boolean }>('removeMany', [[...new Set(keys)]]);
    const live = new Set(rows.filter((r) => r.live).map((r) => r.key));
    // Of several deletes of one key in a batch, the first found it: as if they ran in turn.
    return (key) => live.delete(entryKey(key));
  }

  async swap(key: string, value: unknown, expiresAt?: number): Promise<unknown> {
    const [row] =
      expiresAt === undefined
        ? await this.#run<{ value: string }>('swap', [JSON.stringify(value), entryKey(key)])
        : await this.#run<{ value: string }>('swapUntil', [JSON.stringify(value), entryKey(key), Math.ceil(expiresAt)]);
    return row === undefined ? undefined : decode(row.value);
  }

  /**
   * One statement: the row locked, compared as text with the expected value in Keyv's form,
   * and `before` compared with PostgreSQL's clock when the statement runs (clock_timestamp(),
   * not the time of the call: a write queued behind others must not land after its deadline).
   */
  async swapIf(key: string, expected: unknown, value: unknown, o: { expiresAt?: number; before?: number }): Promise<{ swapped: boolean; old: unknown }> {
    const [row] = await this.#run<{ value: string; written: boolean }>('swapIf', [
      JSON.stringify(value),
      entryKey(key),
      JSON.stringify(expected),
      o.before === undefined ? null : Math.floor(o.before),
      o.expiresAt === undefined ? null : Math.ceil(o.expiresAt),
    ]);
    if (row === undefined) return { swapped: false, old: undefined };
    return row.written ? { swapped: true, old: expected } : { swapped: false, old: decode(row.value) };
  }

  async claim(key: string, ttlMs: number, value: unknown): Promise<boolean> {
    const rows = await this.#run('claim', [entryKey(key), JSON.stringify({ value }).slice(0, -1), Math.ceil(ttlMs)]);
    return rows.length === 1;
  }

  async indexAdd(key: string, member: string, expiresAt: number, shorten: boolean): Promise<void> {
    await this.#run('indexAdd', [indexKey(key), member, Math.ceil(expiresAt), shorten]);
  }

  async indexRemove(key: string, member: string): Promise<void> {
    await this.#run('indexRemove', [indexKey(key), member]);
  }

  /** Members live by PostgreSQL's clock: the caller's `now` is its own clock's, and is not used (see the class). */
  indexMembers(key: string, _now: number): Promise<string[]> {
    return this.#indexReads.add(key);
  }

  async #indexMembersMany(calls: readonly string[]): Promise<(key: string) => string[]> {
    const keys = [...new Set(calls.map(indexKey))];
    const rows =
      keys.length === 1
        ? await this.#run<{ key: string; member: string }>('indexMembers', [keys[0]])
        : await this.#run<{ key: string; member: string }>('indexMembersMany', [keys]);
    const byKey = new Map<string, string[]>();
    for (const r of rows) {
      let list = byKey.get(r.key);
      if (list === undefined) byKey.set(r.key, (list = []));
      list.push(r.member);
    }
    // A copy per call: callers may change what they get.
    return (key) => [...(byKey.get(indexKey(key)) ?? [])];
  }

  /**
   * Deletes expired rows, a batch at a time, until a batch comes back short or `budgetMs`
   * is spent; returns how many. Rows another node is sweeping are skipped, not waited for.
   */
  async sweep(budgetMs: number): Promise<number> {
    const started = performance.now();
    let total = 0;
    for (const op of ['sweepEntries', 'sweepMembers'] as const) {
      for (;;) {
        const r = await this.#db.query({ name: this.#names[op], text: this.#sql[op], values: [] });
        total += r.rowCount ?? 0;
        if ((r.rowCount ?? 0) < SWEEP_BATCH || performance.now() - started > budgetMs) break;
      }
    }
    return total;
  }
}

/**
 * The statements of a store in `schema`, by operation. Reads, deletes and index reads of a
 * batch join their keys from `unnest($1)`: PostgreSQL keeps a generic plan of a named
 * statement after a few runs, made without the array's contents, and there `key = ANY($1)`
 * is a filter comparing every row scanned with every key in turn (it hashes only a constant
 * array), rows × keys comparisons per batch on a small table; a join with the unnested keys
 * is a hash join or an index lookup per key whatever the plan
 * (test/store/postgres.test.ts checks the generic plans).
 */
export function statements(schema: string): Record<Op, string> {
  const t = tables(schema);
  // PostgreSQL's time in ms, as the statement started: the one clock of every expiry (see
  // PostgresAtomics). statement_timestamp() is stable within a statement, so a comparison with
  // it can use the index on `expires` (the sweep); clock_timestamp() could not.
  const at = `floor(extract(epoch FROM statement_timestamp()) * 1000)::bigint`;
  const live = `(expires IS NULL OR expires > ${at})`;
  // PostgreSQL's clock read once the row's lock is held: outside the locking CTE (a filter in it
  // runs before any wait for the lock, and one on a FOR UPDATE subquery is pushed down into it),
  // so that a write queued behind another never lands past the row's expiry or its deadline.
  const lockedAt = `floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint`;
  const liveOnceLocked = `(old.expires IS NULL OR old.expires > ${lockedAt})`;
  return {
    // Keyv's upsert; $2 is Keyv's text cut before its `,"expires":N}` when $3 (the TTL) is given,
    // and the expiry is PostgreSQL's time plus the TTL.
    set: `INSERT INTO ${t.entries} (key, value)
          VALUES ($1, CASE WHEN $3::bigint IS NULL THEN $2::text ELSE $2::text || ',"expires":' || (${at} + $3::bigint) || '}' END)
          ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`,
    get: `SELECT value FROM ${t.entries} WHERE key = $1 AND ${live}`,
    getMany: `SELECT e.key, e.value FROM unnest($1::varchar[]) k (key) JOIN ${t.entries} e ON e.key = k.key WHERE (e.expires IS NULL OR e.expires > ${at})`,
    take: `DELETE FROM ${t.entries} WHERE key = $1 RETURNING value, ${live} AS live`,
    remove: `DELETE FROM ${t.entries} WHERE key = $1 RETURNING key, ${live} AS live`,
    removeMany: `DELETE FROM ${t.entries} e USING unnest($1::varchar[]) k (key) WHERE e.key = k.key RETURNING e.key, (e.expires IS NULL OR e.expires > ${at}) AS live`,
    // The new value carries the old `expires`, in Keyv's own format, so the expiry is kept.
    swap: `WITH old AS (SELECT key, value, expires FROM ${t.entries} WHERE key = $2 AND ${live} FOR UPDATE)
           UPDATE ${t.entries} e
           SET value = '{"value":' || $1 || CASE WHEN old.expires IS NULL THEN '}' ELSE ',"expires":' || old.expires || '}' END
           FROM old
           WHERE e.key = old.key AND ${liveOnceLocked}
           RETURNING old.value`,
    swapUntil: `WITH old AS (SELECT key, value, expires FROM ${t.entries} WHERE key = $2 AND ${live} FOR UPDATE)
           UPDATE ${t.entries} e
           SET value = '{"value":' || $1 || ',"expires":' || $3 || '}'
           FROM old
           WHERE e.key = old.key AND ${liveOnceLocked}
           RETURNING old.value`,
    // $3: the expected value; $4: write only while PostgreSQL's clock is before it (null: no
    // limit); $5: the new expiry (null: kept). The row's expiry is checked as the statement
    // starts and, once the row lock is held, again.
    swapIf: `WITH old AS (SELECT key, value, expires FROM ${t.entries}
                      WHERE key = $2 AND ${live} FOR UPDATE),
                  written AS (UPDATE ${t.entries} e
                      SET value = '{"value":' || $1::text || CASE WHEN $5::bigint IS NOT NULL THEN ',"expires":' || $5::bigint || '}'
                                                              WHEN old.expires IS NULL THEN '}' ELSE ',"expires":' || old.expires || '}' END
                      FROM old
                      WHERE e.key = old.key
                        AND old.value = '{"value":' || $3::text || CASE WHEN old.expires IS NULL THEN '}' ELSE ',"expires":' || old.expires || '}' END
                        AND ${liveOnceLocked}
                        AND ($4::bigint IS NULL OR ${lockedAt} < $4::bigint)
                      RETURNING e.key)
             SELECT old.value, EXISTS (SELECT 1 FROM written) AS written FROM old`,
    // Inserts, or takes over a row whose expiry has passed (the sweep may not have removed it
    // yet); a live row is left alone and no row comes back. $2 is `{"value":…` without its
    // closing brace, $3 the TTL: held until PostgreSQL's time plus it.
    claim: `INSERT INTO ${t.entries} AS e (key, value) VALUES ($1, $2::text || ',"expires":' || (${at} + $3::bigint) || '}')
            ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value WHERE e.expires IS NOT NULL AND e.expires <= ${at}
            RETURNING e.key`,
    // A member already there keeps the later expiry unless $4 (shorten): the row lock of the
    // conflict makes racing adds queue, each comparing with what the one before it left.
    indexAdd: `INSERT INTO ${t.members} AS m (key, member, expires) VALUES ($1, $2, $3)
               ON CONFLICT (key, member) DO UPDATE
               SET expires = CASE WHEN $4::boolean THEN EXCLUDED.expires ELSE GREATEST(m.expires, EXCLUDED.expires) END`,
    indexRemove: `DELETE FROM ${t.members} WHERE key = $1 AND member = $2`,
    indexMembers: `SELECT key, member FROM ${t.members} WHERE key = $1 AND expires > ${at}`,
    indexMembersMany: `SELECT m.key, m.member FROM unnest($1::text[]) k (key) JOIN ${t.members} m ON m.key = k.key WHERE m.expires > ${at}`,
    sweepEntries: `DELETE FROM ${t.entries} WHERE key IN
                   (SELECT key FROM ${t.entries} WHERE expires <= ${at} LIMIT ${SWEEP_BATCH} FOR UPDATE SKIP LOCKED)`,
    sweepMembers: `DELETE FROM ${t.members} WHERE (key, member) IN
                   (SELECT key, member FROM ${t.members} WHERE expires <= ${at} LIMIT ${SWEEP_BATCH} FOR UPDATE SKIP LOCKED)`,
  };
}
