import type { Clock, TimerHandle } from '../../clock.js';

/** Into how many groups the heartbeat splits the links (one group per 100 ms at 30 s). */
const SLICES = 300;

/** What the heartbeat pings. */
export interface Beating {
  beat(): void;
}

/**
 * Pings every link once per interval, but a slice of them at a time: links are dealt round
 * robin into SLICES groups, and one group is pinged every 1/SLICES of the interval, so each
 * link is still pinged once per interval (and cut after a whole interval without a pong).
 * Pinging thousands of links in one tick stalls the event loop, and every request waits
 * behind it. `onRound` runs once per interval (sweeps of the per-address tables).
 */
export class Heartbeat<T extends Beating> {
  readonly #slices = Array.from({ length: SLICES }, () => new Set<T>());
  readonly #clock: Clock;
  readonly #step: number;
  readonly #onRound: () => void;
  #next = 0;
  #turn = 0;
  #timer: TimerHandle | undefined;

  constructor(clock: Clock, intervalMs: number, onRound: () => void) {
    this.#clock = clock;
    this.#step = intervalMs / SLICES;
    this.#onRound = onRound;
    this.#timer = clock.setTimer(this.#tick, this.#step);
  }

  /** Adds a link; the function returned removes it. */
  add(link: T): () => void {
    const slice = this.#slices[this.#next++ % SLICES]!;
    slice.add(link);
    return () => slice.delete(link);
  }

  stop(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  readonly #tick = (): void => {
    for (const link of this.#slices[this.#turn]!) link.beat();
    this.#turn = (this.#turn + 1) % SLICES;
    if (this.#turn === 0) this.#onRound();
    this.#timer = this.#clock.setTimer(this.#tick, this.#step);
  };
}
