import KeyvPostgres from '@keyv/postgres';
import { Keyv } from 'keyv';
import pg from 'pg';
import type { Logger } from '../log.js';
import { ChannelEventBus } from './channel-events.js';
import type { StoreOptions } from './types.js';
import { KeyvStore } from './keyv-store.js';
import { PostgresAtomics } from './postgres-atomics.js';
import { PostgresListener } from './postgres-listener.js';
import { NOT_ALLOWED, SCHEMA_GONE, checkTables, migrate, quoted } from './postgres-schema.js';
import { parsePostgresUrl, type PostgresTarget } from './postgres-url.js';
import { HealthProbe } from './health-probe.js';
import { StoreHealthLog } from './store-health-log.js';
import { within } from './within.js';

export { parsePostgresUrl, type PostgresTarget } from './postgres-url.js';

export interface PostgresStoreOptions {
  target: PostgresTarget;
  /** Per-operation limit: past it the operation fails with UNAVAILABLE (wire code 11). */
  timeoutMs: number;
  log?: Logger;
  /** How long start-up waits for the database before going on, not ready (default 2000). */
  connectWaitMs?: number;
  /** Interval of the health probe behind isReady() (default 500). */
  probeMs?: number;
  /** Interval of the sweep of expired rows (default 1000). */
  sweepMs?: number;
  /** Connections in the pool (default 10), besides the one that listens. */
  poolSize?: number;
}

/** NOTIFY refuses payloads of 8000 bytes or more; ours are a kind, a hash or two and a reason, far below. */
const MAX_PAYLOAD_BYTES = 7999;

/** Opens up to `n` connections at once and hands them back to the pool idle; failures are the probe's business. */
async function warm(pool: pg.Pool, n: number): Promise<void> {
  const opened = await Promise.allSettled(Array.from({ length: n }, () => pool.connect()));
  for (const r of opened) if (r.status === 'fulfilled') r.value.release();
}

/** The store behind `GATEWAY_STORE=postgres://...` (see createStore). */
export async function createPostgresStore(o: StoreOptions): Promise<KeyvStore> {
  return openPostgresStore({ target: parsePostgresUrl(o.url), timeoutMs: o.timeoutMs, log: o.log });
}

/**
 * Keyv over @keyv/postgres for set (its upsert, on our pool), plain SQL on the same pool for
 * reads, take, swap, delete and the index (postgres-atomics.ts), LISTEN/NOTIFY for events.
 *
 * Failure handling mirrors the Redis store: a probe (are the tables there and usable)
 * drives isReady(); a time-out, a failed probe or a refusal (tables gone, a privilege
 * missing) makes every operation fail at once as UNAVAILABLE until a probe answers; when the
 * database comes back the event bus resyncs (notifications sent while a node was cut off are
 * lost). Start-up never waits more than `connectWaitMs`: the schema is created by the first
 * probe that reaches the database, and again by the first after it was found gone.
 */
