import { randomBytes } from 'node:crypto';
import { createClient } from 'redis';
import { PostgresServer } from './postgres-server.js';
import { hasRedisServer, RedisServer } from './redis-server.js';

/** A shared-store server that a multi-node test starts, breaks and stops. */
export interface StoreServer {
  /** `GATEWAY_STORE` for a fresh namespace (Redis) or schema (PostgreSQL): nothing shared with other tests. */
  freshStore(): { url: string; namespace: string };
  /** kill -9 (every server process); `restart` brings it back on the same port and data. */
  crash(): Promise<void>;
  restart(): Promise<void>;
  /** SIGSTOP / SIGCONT: a stalled server, sockets open. */
  pause(): void;
  resume(): void;
  /**
   * Deletes `key` of `namespace` without any event, and cuts every node's event listener
   * connection: only a node's re-check after its listener reconnects can find the end.
   * Resolves with the number of keys deleted.
   */
  endSilently(namespace: string, key: string): Promise<number>;
  stop(): Promise<void>;
}

export interface StoreBackend {
  name: 'Redis' | 'PostgreSQL';
  /**
   * False only when the run allows skipping a missing redis-server (GATEWAY_TEST_SKIP);
   * otherwise a missing server makes the tests fail (scripts/system-deps.sh installs both).
   */
  available: boolean;
  /** `durable`: what the server acknowledged survives kill -9 (Redis: AOF, fsync always; PostgreSQL: always). */
  start(o?: { durable?: boolean }): Promise<StoreServer>;
}

const fresh = (prefix: string) => `${prefix}${randomBytes(6).toString('hex')}`;

function redisServer(server: RedisServer): StoreServer {
  return {
    freshStore: () => {
      const namespace = fresh('t-');
      return { url: `${server.url}?namespace=${namespace}`, namespace };
    },
    crash: () => server.crash(),
    restart: () => server.restart(),
    pause: () => server.pause(),
    resume: () => server.resume(),
    endSilently: async (namespace, key) => {
      const raw = createClient({ url: server.url });
      raw.on('error', () => {});
      await raw.connect();
      try {
        // In one transaction: cut every subscriber connection, then delete with no event.
        const [, deleted] = await raw.multi().addCommand(['CLIENT', 'KILL', 'TYPE', 'pubsub']).del(`${namespace}::${key}`).exec();
        return Number(deleted);
      } finally {
        await raw.close();
      }
    },
    stop: () => server.stop(),
  };
}

function postgresServer(server: PostgresServer): StoreServer {
  return {
    freshStore: () => {
      const namespace = fresh('t_');
      return { url: server.storeUrl(namespace), namespace };
    },
    crash: () => server.crash(),
    restart: () => server.restart(),
    pause: () => server.pause(),
    resume: () => server.resume(),
    endSilently: async (namespace, key) => {
      // Deleted first, listeners cut after: a listener back before the delete could
      // otherwise re-check too early and find the session still there.
      const rows = await server.query(`DELETE FROM ${namespace}.entries WHERE key = $1 RETURNING key`, [key]);
      await server.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'auth-gateway-listener' AND query = $1`, [
        `LISTEN "${namespace}_events"`,
      ]);
      return rows.length;
    },
    stop: () => server.stop(),
  };
}

/** Every shared store the multi-node tests run on. */
export const STORE_BACKENDS: StoreBackend[] = [
  { name: 'Redis', available: hasRedisServer(), start: async (o) => redisServer(await RedisServer.start({ persist: o?.durable })) },
  { name: 'PostgreSQL', available: true, start: async () => postgresServer(await PostgresServer.start()) },
];
