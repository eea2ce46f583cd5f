import type { Clock } from '../clock.js';
import { GatewayError } from '../errors.js';

const WINDOW_MS = 60_000;
/** Requests whose answer can be a failed authentication (`session_invalid`, `token_invalid`). */
const AUTH_TYPES: ReadonlySet<string> = new Set([
  'validate_session',
  'regenerate_session',
  'subscribe_session',
  'exchange_session',
  'verify_token',
  'refresh_token',
  'revoke_token',
]);
const FAILED: ReadonlySet<string> = new Set(['session_invalid', 'token_invalid']);

interface Tally {
  /** times (ms) of the failed answers in the last minute, oldest first; at most `limit` */
  failures: number[];
  /** auth requests admitted and not yet answered */
  inFlight: number;
  /** attempts of a route open to anyone waiting for room (see `enter`), oldest first */
  waiting?: ((admitted: boolean) => void)[];
}

/** Attempts of one address that may wait for room, per unit of the limit (then 429 at once). */
const WAITING_PER_LIMIT = 4;

/** The two hooks a connection's pipeline calls (ConnectionOptions.admit / onReply). */
export interface AuthGuard {
  admit(type: string): GatewayError | undefined;
  onReply(requestType: string, replyType: string): void;
}

/**
 * Brute-force brake for browser connections: at most `limit` failed authentication answers
 * a minute (sliding window) per connection and per remote address; past that, requests get
 * error 1002 until the window has room again. Upgrades count too (a dead cookie, a wrong
 * service key: each would otherwise be a free guess), and an address out of room has its
 * upgrades refused with 429. Auth requests in flight count against the
 * limit too, so pipelining many guesses at once does not slip past it.
 *
 * Memory: one tally per address with recent failures, at most `limit` timestamps each, and
 * at most `maxAddresses` addresses (the oldest are forgotten first).
 */
export class FailedAuthThrottle {
  readonly #limit: number;
  readonly #clock: Clock;
  readonly #maxAddresses: number;
  readonly #byAddress = new Map<string, Tally>();
  #sweptWhenFull = Number.NEGATIVE_INFINITY;

  constructor(o: { limit: number; clock: Clock; maxAddresses?: number }) {
    if (!Number.isSafeInteger(o.limit) || o.limit < 1) throw new RangeError('The limit option must be a positive integer.');
    this.#limit = o.limit;
    this.#clock = o.clock;
    this.#maxAddresses = o.maxAddresses ?? 100_000;
  }

  /** The guard of one browser connection from `address`. */
  guard(address: string): AuthGuard {
    const own: Tally = { failures: [], inFlight: 0 };
    let refusing = false;
    return {
      admit: (type) => {
        const shared = this.#tally(address);
        const now = this.#clock.now();
        const auth = AUTH_TYPES.has(type);
        if (this.#full(own, now, auth) || this.#full(shared, now, auth)) {
          // admit() refusing is followed at once, synchronously, by onReply(type, 'error').
          refusing = true;
          return new GatewayError('RATE_LIMITED', 'Too many failed authentication attempts; try again later');
        }
        if (auth) {
          own.inFlight++;
          shared.inFlight++;
        }
        return undefined;
      },
      onReply: (requestType, replyType) => {
        if (refusing) {
          refusing = false;
          return;
        }
        if (!AUTH_TYPES.has(requestType)) return;
        const shared = this.#tally(address);
        own.inFlight = Math.max(0, own.inFlight - 1);
        shared.inFlight = Math.max(0, shared.inFlight - 1);
        if (FAILED.has(replyType)) {
          const now = this.#clock.now();
          this.#record(own, now);
          this.#record(shared, now);
        }
      },
    };
  }

  /** True when `address` has no failures left in the window: its upgrades are refused (429). */
  blocked(address: string): boolean {
    const t = this.#byAddress.get(address);
    return t !== undefined && this.#full(t, this.#clock.now(), false);
  }

