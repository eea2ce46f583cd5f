import type { Keyv } from 'keyv';
import { GatewayError } from '../errors.js';
import { activeSpans } from '../tracing.js';
import { Deadlines } from './deadlines.js';
import type { EventBus, IndexAddOptions, Store, StoreObserver, StoreOperation, SwapIfOptions, SwapIfResult } from './types.js';

/** The operations Keyv has no word for; each backend does them atomically its own way. */
export interface Atomics {
  take(key: string): Promise<unknown> | unknown;
  swap(key: string, value: unknown, expiresAt?: number): Promise<unknown> | unknown;
  /** Store.swapIf; `expected` and `value` are compared and written as JSON. */
  swapIf(key: string, expected: unknown, value: unknown, options: SwapIfOptions): Promise<SwapIfResult<unknown>> | SwapIfResult<unknown>;
  /** `ttlMs`: a whole number of milliseconds, at least 1; the backend's own clock starts it. */
  claim(key: string, ttlMs: number, value: unknown): Promise<boolean> | boolean;
  /** Store.indexAdd: the later expiry is kept unless `shorten`. */
  indexAdd(key: string, member: string, expiresAt: number, shorten: boolean): Promise<void> | void;
  indexRemove(key: string, member: string): Promise<void> | void;
  indexMembers(key: string, now: number): Promise<string[]> | string[];
}

export interface KeyvStoreOptions {
  kind: Store['kind'];
  keyv: Keyv;
  atomics: Atomics;
  events: EventBus;
  /** Per-operation time limit for remote backends (an operation fails within 95-100% of it); none for memory (nothing to wait for). */
  timeoutMs?: number;
  /**
   * A direct read of the value in Keyv's own format, used by `get` instead of Keyv's (whose
   * hooks and stats we do not use, and which cost CPU on every read): synchronous for
   * memory, a single GET for Redis, a SELECT that checks the expiry for PostgreSQL.
   */
  read?: (key: string, at?: number) => unknown;
  /** `read` answers in place (memory): `Store.read` then returns the value itself, no Promise; it takes the caller's clock reading (`Store.read`'s `at`). */
  readsInPlace?: boolean;
  /** A direct delete, used by `delete` instead of Keyv's where the adapter's is not one atomic step. */
  remove?: (key: string) => Promise<boolean>;
  isReady?: () => boolean;
  /**
   * True while the backend is known to be unreachable: operations then fail at once instead
   * of each waiting out its time limit (requests queued behind one another for the same
   * session would otherwise wait a limit each).
   */
  unreachable?: (key: string) => boolean;
  /** Told when an operation timed out: evidence that the backend is away. */
  onTimeout?: (key: string) => void;
  size?: () => number | undefined;
  close?: () => Promise<void> | void;
}

/**
 * The one Store implementation: Keyv for get/set/delete, the backend's atomics for the rest.
 * Keyv is built with `throwOnErrors`, and every rejection or time-out here becomes
 * GatewayError UNAVAILABLE, so an outage never reads as "not found" (fail closed).
 */
export class KeyvStore implements Store {
  readonly kind: Store['kind'];
  readonly events: EventBus;
  readonly #keyv: Keyv;
  readonly #atomics: Atomics;
  readonly #timeoutMs: number | undefined;
  /** The time limits of the operations in flight, on a few shared timers. */
  #deadlines: Deadlines | undefined;
  /** A late answer's handler is running: what it sends is not refused as unreachable (see #tellLate). */
  #answeredLate = false;
  readonly #read: ((key: string) => unknown) | undefined;
  /** `#read`, where it answers in place. */
  readonly #readNow: ((key: string, at?: number) => unknown) | undefined;
  readonly #remove: ((key: string) => Promise<boolean>) | undefined;
  readonly #isReady: () => boolean;
  readonly #unreachable: ((key: string) => boolean) | undefined;
  readonly #onTimeout: ((key: string) => void) | undefined;
  readonly #size: () => number | undefined;
  readonly #close: () => Promise<void> | void;
  #observer: StoreObserver | undefined;

  constructor(o: KeyvStoreOptions) {
    this.kind = o.kind;
    this.#keyv = o.keyv;
    this.#atomics = o.atomics;
    this.events = o.events;
    this.#timeoutMs = o.timeoutMs;
    this.#read = o.read;
    this.#readNow = o.readsInPlace === true ? o.read : undefined;
    this.#remove = o.remove;
    this.#isReady = o.isReady ?? (() => true);
    this.#unreachable = o.unreachable;
    this.#onTimeout = o.onTimeout;
    this.#size = o.size ?? (() => undefined);
    this.#close = o.close ?? (() => undefined);
    // Keyv also emits what it throws; the throw is what we act on.
    this.#keyv.on('error', () => {});
  }

  /** Told the time of every operation of a remote backend (memory answers in place: nothing to time). */
  observe(observer: StoreObserver): void {
    this.#observer = observer;
  }

  #guard<T>(name: StoreOperation, key: string, op: () => Promise<T> | T, late?: (value: T) => void): Promise<T> {
    const spans = activeSpans();
    if (spans === undefined) return this.#limit(name, key, op, late);
    return spans.traceStore(this.kind, name, () => this.#limit(name, key, op, late));
  }

