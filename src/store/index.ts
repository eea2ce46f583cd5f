import type { Clock } from '../clock.js';
import { ConfigError } from '../errors.js';
import type { Logger } from '../log.js';
import { createMemoryStore } from './memory.js';
import type { Store } from './types.js';

export type { Store, EventBus, StoreEvent, EndedEvent } from './types.js';

export interface StoreOptions {
  url: string;
  clock: Clock;
  timeoutMs: number;
  /** For connection state changes of remote backends (lost, back). */
  log?: Logger;
}

/** The only place that knows which backends exist: `memory://` or `redis://host:port[/db]`. */
export async function createStore(o: StoreOptions): Promise<Store> {
  if (o.url === 'memory://') return createMemoryStore(o.clock);
  if (/^rediss?:\/\//.test(o.url)) {
    const { createRedisStore } = await import('./redis.js');
    return createRedisStore(o);
  }
  throw new ConfigError(`GATEWAY_STORE: unsupported store "${o.url.split(':')[0]}"`);
}
