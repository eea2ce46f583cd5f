import { Keyv } from 'keyv';
import type { Clock } from '../clock.js';
import { KeyvStore } from './keyv-store.js';
import { MemoryMap } from './memory-map.js';
import type { EventBus } from './types.js';

/** One process has no other nodes to tell. */
const localBus: EventBus = {
  publish: () => Promise.resolve(),
  subscribe: () => () => {},
  onResync: () => () => {},
};

/** The embedded default: Keyv over a swept Map, serialization off. */
export function createMemoryStore(clock: Clock): KeyvStore {
  const map = new MemoryMap(clock);
  const keyv = new Keyv({ store: map, serialize: undefined, deserialize: undefined, useKeyPrefix: false, throwOnErrors: true });
  return new KeyvStore({
    kind: 'memory',
    keyv,
    atomics: map,
    read: (key, at) => map.get(key, at)?.value,
    readsInPlace: true,
    events: localBus,
    size: () => map.size,
    close: () => map.close(),
  });
}
