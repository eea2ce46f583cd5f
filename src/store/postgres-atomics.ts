import type pg from 'pg';
import type { Atomics } from './keyv-store.js';
import { tables } from './postgres-schema.js';

/** What the atomics need of a pool: `pg.Pool`'s query with a prepared-statement name. */
export interface Queryable {
  query<R extends pg.QueryResultRow>(config: { name: string; text: string; values: unknown[] }): Promise<pg.QueryResult<R>>;
}

/** Reads waiting to go out together as one SELECT. */
interface ReadBatch {
  /** Gone out already (a batch may be scheduled twice: at its first read and when one comes back). */
  sent: boolean;
  keys: string[];
  waiters: { key: string; resolve: (value: unknown) => void; reject: (err: unknown) => void }[];
}

/** Keys per SELECT at most. */
const MAX_BATCH = 1000;
/**
 * Batched SELECTs in flight at once. Reads arriving while they are out wait for one to come
 * back and then go together: under load the batches grow instead of the number of queries,
 * and a statement's fixed cost (a round trip, parse, plan, executor start) is paid per
 * batch, not per read.
 */
const MAX_READS_IN_FLIGHT = 2;
/** Rows per sweep statement: short enough that no statement holds many row locks for long. */
export const SWEEP_BATCH = 1000;

type Op = 'get' | 'getMany' | 'take' | 'remove' | 'swap' | 'indexAdd' | 'indexRemove' | 'indexMembers' | 'sweepEntries' | 'sweepMembers';

/** Keyv's stored form `{"value":…,"expires":N}`, read back. */
function decode(raw: string): unknown {
  return (JSON.parse(raw) as { value: unknown }).value;
}

/**
 * Store operations Keyv has no word for, and the reads that bypass it, each one SQL
 * statement on the shared pool, atomic in PostgreSQL: DELETE … RETURNING for take and
 * delete, UPDATE … FROM (SELECT … FOR UPDATE) for swap (the row lock makes concurrent
 * swaps queue, and each re-reads the row its predecessor wrote), INSERT … ON CONFLICT for
 * the index. Every read compares `expires` with now in SQL: PostgreSQL has no TTL, and a
 * row past its end may still be there until the sweep removes it.
 * Statements are named, so each connection plans them once.
 */
export class PostgresAtomics implements Atomics {
  readonly #db: Queryable;
  readonly #now: () => number;
  readonly #sql: Record<Op, string>;
  readonly #names: Record<Op, string>;
  #batch: ReadBatch | undefined;
  #readsInFlight = 0;
  readonly #slotMs: number;

