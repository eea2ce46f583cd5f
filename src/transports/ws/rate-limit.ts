import type { Clock } from '../../clock.js';

/** One bucket's rate: `rate` tokens every `perMs` milliseconds, holding at most `rate`. */
export interface BucketRate {
  rate: number;
  perMs: number;
}

/**
 * Token buckets for many holders alike (the browser connections of a server): each holder
 * has a row of buckets, one per rate, read and charged by row and index. Time comes from the
 * clock, so tests move it instead of sleeping.
 *
 * The two numbers of each bucket (its tokens and the time of its last refill) live in one
 * Float64Array for all rows, written in place:
 * - kept in an object's fields, a number that is not a small integer is a heap object of its
 *   own that every change replaces; on a connection that sends a few messages a second each of
 *   those outlives a young-generation cycle and becomes old-space garbage;
 * - one typed array per holder would cost a typed array and its buffer per connection.
 * The array grows by doubling to the most rows open at once; released rows are reused.
 */
export class TokenBucketTable {
  readonly #rates: readonly BucketRate[];
  readonly #clock: Clock;
  /** Numbers per row: [tokens, last refill] of bucket i at 2i, 2i + 1. */
  readonly #width: number;
  #state: Float64Array;
  /** Rows handed out so far (the high-water mark); released ones wait in `#free`. */
  #rows = 0;
  readonly #free: number[] = [];

  constructor(rates: readonly BucketRate[], clock: Clock, initialRows = 64) {
    for (const { rate, perMs } of rates) {
      if (!Number.isFinite(rate) || rate <= 0) throw new RangeError('The rate option must be a finite, positive number.');
      if (!Number.isFinite(perMs) || perMs <= 0) throw new RangeError('The perMs option must be a finite, positive number.');
    }
    this.#rates = rates;
    this.#clock = clock;
    this.#width = 2 * rates.length;
    this.#state = new Float64Array(this.#width * Math.max(1, initialRows));
  }

  /** Rows open now. */
  get size(): number {
    return this.#rows - this.#free.length;
  }

  /** A row of full buckets for a new holder; it is the holder's until `release`. */
  open(): number {
    let row = this.#free.pop();
    if (row === undefined) {
      row = this.#rows++;
      if (this.#rows * this.#width > this.#state.length) {
        const grown = new Float64Array(this.#state.length * 2);
        grown.set(this.#state);
        this.#state = grown;
      }
    }
    const s = this.#state;
    const at = row * this.#width;
    const now = this.#clock.now();
    for (let i = 0; i < this.#rates.length; i++) {
      s[at + 2 * i] = this.#rates[i]!.rate;
      s[at + 2 * i + 1] = now;
    }
    return row;
  }

  /** The holder is gone: its row is free for the next `open`. */
  release(row: number): void {
    this.#free.push(row);
  }

  /** Takes one token from bucket `i` of `row`; false when it is empty. */
  take(row: number, i: number): boolean {
    const s = this.#state;
    const at = row * this.#width + 2 * i;
    this.#refill(i, at, s);
    if (s[at]! < 1) return false;
    s[at]! -= 1;
    return true;
  }

  /**
   * Charges `n` tokens to bucket `i` of `row` whatever its balance, down to a debt of one
   * bucketful; true when it was not in debt before. A cost known only in bulk (a frame's
   * bytes) is paid in full, and while the debt lasts everything is refused.
   */
  spend(row: number, i: number, n: number): boolean {
    const s = this.#state;
    const at = row * this.#width + 2 * i;
    this.#refill(i, at, s);
    const tokens = s[at]!;
    s[at] = Math.max(-this.#rates[i]!.rate, tokens - n);
    return tokens > 0;
  }

  #refill(i: number, at: number, s: Float64Array): void {
    const now = this.#clock.now();
    const last = s[at + 1]!;
    if (now > last) {
      const { rate, perMs } = this.#rates[i]!;
      s[at] = Math.min(rate, s[at]! + ((now - last) / perMs) * rate);
      s[at + 1] = now;
    }
  }
}
