import type { Clock } from '../../clock.js';

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * A budget per remote address for one costly kind of request (`exchange_session`, which
 * writes a token family to the store): `perMinute` each, refilled continuously, a minute's
 * worth of burst. Every browser connection from the address draws on the same budget, so
 * opening more connections buys nothing.
 *
 * Memory: one bucket per address seen recently, at most `maxAddresses` (full buckets are
 * forgotten by `sweep`, and the oldest first when the map is full).
 */
export class AddressBudget {
  readonly #perMinute: number;
  readonly #clock: Clock;
  readonly #maxAddresses: number;
  readonly #buckets = new Map<string, Bucket>();
  #sweptWhenFull = Number.NEGATIVE_INFINITY;

  constructor(o: { perMinute: number; clock: Clock; maxAddresses?: number }) {
    if (!Number.isSafeInteger(o.perMinute) || o.perMinute < 1) throw new RangeError('The perMinute option must be a positive integer.');
    this.#perMinute = o.perMinute;
    this.#clock = o.clock;
    this.#maxAddresses = o.maxAddresses ?? 100_000;
  }

  /** Takes one from the address's budget; false when it is spent. */
  take(address: string): boolean {
    const now = this.#clock.now();
    let b = this.#buckets.get(address);
    if (b === undefined) {
      // Full: sweep at most once a second (a sweep visits every address), else forget the oldest.
      if (this.#buckets.size >= this.#maxAddresses && now - this.#sweptWhenFull >= 1000) {
        this.#sweptWhenFull = now;
        this.sweep();
      }
      if (this.#buckets.size >= this.#maxAddresses) this.#buckets.delete(this.#buckets.keys().next().value!);
      b = { tokens: this.#perMinute, at: now };
      this.#buckets.set(address, b);
    }
    this.#refill(b, now);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Addresses tracked now (for tests). */
  get size(): number {
    return this.#buckets.size;
  }

  /** Forgets addresses whose budget is full again; call now and then. */
  sweep(): void {
    const now = this.#clock.now();
    for (const [address, b] of this.#buckets) {
      this.#refill(b, now);
      if (b.tokens >= this.#perMinute) this.#buckets.delete(address);
    }
  }

  #refill(b: Bucket, now: number): void {
    if (now <= b.at) return;
    // Multiplied before the one division: whole tokens come out whole (no 0.9999...).
    b.tokens = Math.min(this.#perMinute, b.tokens + ((now - b.at) * this.#perMinute) / 60_000);
    b.at = now;
  }
}
