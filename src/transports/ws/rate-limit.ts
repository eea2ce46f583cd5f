import type { Clock } from '../../clock.js';

/**
 * A token bucket: `rate` tokens every `perMs` (a second unless told), holding at most `rate`.
 * Time comes from the clock, so tests move it instead of sleeping.
 */
export class TokenBucket {
  readonly #rate: number;
  readonly #perMs: number;
  readonly #clock: Clock;
  #tokens: number;
  #at: number;

  constructor(rate: number, clock: Clock, perMs = 1000) {
    if (!Number.isFinite(rate) || rate <= 0) throw new RangeError('The rate option must be a finite, positive number.');
    if (!Number.isFinite(perMs) || perMs <= 0) throw new RangeError('The perMs option must be a finite, positive number.');
    this.#rate = rate;
    this.#perMs = perMs;
    this.#clock = clock;
    this.#tokens = rate;
    this.#at = clock.now();
  }

  /** Takes one token; false when the bucket is empty. */
  take(): boolean {
    this.#refill();
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /**
   * Charges `n` tokens whatever the balance, down to a debt of one bucketful; true when the
   * bucket was not in debt before. A cost known only in bulk (a frame's bytes) is paid in full,
   * and while the debt lasts everything is refused.
   */
  spend(n: number): boolean {
    this.#refill();
    const ok = this.#tokens > 0;
    this.#tokens = Math.max(-this.#rate, this.#tokens - n);
    return ok;
  }

  #refill(): void {
    const now = this.#clock.now();
    if (now > this.#at) {
      this.#tokens = Math.min(this.#rate, this.#tokens + ((now - this.#at) / this.#perMs) * this.#rate);
      this.#at = now;
    }
  }
}