  /**
   * Runs `op` within the time limit, and tells the observer its time and outcome: a refusal
   * while the backend is unreachable and a time-out count as errors. One Promise per
   * operation: the timing is taken in the limit's own callbacks, not in a second `then`.
   * A backend without a time limit (memory) answers in place and is not timed.
   */
  #limit<T>(name: StoreOperation, key: string, op: () => Promise<T> | T, lateValue?: (value: T) => void): Promise<T> {
    const timeoutMs = this.#timeoutMs;
    // When the operation started, if it is timed (a remote backend with an observer).
    const started = timeoutMs === undefined || this.#observer === undefined ? undefined : performance.now();
    if (!this.#answeredLate && this.#unreachable?.(key)) {
      this.#told(name, started, false);
      return Promise.reject(GatewayError.unavailable(new Error('store unreachable')));
    }
    let result: Promise<T> | T;
    try {
      result = op();
    } catch (err) {
      this.#told(name, started, false);
      return Promise.reject(GatewayError.unavailable(err));
    }
    if (!(result instanceof Promise)) {
      this.#told(name, started, true);
      return Promise.resolve(result);
    }
    if (timeoutMs === undefined) return result.catch((err) => Promise.reject(GatewayError.unavailable(err)));
    const deadlines = (this.#deadlines ??= new Deadlines(timeoutMs, () =>
      GatewayError.unavailable(new Error(`store operation timed out after ${timeoutMs} ms`)),
    ));
    const onTimeout = this.#onTimeout;
    return new Promise<T>((resolve, reject) => {
      const late = (err: unknown) => {
        this.#told(name, started, false);
        // The backend is told which key timed out (on a cluster, only that key's master is suspect).
        onTimeout?.(key);
        reject(err);
      };
      const waiting = deadlines.add(late);
      result.then(
        (v) => {
          // Settled after its time-out: already rejected and counted; what it did is told.
          if (!waiting.delete(late)) return this.#tellLate(lateValue, v);
          this.#told(name, started, true);
          resolve(v);
        },
        (err) => {
          if (!waiting.delete(late)) return;
          this.#told(name, started, false);
          reject(GatewayError.unavailable(err));
        },
      );
    });
  }

  /**
   * Hands a late answer to its handler. The backend has just answered, so what the handler
   * sends at once (a put-back, an end's announcement) goes out, where it would otherwise be
   * refused as unreachable until a probe answers: sent now, it is on the connection ahead of
   * anything a client sends once the probe has answered.
   */
  #tellLate<T>(handler: ((value: T) => void) | undefined, value: T): void {
    if (handler === undefined) return;
    this.#answeredLate = true;
    try {
      handler(value);
    } finally {
      this.#answeredLate = false;
    }
  }

  /** Tells the observer an operation's time and outcome, when it is timed (`started` set). */
  #told(name: StoreOperation, started: number | undefined, ok: boolean): void {
    if (started !== undefined) this.#observer?.(name, (performance.now() - started) / 1000, ok);
  }

  get<T>(key: string): Promise<T | undefined> {
    const read = this.#read;
    if (read !== undefined) return this.#guard('get', key, () => read(key) as T | undefined);
    return this.#guard('get', key, () => this.#keyv.get(key) as Promise<T | undefined>);
  }

  read<T>(key: string, at?: number): T | undefined | Promise<T | undefined> {
    const now = this.#readNow;
    // In place: no Promise and no microtask per read (a memory validate is a few of them).
    if (now === undefined || activeSpans() !== undefined || this.#unreachable !== undefined) return this.get<T>(key);
    try {
      return now(key, at) as T | undefined;
    } catch (err) {
      throw GatewayError.unavailable(err);
    }
  }

  set<T>(key: string, value: T, ttlMs: number): Promise<void> {
    return this.#guard('set', key, async () => {
      const ok = await this.#keyv.set(key, value, Math.max(1, Math.ceil(ttlMs)));
      if (!ok) throw new Error('store refused the write');
    });
  }

  delete(key: string): Promise<boolean> {
    const remove = this.#remove;
    if (remove !== undefined) return this.#guard('delete', key, () => remove(key));
    return this.#guard('delete', key, () => this.#keyv.delete(key));
  }

  take<T>(key: string, late?: (value: T | undefined) => void): Promise<T | undefined> {
    return this.#guard('take', key, () => this.#atomics.take(key) as Promise<T | undefined> | T | undefined, late);
  }

  swap<T>(key: string, value: T, expiresAt?: number, late?: (old: T | undefined) => void): Promise<T | undefined> {
    return this.#guard('swap', key, () => this.#atomics.swap(key, value, expiresAt) as Promise<T | undefined> | T | undefined, late);
  }

  swapIf<T>(key: string, expected: T, value: T, options: SwapIfOptions = {}): Promise<SwapIfResult<T>> {
    return this.#guard('swapIf', key, () => this.#atomics.swapIf(key, expected, value, options) as Promise<SwapIfResult<T>> | SwapIfResult<T>);
  }

  claim(key: string, ttlMs: number, value: unknown = true): Promise<boolean> {
    return this.#guard('claim', key, () => this.#atomics.claim(key, Math.max(1, Math.ceil(ttlMs)), value));
  }

  indexAdd(key: string, member: string, expiresAt: number, options: IndexAddOptions = {}): Promise<void> {
    return this.#guard('indexAdd', key, () => this.#atomics.indexAdd(key, member, expiresAt, options.shorten === true));
  }

  indexRemove(key: string, member: string): Promise<void> {
    return this.#guard('indexRemove', key, () => this.#atomics.indexRemove(key, member));
  }

  indexMembers(key: string, now: number): Promise<string[]> {
    return this.#guard('indexMembers', key, () => this.#atomics.indexMembers(key, now));
  }

  isReady(): boolean {
    return this.#isReady();
  }

  size(): number | undefined {
    return this.#size();
  }

  async close(): Promise<void> {
    await this.#close();
  }
}
