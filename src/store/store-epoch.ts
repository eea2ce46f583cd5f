import type { Clock } from '../clock.js';
import { randomId } from '../crypto.js';
import type { Store } from './types.js';

/** The marker of a store's contents; it is never written otherwise, nor expected to expire. */
const KEY = 'epoch';
const LIFETIME_MS = 10 * 365 * 86_400_000;
/** How soon a first look that failed is made again. */
const RETRY_MS = 1000;

/**
 * Tells when a remote store has lost what it held (a Redis restarted without persistence,
 * a database emptied). The marker holds a generation: a random value written once, by the
 * first node to find the marker missing (an atomic claim: of nodes that look together, one
 * writes it and the others read it). A node that finds a generation other than the one it saw
 * before, or none, knows the store lost its contents: also when another node found the loss
 * first and wrote the next generation. Each node looks at start and whenever its link to the
 * store comes back. What was lost cannot be recovered (sessions, refresh families, the `jti`
 * deny list, the users' revocation marks), so `onLost` is told the moment it was noticed.
 */
export class StoreEpoch {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #onLost: (at: number) => void;
  /** The generation this node saw last; undefined before its first look succeeds. */
  #seen: unknown;
  #checking: Promise<void> | undefined;
  #closed = false;

  constructor(store: Store, clock: Clock, onLost: (at: number) => void) {
    this.#store = store;
    this.#clock = clock;
    this.#onLost = onLost;
  }

  /** Looks no more (the gateway is closing). */
  close(): void {
    this.#closed = true;
  }

  /** Looks at the marker (one at a time); a store that cannot answer is looked at again next time. */
  check(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#checking ??= this.#look().finally(() => (this.#checking = undefined));
    return this.#checking;
  }

  async #look(): Promise<void> {
    try {
      const at = this.#clock.now();
      let current = await this.#store.get(KEY);
      if (current === undefined) {
        await this.#store.claim(KEY, LIFETIME_MS, randomId(16));
        current = await this.#store.get(KEY);
        if (current === undefined) throw new Error('the store marker is missing right after it was written');
      }
      if (this.#seen !== undefined && current !== this.#seen) this.#onLost(at);
      this.#seen = current;
    } catch {
      // The store is away (its health log says so): the next resync looks again, and until a
      // first look succeeds, a timer does too (a store that never goes away has no resync).
      if (this.#seen === undefined && !this.#closed) setTimeout(() => void this.check(), RETRY_MS).unref();
    }
  }
}
