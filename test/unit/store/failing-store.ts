import { GatewayError } from '../../../src/errors.js';
import type { Store } from '../../../src/store/types.js';

export interface FailingStore extends Store {
  /** While true, every operation rejects with GatewayError UNAVAILABLE. */
  down: boolean;
  /** Operations that failed so far. */
  failures: number;
}

/**
 * A Store double over a real one: works normally until `down` is set, then every
 * operation rejects the way the contract says an outage does (GatewayError UNAVAILABLE).
 */
export function failingStore(inner: Store, down = true): FailingStore {
  const s = {
    kind: inner.kind,
    events: inner.events,
    down,
    failures: 0,
    isReady: () => !s.down,
    size: () => inner.size(),
    close: () => inner.close(),
  } as FailingStore;
  const ops = ['get', 'set', 'delete', 'take', 'swap', 'indexAdd', 'indexRemove', 'indexMembers'] as const;
  for (const op of ops) {
    (s as unknown as Record<string, unknown>)[op] = (...args: unknown[]) => {
      if (s.down) {
        s.failures++;
        return Promise.reject(GatewayError.unavailable(new Error(`simulated outage in ${op}`)));
      }
      return (inner[op] as (...a: unknown[]) => Promise<unknown>).apply(inner, args);
    };
  }
  return s;
}
