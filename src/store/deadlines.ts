type Reject = (err: unknown) => void;

/**
 * Time limits for many operations on few timers. Operations that start within one epoch
 * (a twentieth of the limit, at most 50 ms) share a set and one timer, which fires when
 * the limit has passed for the first of them and rejects whatever is still in the set; an
 * operation leaves its set when it settles. So each operation fails between 95% and 100% of
 * the limit after it started, and there are at most 20 timers per limit whatever the load,
 * where a setTimeout/clearTimeout pair per store operation would be a real cost on the hot path.
 * Real time on purpose: it bounds waits on the network, not logic (which uses the Clock).
 *
 * The rejections wait for the I/O of the turn in which the timer fires: timers run before a
 * turn reads its sockets, so after this process was busy past the limit (its own work, not the
 * backend's), an answer already waiting in the connection would otherwise be judged late and
 * the store taken for away. They go in `setImmediate`, which runs once the turn has read.
 */
export class Deadlines {
  readonly #ms: number;
  readonly #epochMs: number;
  readonly #error: () => unknown;
  #current: Set<Reject> | undefined;
  #currentUntil = 0;

  /** `error` makes the rejection of an operation that ran out of time. */
  constructor(ms: number, error: () => unknown) {
    this.#ms = ms;
    this.#epochMs = Math.max(1, Math.min(50, Math.floor(ms / 20)));
    this.#error = error;
  }

  /** Rejects `reject` when the limit has passed, unless it was removed from the returned set first. */
  add(reject: Reject): Set<Reject> {
    const now = Date.now();
    let set = this.#current;
    if (set === undefined || now >= this.#currentUntil) {
      const epoch = new Set<Reject>();
      set = this.#current = epoch;
      this.#currentUntil = now + this.#epochMs;
      const timer = setTimeout(() => {
        if (this.#current === epoch) this.#current = undefined;
        setImmediate(() => {
          for (const r of epoch) r(this.#error());
          epoch.clear();
        });
      }, this.#ms);
      timer.unref();
    }
    set.add(reject);
    return set;
  }
}
