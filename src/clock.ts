/** A cancellable timer handle. */
export interface TimerHandle {
  cancel(): void;
}

/**
 * Time as the gateway sees it. Logic never calls `Date.now()` or `setTimeout`
 * directly, so tests can pin and move time instead of sleeping through it.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /** Runs `fn` after `ms`; the timer never keeps the process alive. */
  setTimer(fn: () => void, ms: number): TimerHandle;
}

/** The longest delay setTimeout honours (about 24.8 days). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** The real clock: wall time, unref'd timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(fn, ms) {
    // Node turns a delay past 2^31-1 ms into 1 ms; a capped timer fires early instead, and
    // its owner (TimerQueue, the sweep) finds nothing due and arms again.
    const t = setTimeout(fn, Math.min(Math.max(0, ms), MAX_TIMER_MS));
    t.unref();
    // Node keeps the list of an unref'd timer's delay after clearTimeout, until that delay has
    // passed (it expects the delay to be used again). A TimerQueue arms a new delay each time
    // (the time left to a session's end), so each cancel would leave a list for up to the
    // session's life. A ref'd timer's empty list goes at once: ref it just before clearing.
    return { cancel: () => clearTimeout(t.ref()) };
  },
};

interface ManualTimer {
  at: number;
  seq: number;
  fn: () => void;
  live: boolean;
}

/** A clock that moves only when told to: for tests. */
export class ManualClock implements Clock {
  #now: number;
  #seq = 0;
  #timers: ManualTimer[] = [];

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimer(fn: () => void, ms: number): TimerHandle {
    const timer: ManualTimer = { at: this.#now + Math.max(0, ms), seq: this.#seq++, fn, live: true };
    this.#timers.push(timer);
    return { cancel: () => void (timer.live = false) };
  }

  /** Moves time forward by `ms`, firing due timers in order, each at its own time. */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      this.#timers = this.#timers.filter((t) => t.live);
      let next: ManualTimer | undefined;
      for (const t of this.#timers) {
        if (t.at <= end && (!next || t.at < next.at || (t.at === next.at && t.seq < next.seq))) next = t;
      }
      if (!next) break;
      this.#now = Math.max(this.#now, next.at);
      next.live = false;
      next.fn();
    }
    this.#now = end;
  }

  /** Number of timers still pending. */
  get pending(): number {
    return this.#timers.filter((t) => t.live).length;
  }
}
