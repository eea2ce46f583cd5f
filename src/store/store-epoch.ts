import type { Clock } from '../clock.js';
import type { Store } from './types.js';

/** The marker of a store's contents; it is never written otherwise, nor expected to expire. */
const KEY = 'epoch';
const LIFETIME_MS = 10 * 365 * 86_400_000;
/** How soon a first look that failed is made again. */
const RETRY_MS = 1000;

/**
 * Tells when a remote store has lost what it held (a Redis restarted without persistence,
 * a database emptied): a marker this node has seen is gone. Each node looks at start and
 * whenever its link to the store comes back; the first to look after the loss writes the
 * marker again. What was lost cannot be recovered (sessions, refresh families, the `jti`
 * deny list, the users' revocation marks), so `onLost` is told the moment it was noticed.
 */
export class StoreEpoch {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #onLost: (at: number) => void;
  /** The marker was seen (or written) by this node. */
  #seen = false;
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
      const present = (await this.#store.get(KEY)) !== undefined;
      if (present) {
        this.#seen = true;
        return;
      }
      const at = this.#clock.now();
      await this.#store.claim(KEY, LIFETIME_MS);
      if (this.#seen) this.#onLost(at);
      this.#seen = true;
    } catch {
      // The store is away (its health log says so): the next resync looks again, and until a
      // first look succeeds, a timer does too (a store that never goes away has no resync).
      if (!this.#seen && !this.#closed) setTimeout(() => void this.check(), RETRY_MS).unref();
    }
  }
}
