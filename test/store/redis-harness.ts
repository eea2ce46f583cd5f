import { randomBytes } from 'node:crypto';
import { openRedisStore, parseRedisUrl } from '../../src/store/redis.js';
import type { KeyvStore } from '../../src/store/keyv-store.js';
import type { StoreHarness } from './contract.js';

/** A Redis-backed store in a fresh namespace (nothing shared with any other test). */
export async function redisStore(url: string, namespace: string, timeoutMs = 1000): Promise<KeyvStore> {
  const target = { ...parseRedisUrl(url), namespace };
  return openRedisStore({ target, timeoutMs, probeMs: 100 });
}

export function freshNamespace(): string {
  return `t-${randomBytes(6).toString('hex')}`;
}

/** The contract harness on a running Redis (or Redis Cluster): real time, real server. */
export function redisHarness(url: string, outage?: StoreHarness['outage']): () => Promise<StoreHarness> {
  return async () => {
    const namespace = freshNamespace();
    const store = await redisStore(url, namespace);
    return {
      store,
      now: () => Date.now(),
      pass: (ms) => new Promise((r) => setTimeout(r, ms)),
      peer: () => redisStore(url, namespace),
      outage,
      close: () => store.close(),
    };
  };
}
