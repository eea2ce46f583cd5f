import type { Clock, TimerHandle } from '../clock.js';
import { randomId } from '../crypto.js';
import type { Store } from './types.js';

/** The marker of a store's contents; it is never written otherwise, nor expected to expire. */
const KEY = 'epoch';
const LIFETIME_MS = 10 * 365 * 86_400_000;
/**
 * How often the marker is looked at, whatever the last look found: a store emptied without a
 * break in the link (Redis FLUSHALL, a PostgreSQL TRUNCATE) is noticed within this, and a first
 * look that failed (the store away at start) is made again as soon.
 */
export const EPOCH_CHECK_MS = 1000;

/** The marker's value: its generation, and when that generation began (ms). */
interface Marker {
  g: string;
  t: number;
}

const isMarker = (v: unknown): v is Marker => typeof v === 'object' && v !== null && typeof (v as Marker).g === 'string' && Number.isFinite((v as Marker).t);

/** What a look at the marker tells. */
export interface EpochListener {
  /** The store's current contents began at `since` (ms): nothing it held from before is left. Told at every look. */
  since(at: number): void;
  /** A generation this node saw is gone: the store lost its contents, noticed `at` (ms). */
  lost(at: number): void;
}

/**
 * Tells when a remote store has lost what it held (a Redis restarted without persistence or
 * flushed, a database emptied). The marker holds a generation: a random value and the time it
 * was written, written once by the first node to find the marker missing (an atomic claim: of
 * nodes that look together, one writes it and the others read it). Every node refuses what
 * was issued before the generation began, also a node started after the loss (it reads the
 * time); a node that finds another generation than the one it saw, or none, knows the store
 * lost its contents and says so. Each node looks at start, whenever its link to the store
 * comes back, and every EPOCH_CHECK_MS. What was lost cannot be recovered (sessions, refresh
 * families, the `jti` deny list, the users' revocation marks).
 */
export class StoreEpoch {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #listener: EpochListener;
  /** The generation this node saw last; undefined before its first look succeeds. */
  #seen: string | undefined;
  #checking: Promise<void> | undefined;
  /** Asked again while a look was under way. */
  #again = false;
  #timer: TimerHandle | undefined;
  #closed = false;

  constructor(store: Store, clock: Clock, listener: EpochListener) {
    this.#store = store;
    this.#clock = clock;
    this.#listener = listener;
  }

  /** Looks no more (the gateway is closing). */
  close(): void {
    this.#closed = true;
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  /**
   * Looks at the marker, one look at a time: asked while a look is under way (which may have
   * read the store before what made the caller ask), it looks once more after it. A store that
   * cannot answer is looked at again next time.
   */
  check(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#checking !== undefined) {
      this.#again = true;
      return this.#checking;
    }
    this.#checking = this.#look().finally(() => {
      this.#checking = undefined;
      if (this.#again) {
        this.#again = false;
        void this.check();
      } else this.#schedule();
    });
    return this.#checking;
  }

  /** The next look of the series (one pending at a time; the clock's timers never hold the process). */
  #schedule(): void {
    if (this.#closed || this.#timer !== undefined) return;
    this.#timer = this.#clock.setTimer(() => {
      this.#timer = undefined;
      void this.check();
    }, EPOCH_CHECK_MS);
  }

  async #look(): Promise<void> {
    try {
      const at = this.#clock.now();
      let current = await this.#store.get(KEY);
      if (!isMarker(current)) {
        // Missing (or of an earlier version, which held no time: written again, the old value
        // replaced only if it is still there).
        // After a loss this node saw, the generation begins at the next whole second: a node
        // started later then refuses the tokens of the second of the loss too, as this one does.
        const fresh: Marker = { g: randomId(16), t: this.#seen === undefined ? at : (Math.floor(at / 1000) + 1) * 1000 };
        if (current === undefined) await this.#store.claim(KEY, LIFETIME_MS, fresh);
        else await this.#store.swap(KEY, fresh);
        current = await this.#store.get(KEY);
        if (!isMarker(current)) throw new Error('the store marker is missing right after it was written');
      }
      if (this.#seen !== undefined && current.g !== this.#seen) this.#listener.lost(at);
      this.#seen = current.g;
      this.#listener.since(current.t);
    } catch {
      // The store is away (its health log says so): the next look of the series, or the resync
      // when the link comes back, looks again.
    }
  }
}
