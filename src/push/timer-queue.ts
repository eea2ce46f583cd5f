import type { Clock, TimerHandle } from '../clock.js';

interface Entry<K> {
  at: number;
  key: K;
  seq: number;
}

/**
 * Deadlines for many keys on one timer: a binary min-heap ordered by time, with the
 * single clock timer armed for the earliest. Rescheduling a key makes its older heap
 * entry stale (skipped when popped), so every operation is O(log n) and 100k followed
 * sessions cost 100k small entries, not 100k timers.
 */
export class TimerQueue<K> {
  readonly #clock: Clock;
  readonly #fire: (key: K) => void;
  readonly #heap: Entry<K>[] = [];
  /** key -> seq of its live entry */
  readonly #live = new Map<K, number>();
  #seq = 0;
  #timer: TimerHandle | undefined;
  #armedAt = Number.POSITIVE_INFINITY;

  constructor(clock: Clock, fire: (key: K) => void) {
    this.#clock = clock;
    this.#fire = fire;
  }

  /** Sets (or moves) the deadline of `key` to `at` (ms since epoch). */
  schedule(key: K, at: number): void {
    const seq = this.#seq++;
    this.#live.set(key, seq);
    this.#push({ at, key, seq });
    if (this.#heap.length > 2 * this.#live.size + 1024) this.#compact();
    if (at < this.#armedAt) this.#arm();
  }

  /** Drops stale entries left by rescheduling, so the heap stays proportional to live keys. */
  #compact(): void {
    const live = this.#heap.filter((e) => this.#live.get(e.key) === e.seq);
    this.#heap.length = 0;
    for (const e of live) this.#push(e);
    this.#arm();
  }

  cancel(key: K): void {
    this.#live.delete(key);
    if (this.#live.size === 0) {
      this.#heap.length = 0;
      this.#timer?.cancel();
      this.#timer = undefined;
      this.#armedAt = Number.POSITIVE_INFINITY;
    }
  }

  has(key: K): boolean {
    return this.#live.has(key);
  }

  get size(): number {
    return this.#live.size;
  }

  #arm(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#armedAt = Number.POSITIVE_INFINITY;
    const top = this.#heap[0];
    if (top === undefined) return;
    this.#armedAt = top.at;
    this.#timer = this.#clock.setTimer(() => this.#run(), top.at - this.#clock.now());
  }

  #run(): void {
    this.#timer = undefined;
    this.#armedAt = Number.POSITIVE_INFINITY;
    const now = this.#clock.now();
    for (;;) {
      const top = this.#heap[0];
      if (top === undefined || top.at > now) break;
      this.#pop();
      if (this.#live.get(top.key) !== top.seq) continue;
      this.#live.delete(top.key);
      try {
        this.#fire(top.key);
      } catch {
        // One failing callback must not stop the others; the owner logs its own errors.
      }
    }
    this.#arm();
  }

  #push(e: Entry<K>): void {
    const h = this.#heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]!.at <= e.at) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = e;
  }

  #pop(): void {
    const h = this.#heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    let i = 0;
    const n = h.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && h[r]!.at < h[l]!.at ? r : l;
      if (h[c]!.at >= last.at) break;
      h[i] = h[c]!;
      i = c;
    }
    h[i] = last;
  }
}
