import { ConfigError } from '../errors.js';
import { createMemoryStore } from './memory.js';
import type { Store, StoreOptions } from './types.js';

export type { Store, StoreOptions, EventBus, StoreEvent, EndedEvent } from './types.js';

/** The only place that knows which backends exist: `memory://`, `redis://host:port[/db]` or `postgres://host[:port]/db`. */
export async function createStore(o: StoreOptions): Promise<Store> {
  if (o.url === 'memory://') return createMemoryStore(o.clock);
  if (/^rediss?:\/\//.test(o.url)) {
    const { createRedisStore } = await import('./redis.js');
    return createRedisStore(o);
  }
  if (/^postgres(ql)?:\/\//.test(o.url)) {
    const { createPostgresStore } = await import('./postgres.js');
    return createPostgresStore(o);
  }
  // The URL is not quoted, not even its scheme: a malformed one may hold a password anywhere.
  throw new ConfigError('GATEWAY_STORE: unsupported store (memory://, redis://, rediss://, postgres:// or postgresql://)');
}
