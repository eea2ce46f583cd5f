import type { Clock } from '../../clock.js';

/**
 * A token bucket: `rate` tokens a second, holding at most `rate` (one second's burst).
 * Time comes from the clock, so tests move it instead of sleeping.
 */
export class TokenBucket {
  readonly #rate: number;
  readonly #clock: Clock;
  #tokens: number;
  #at: number;

  constructor(rate: number, clock: Clock) {
    if (!Number.isFinite(rate) || rate <= 0) throw new RangeError('The rate option must be a finite, positive number.');
    this.#rate = rate;
    this.#clock = clock;
    this.#tokens = rate;
    this.#at = clock.now();
  }

  /** Takes one token; false when the bucket is empty. */
  take(): boolean {
    const now = this.#clock.now();
    if (now > this.#at) {
      this.#tokens = Math.min(this.#rate, this.#tokens + ((now - this.#at) / 1000) * this.#rate);
      this.#at = now;
    }
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}
