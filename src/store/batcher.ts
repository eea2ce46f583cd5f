/** How a Batcher sends one batch. */
export interface BatcherOptions<A, T> {
  /**
   * Sends the calls of one batch as one statement; resolves with a function that answers
   * each call, in the order they were made.
   */
  send(calls: readonly A[]): Promise<(call: A) => T>;
  /** Calls per batch at most. */
  maxBatch: number;
  /** Batches in flight at once: calls made meanwhile wait and go together when one returns. */
  maxInFlight: number;
  /**
   * A batch unanswered after this long stops counting against `maxInFlight` (its callers
   * have timed out by then), so a connection that never answers cannot hold back the calls
   * once the database answers again.
   */
  slotMs: number;
}

interface Batch<A, T> {
  /** Gone out already (a batch may be scheduled twice: at its first call and when one returns). */
  sent: boolean;
  calls: A[];
  waiters: { resolve: (value: T) => void; reject: (err: unknown) => void }[];
}

/**
 * Gathers calls into batches: those made in one tick, or while `maxInFlight` batches are
 * out, go as one. Idle, a call waits for nothing but the next tick; under load the batches
 * grow instead of the number of statements, each paying its round trip, parse and
 * executor start once. Each call still gets its own answer or error.
 */
export class Batcher<A, T> {
  readonly #o: BatcherOptions<A, T>;
  #open: Batch<A, T> | undefined;
  #inFlight = 0;

  constructor(o: BatcherOptions<A, T>) {
    this.#o = o;
  }

  add(call: A): Promise<T> {
    let b = this.#open;
    if (b === undefined) {
      b = this.#open = { sent: false, calls: [], waiters: [] };
      if (this.#inFlight < this.#o.maxInFlight) {
        const batch = b;
        process.nextTick(() => this.#flush(batch));
      }
    }
    b.calls.push(call);
    const waiters = b.waiters;
    const answer = new Promise<T>((resolve, reject) => waiters.push({ resolve, reject }));
    if (b.calls.length >= this.#o.maxBatch) this.#flush(b);
    return answer;
  }

  #flush(b: Batch<A, T>): void {
    if (b.sent) return;
    b.sent = true;
    if (this.#open === b) this.#open = undefined;
    this.#inFlight++;
    let settled = false;
    const done = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(slot);
      this.#inFlight--;
      const next = this.#open;
      if (next !== undefined && this.#inFlight < this.#o.maxInFlight) process.nextTick(() => this.#flush(next));
    };
    const slot = setTimeout(done, this.#o.slotMs);
    slot.unref();
    let sent: Promise<(call: A) => T>;
    try {
      sent = this.#o.send(b.calls);
    } catch (err) {
      sent = Promise.reject(err);
    }
    sent.then(
      (answer) => {
        done();
        for (let i = 0; i < b.waiters.length; i++) {
          const w = b.waiters[i]!;
          try {
            w.resolve(answer(b.calls[i]!));
          } catch (err) {
            w.reject(err);
          }
        }
      },
      (err: unknown) => {
        done();
        for (const w of b.waiters) w.reject(err);
      },
    );
  }
}