  /**
   * An attempt whose credential is checked later (a route open to anyone: a back-channel
   * logout token) asks to begin: it counts as in flight until `finish`, so that of many sent at
   * once no more than the limit are checked before their failures count. Past that it waits
   * for those in flight to be answered (an identity provider's burst of valid tokens is served,
   * in turn), and is refused (false, nothing counted) once the failures alone fill the window,
   * or at once when WAITING_PER_LIMIT times the limit already wait.
   */
  enter(address: string): Promise<boolean> {
    const t = this.#tally(address);
    this.#prune(t, this.#clock.now());
    if (t.failures.length >= this.#limit) return Promise.resolve(false);
    if (t.failures.length + t.inFlight < this.#limit) {
      t.inFlight++;
      return Promise.resolve(true);
    }
    const waiting = (t.waiting ??= []);
    if (waiting.length >= WAITING_PER_LIMIT * this.#limit) return Promise.resolve(false);
    return new Promise((resolve) => waiting.push(resolve));
  }

  /** The attempt `enter` admitted was answered; `failed`: its credential was refused. */
  finish(address: string, failed: boolean): void {
    const t = this.#tally(address);
    t.inFlight = Math.max(0, t.inFlight - 1);
    if (failed) this.#record(t, this.#clock.now());
    this.#wake(t);
  }

  /** Admits waiting attempts while there is room; refuses them all once the failures fill the window. */
  #wake(t: Tally): void {
    const waiting = t.waiting;
    if (waiting === undefined) return;
    this.#prune(t, this.#clock.now());
    while (waiting.length > 0) {
      if (t.failures.length >= this.#limit) {
        for (const resolve of waiting.splice(0)) resolve(false);
        break;
      }
      if (t.failures.length + t.inFlight >= this.#limit) break;
      t.inFlight++;
      waiting.shift()!(true);
    }
    if (waiting.length === 0) t.waiting = undefined;
  }

  /** Counts a failure seen at the upgrade (a dead session cookie, a wrong service key) against `address`. */
  fail(address: string): void {
    this.#record(this.#tally(address), this.#clock.now());
  }

  /** Addresses tracked now (for tests and metrics). */
  get size(): number {
    return this.#byAddress.size;
  }

  /** Forgets addresses with nothing in the window; call now and then. */
  sweep(): void {
    const now = this.#clock.now();
    for (const [addr, t] of this.#byAddress) {
      this.#prune(t, now);
      if (t.failures.length === 0 && t.inFlight === 0 && t.waiting === undefined) this.#byAddress.delete(addr);
    }
  }

  #tally(address: string): Tally {
    let t = this.#byAddress.get(address);
    if (t === undefined) {
      // Full: sweep at most once a second (a sweep visits every address), else forget the oldest.
      if (this.#byAddress.size >= this.#maxAddresses) {
        const now = this.#clock.now();
        if (now - this.#sweptWhenFull >= 1000) {
          this.#sweptWhenFull = now;
          this.sweep();
        }
      }
      if (this.#byAddress.size >= this.#maxAddresses) this.#forgetOldest();
      t = { failures: [], inFlight: 0 };
      this.#byAddress.set(address, t);
    }
    return t;
  }

  /**
   * Forgets the address seen first, to make room. Its attempts waiting for room are refused now
   * (429): nothing would ever wake them, and their requests would wait unanswered, holding a
   * drain, for as long as their clients keep them open.
   */
  #forgetOldest(): void {
    const [address, t] = this.#byAddress.entries().next().value!;
    this.#byAddress.delete(address);
    for (const resolve of t.waiting?.splice(0) ?? []) resolve(false);
  }

  /** Over the limit: any request once the failures fill the window; an auth request also when those in flight would. */
  #full(t: Tally, now: number, auth: boolean): boolean {
    this.#prune(t, now);
    return t.failures.length + (auth ? t.inFlight : 0) >= this.#limit;
  }

  #record(t: Tally, now: number): void {
    t.failures.push(now);
    if (t.failures.length > this.#limit) t.failures.shift();
  }

  #prune(t: Tally, now: number): void {
    let drop = 0;
    while (drop < t.failures.length && t.failures[drop]! <= now - WINDOW_MS) drop++;
    if (drop > 0) t.failures.splice(0, drop);
  }
}
