import type { Clock } from '../../clock.js';

/** One bucket's rate: `rate` tokens every `perMs` milliseconds, holding at most `rate`. */
export interface BucketRate {
  rate: number;
  perMs: number;
}

/**
 * Token buckets, each with its rate (`rates[i]`), read and charged by index. Time comes from
 * the clock, so tests move it instead of sleeping.
 *
 * The two numbers of each bucket (its tokens and the time of its last refill) live in one
 * Float64Array, written in place. Kept in an object's fields, a number that is not a small
 * integer is a heap object of its own that every change replaces; on a connection that sends
 * a few messages a second each of those outlives a young-generation cycle, so every message
 * left old-space garbage behind, and full collections came that much more often.
 */
export class TokenBuckets {
  readonly #rates: readonly BucketRate[];
  readonly #clock: Clock;
  /** [tokens, last refill] of bucket i at 2i, 2i + 1 */
  readonly #state: Float64Array;

  constructor(rates: readonly BucketRate[], clock: Clock) {
    for (const { rate, perMs } of rates) {
      if (!Number.isFinite(rate) || rate <= 0) throw new RangeError('The rate option must be a finite, positive number.');
      if (!Number.isFinite(perMs) || perMs <= 0) throw new RangeError('The perMs option must be a finite, positive number.');
    }
    this.#rates = rates;
    this.#clock = clock;
    this.#state = new Float64Array(2 * rates.length);
    const now = clock.now();
    for (let i = 0; i < rates.length; i++) {
      this.#state[2 * i] = rates[i]!.rate;
      this.#state[2 * i + 1] = now;
    }
  }

  /** Takes one token from bucket `i`; false when it is empty. */
  take(i: number): boolean {
    const s = this.#state;
    this.#refill(i, s);
    if (s[2 * i]! < 1) return false;
    s[2 * i]! -= 1;
    return true;
  }

  /**
   * Charges `n` tokens to bucket `i` whatever its balance, down to a debt of one bucketful;
   * true when it was not in debt before. A cost known only in bulk (a frame's bytes) is paid
   * in full, and while the debt lasts everything is refused.
   */
  spend(i: number, n: number): boolean {
    const s = this.#state;
    this.#refill(i, s);
    const tokens = s[2 * i]!;
    s[2 * i] = Math.max(-this.#rates[i]!.rate, tokens - n);
    return tokens > 0;
  }

  #refill(i: number, s: Float64Array): void {
    const now = this.#clock.now();
    const at = s[2 * i + 1]!;
    if (now > at) {
      const { rate, perMs } = this.#rates[i]!;
      s[2 * i] = Math.min(rate, s[2 * i]! + ((now - at) / perMs) * rate);
      s[2 * i + 1] = now;
    }
  }
}
