import { ConfigError } from '../errors.js';
import type { StoreOptions } from './index.js';
import type { Store } from './types.js';

/** Placeholder until the Redis backend lands (issue 4): refuses to start rather than pretend. */
export async function createRedisStore(_o: StoreOptions): Promise<Store> {
  throw new ConfigError('GATEWAY_STORE=redis:// is not available in this build yet; use memory://');
}