  /**
   * `slotMs`: a batch unanswered after this long stops counting against MAX_READS_IN_FLIGHT
   * (its reads have failed by then), so a connection that never answers cannot hold reads
   * back once the database is reachable again.
   */
  constructor(db: Queryable, schema: string, now: () => number, slotMs = 1000) {
    this.#db = db;
    this.#now = now;
    this.#slotMs = slotMs;
    const t = tables(schema);
    const live = `(expires IS NULL OR expires > $2)`;
    this.#sql = {
      get: `SELECT value FROM ${t.entries} WHERE key = $1 AND ${live}`,
      getMany: `SELECT key, value FROM ${t.entries} WHERE key = ANY($1::varchar[]) AND ${live}`,
      take: `DELETE FROM ${t.entries} WHERE key = $1 RETURNING value, expires`,
      remove: `DELETE FROM ${t.entries} WHERE key = $1 RETURNING expires`,
      // The new value carries the old `expires`, in Keyv's own format, so the expiry is kept.
      swap: `UPDATE ${t.entries} e
             SET value = '{"value":' || $1 || CASE WHEN old.expires IS NULL THEN '}' ELSE ',"expires":' || old.expires || '}' END
             FROM (SELECT key, value, expires FROM ${t.entries} WHERE key = $3 AND (expires IS NULL OR expires > $2) FOR UPDATE) old
             WHERE e.key = old.key
             RETURNING old.value`,
      indexAdd: `INSERT INTO ${t.members} (key, member, expires) VALUES ($1, $2, $3)
                 ON CONFLICT (key, member) DO UPDATE SET expires = EXCLUDED.expires`,
      indexRemove: `DELETE FROM ${t.members} WHERE key = $1 AND member = $2`,
      indexMembers: `SELECT member FROM ${t.members} WHERE key = $1 AND expires > $2`,
      sweepEntries: `DELETE FROM ${t.entries} WHERE key IN
                     (SELECT key FROM ${t.entries} WHERE expires <= $1 LIMIT ${SWEEP_BATCH} FOR UPDATE SKIP LOCKED)`,
      sweepMembers: `DELETE FROM ${t.members} WHERE (key, member) IN
                     (SELECT key, member FROM ${t.members} WHERE expires <= $1 LIMIT ${SWEEP_BATCH} FOR UPDATE SKIP LOCKED)`,
    };
    // Prepared statements are per connection and per name; the schema keeps names of two stores apart.
    this.#names = Object.fromEntries(Object.keys(this.#sql).map((k) => [k, `ag_${k}_${schema}`])) as Record<Op, string>;
  }

  #run<R extends pg.QueryResultRow>(op: Op, values: unknown[]): Promise<R[]> {
    return this.#db.query<R>({ name: this.#names[op], text: this.#sql[op], values }).then((r) => r.rows);
  }

  /**
   * Keyv's get without Keyv, with the expiry checked in SQL (Keyv's own get reads the row
   * whatever its expiry, then deletes it in a second statement when it has expired). Reads
   * go out together as one SELECT … WHERE key = ANY(…): those made in one tick, or while
   * MAX_READS_IN_FLIGHT batches are out; each still gets its own value or error.
   */
  read(key: string): Promise<unknown> {
    let b = this.#batch;
    if (b === undefined) {
      b = this.#batch = { sent: false, keys: [], waiters: [] };
      if (this.#readsInFlight < MAX_READS_IN_FLIGHT) {
        const batch = b;
        process.nextTick(() => this.#flush(batch));
      }
    }
    b.keys.push(key);
    const waiters = b.waiters;
    const read = new Promise((resolve, reject) => waiters.push({ key, resolve, reject }));
    if (b.keys.length >= MAX_BATCH) this.#flush(b);
    return read;
  }

  /** A batch came back: the reads that waited for it go out now. */
  #settled(): void {
    this.#readsInFlight--;
    const next = this.#batch;
    if (next !== undefined && this.#readsInFlight < MAX_READS_IN_FLIGHT) process.nextTick(() => this.#flush(next));
  }

  #flush(b: ReadBatch): void {
    if (b.sent) return;
    b.sent = true;
    if (this.#batch === b) this.#batch = undefined;
    this.#readsInFlight++;
    let settled = false;
    const done = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(slot);
      this.#settled();
    };
    const slot = setTimeout(done, this.#slotMs);
    slot.unref();
    const fail = (err: unknown) => {
      done();
      for (const w of b.waiters) w.reject(err);
    };
    const now = Math.floor(this.#now());
    if (b.keys.length === 1) {
      const w = b.waiters[0]!;
      this.#run<{ value: string }>('get', [w.key, now]).then((rows) => {
        done();
        try {
          w.resolve(rows[0] === undefined ? undefined : decode(rows[0].value));
        } catch (err) {
          w.reject(err);
        }
      }, fail);
      return;
    }
    this.#run<{ key: string; value: string }>('getMany', [[...new Set(b.keys)], now]).then((rows) => {
      done();
      const found = new Map(rows.map((r) => [r.key, r.value]));
      for (const w of b.waiters) {
        try {
          const raw = found.get(w.key);
          w.resolve(raw === undefined ? undefined : decode(raw));
        } catch (err) {
          w.reject(err);
        }
      }
    }, fail);
  }

  async take(key: string): Promise<unknown> {
    const [row] = await this.#run<{ value: string; expires: string | null }>('take', [key]);
    if (row === undefined || (row.expires !== null && Number(row.expires) <= this.#now())) return undefined;
    return decode(row.value);
  }

  /** One DELETE … RETURNING: true only when a live value was there (@keyv/postgres reads, then deletes). */
  async remove(key: string): Promise<boolean> {
    const [row] = await this.#run<{ expires: string | null }>('remove', [key]);
    return row !== undefined && (row.expires === null || Number(row.expires) > this.#now());
  }

  async swap(key: string, value: unknown): Promise<unknown> {
    const [row] = await this.#run<{ value: string }>('swap', [JSON.stringify(value), Math.floor(this.#now()), key]);
    return row === undefined ? undefined : decode(row.value);
  }

  async indexAdd(key: string, member: string, expiresAt: number): Promise<void> {
    await this.#run('indexAdd', [key, member, Math.ceil(expiresAt)]);
  }

  async indexRemove(key: string, member: string): Promise<void> {
    await this.#run('indexRemove', [key, member]);
  }

  async indexMembers(key: string, now: number): Promise<string[]> {
    const rows = await this.#run<{ member: string }>('indexMembers', [key, Math.floor(now)]);
    return rows.map((r) => r.member);
  }

  /**
   * Deletes expired rows, a batch at a time, until a batch comes back short or `budgetMs`
   * is spent; returns how many. Rows another node is sweeping are skipped, not waited for.
   */
  async sweep(budgetMs: number): Promise<number> {
    const started = Date.now();
    let total = 0;
    for (const op of ['sweepEntries', 'sweepMembers'] as const) {
      for (;;) {
        const r = await this.#db.query({ name: this.#names[op], text: this.#sql[op], values: [Math.floor(this.#now())] });
        total += r.rowCount ?? 0;
        if ((r.rowCount ?? 0) < SWEEP_BATCH || Date.now() - started > budgetMs) break;
      }
    }
    return total;
  }
}