export async function openPostgresStore(o: PostgresStoreOptions): Promise<KeyvStore> {
  const { target, timeoutMs, log } = o;
  const { schema } = target;
  const where = 'PostgreSQL';
  const pool = new pg.Pool({
    connectionString: target.connectionString,
    max: o.poolSize ?? 10,
    // A connection attempt to a stalled server must not outlive the operation that needs it.
    connectionTimeoutMillis: Math.max(timeoutMs, 500),
    idleTimeoutMillis: 30_000,
    keepAlive: true,
    application_name: 'auth-gateway',
  });
  // Idle connections report a server that went away here; the probe turns it into state,
  // logged once per change with the latest error as its cause.
  const health = new StoreHealthLog(log, where);
  pool.on('error', health.note);

  // Set once the health probe exists (below): an operation's refusal is reported to it.
  let refused: (err: unknown) => void = () => {};
  /** `p`, with a refusal by the database (tables gone, a privilege missing) reported. */
  const watched = <T>(p: Promise<T>): Promise<T> =>
    p.catch((err: unknown) => {
      refused(err);
      throw err;
    });
  const db = {
    query: <R extends pg.QueryResultRow>(config: { name: string; text: string; values: unknown[] }) => watched(pool.query<R>(config)),
  };

  const channel = `${schema}_events`;
  const bus = new ChannelEventBus(
    channel,
    {
      publish: (ch, message) => {
        if (Buffer.byteLength(message) > MAX_PAYLOAD_BYTES) return Promise.reject(new Error('event payload over the NOTIFY limit'));
        return pool.query({ name: 'ag_notify', text: 'SELECT pg_notify($1, $2)', values: [ch, message] });
      },
    },
    timeoutMs,
  );
  const listener = new PostgresListener({
    connectionString: target.connectionString,
    channel,
    timeoutMs,
    onMessage: (payload) => bus.deliver(payload),
    // Back after a cut: whatever was sent meanwhile is lost; followers re-check.
    onListening: () => bus.resync(),
    log,
  });

  let migrated = false;
  let markMigrated: () => void = () => {};
  const schemaReady = new Promise<void>((resolve) => (markMigrated = resolve));
  const ensureSchema = async (): Promise<void> => {
    if (migrated) return;
    await migrate(pool, schema);
    migrated = true;
    markMigrated();
  };

  const connectWait = o.connectWaitMs ?? 2000;
  const [up] = await Promise.all([within(health.watch(ensureSchema()), connectWait), within(listener.start(), connectWait)]);
  if (!up) health.notYet(connectWait);
  // Every pooled connection opened now, not by the first burst of requests: on a busy host
  // opening one (a backend forked, authenticated) can outlast the per-operation limit.
  else void warm(pool, o.poolSize ?? 10);

  const atomics = new PostgresAtomics(db, schema, timeoutMs);
  // @keyv/postgres keeps one module-wide pool per URL and ends it on disconnect; ours is
  // per store, with our time limits. Its constructor also issues CREATE TABLE: held until
  // our migration has made the table, so that statement finds it there. Its set is ours: the
  // expiry Keyv computed on this node's clock becomes PostgreSQL's time plus the TTL.
  class KeyvOnPool extends KeyvPostgres {
    override async connect() {
      await schemaReady;
      return async (sql: string, values?: unknown) => (await watched(pool.query(sql, values as unknown[]))).rows;
    }

    override async set(key: string, value: string, ttl?: number) {
      await atomics.set(key, value, ttl);
    }
  }
  // @keyv/postgres puts the schema into its SQL as given: quoted, as everywhere.
  const keyvPostgres = new KeyvOnPool({ schema: quoted(schema), table: 'entries', keySize: 255 });
  // Values are JSON by contract (Store): plain JSON, as on Redis.
  const keyv = new Keyv({ store: keyvPostgres, useKeyPrefix: false, throwOnErrors: true, serialize: JSON.stringify, deserialize: JSON.parse });

  // The probe asks whether the tables are there and usable, not only whether PostgreSQL
  // answers: a schema dropped, a server back without its data, or a privilege revoked leaves
  // every operation failing while PostgreSQL itself answers.
  const healthProbe = new HealthProbe({
    healthy: up,
    probe: () => within(health.watch<unknown>(migrated ? watched(checkTables(pool, schema)) : ensureSchema()), timeoutMs),
    probeMs: o.probeMs ?? 500,
    timeoutMs,
    health,
    bus,
  });
  refused = (err) => {
    const code = (err as { code?: unknown } | undefined)?.code;
    if (typeof code !== 'string' || (code !== NOT_ALLOWED && !SCHEMA_GONE.has(code))) return;
    health.note(err);
    // Gone: made again by the next probe, as at start-up. Their contents went with them: the
    // return to health resyncs, and the store's marker (store-epoch.ts), gone too, tells the
    // gateway its data was lost (sessions ended, tokens issued before refused).
    if (SCHEMA_GONE.has(code)) migrated = false;
    // Not ready, every operation error 11 at once, until a probe finds the tables usable.
    healthProbe.refused();
  };

  // PostgreSQL has no TTL: every node sweeps expired rows, in bounded batches, skipping rows
  // another node is deleting. Reads already ignore them; this keeps the tables small.
  const sweepMs = o.sweepMs ?? 1000;
  let sweeping = false;
  const sweep = (): void => {
    if (healthProbe.closed) return;
    if (healthProbe.healthy && migrated && !sweeping) {
      sweeping = true;
      atomics
        .sweep(sweepMs / 4)
        .catch(() => {})
        .finally(() => (sweeping = false));
    }
    setTimeout(sweep, sweepMs).unref();
  };
  setTimeout(sweep, sweepMs).unref();

  return new KeyvStore({
    kind: 'postgres',
    keyv,
    atomics,
    events: bus,
    timeoutMs,
    read: (key) => atomics.read(key),
    remove: (key) => atomics.remove(key),
    isReady: () => healthProbe.healthy && migrated && listener.listening,
    unreachable: () => !healthProbe.healthy || !migrated,
    onTimeout: () => healthProbe.timedOut(),
    close: async () => {
      healthProbe.close();
      await listener.close();
      if (!(await within(pool.end(), timeoutMs))) log?.warn({ store: where }, `${where} pool did not close in time`);
    },
  });
}
