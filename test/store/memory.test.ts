import { Keyv } from 'keyv';
import { ManualClock } from '../../src/clock.js';
import { GatewayError } from '../../src/errors.js';
import { KeyvStore } from '../../src/store/keyv-store.js';
import { MemoryMap } from '../../src/store/memory-map.js';
import { createMemoryStore } from '../../src/store/memory.js';
import { storeContract } from './contract.js';

storeContract(
  'memory',
  async () => {
    const clock = new ManualClock(1_700_000_000_000);
    const store = createMemoryStore(clock);
    return {
      store,
      now: () => clock.now(),
      pass: async (ms) => clock.advance(ms),
      close: () => store.close(),
    };
  },
  { peers: false, outage: false },
);

/**
 * The memory backend cannot fail, so the contract's outage case runs here on the same map
 * with failures injected under Keyv and the atomics: KeyvStore, not the backend, is what
 * turns every failure into UNAVAILABLE.
 */
storeContract(
  'memory with injected backend failures',
  async () => {
    const clock = new ManualClock(1_700_000_000_000);
    const map = new MemoryMap(clock);
    let broken = false;
    const faulty = new Proxy(map, {
      get(target, prop) {
        const v = Reflect.get(target, prop, target) as unknown;
        if (typeof v !== 'function' || prop === 'close') return v;
        return (...args: unknown[]) => {
          if (broken) throw new Error('injected backend failure');
          return (v as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const keyv = new Keyv({ store: faulty, serialize: undefined, deserialize: undefined, useKeyPrefix: false, throwOnErrors: true });
    const store = new KeyvStore({
      kind: 'memory',
      keyv,
      atomics: faulty,
      events: {
        publish: async () => {
          // A bus reports its own failures as UNAVAILABLE (as the Redis bus does).
          if (broken) throw GatewayError.unavailable(new Error('injected bus failure'));
        },
        subscribe: () => () => {},
        onResync: () => () => {},
      },
      isReady: () => !broken,
      close: () => map.close(),
    });
    return {
      store,
      now: () => clock.now(),
      pass: async (ms) => clock.advance(ms),
      outage: {
        begin: async () => {
          broken = true;
        },
        end: async () => {
          broken = false;
        },
      },
      close: () => store.close(),
    };
  },
  { peers: false, outage: true },
);
