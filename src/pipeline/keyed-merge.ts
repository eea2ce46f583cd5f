import type { OperatorFunction, Subscriber } from 'rxjs';
// The class's own module (an export of rxjs): the 'rxjs' index loads every operator, some 200
// modules, on the start of each process.
import { Observable } from 'rxjs/internal/Observable';

/**
 * The key of an item that runs alone: after every item that arrived before it has finished,
 * and before any item that arrives after it starts. For the rare item whose reach the keys
 * cannot name (all of a user's sessions, which arrive keyed by session id).
 */
export const EXCLUSIVE: unique symbol = Symbol('exclusive');

/** What orders an item: a key shared with others, `EXCLUSIVE`, or nothing. */
export type OrderKey = string | typeof EXCLUSIVE | undefined;

/**
 * Like `mergeMap` with a concurrency limit, but items that share a key run one after
 * another in arrival order, while items with other keys (or none) run concurrently; an
 * `EXCLUSIVE` item runs alone, in arrival order with everything.
 * `work` must not throw; if it does anyway, `recover` turns the error into a result,
 * so the stream never dies of one bad element. Results are emitted as they finish.
 *
 * @example
 * requests$.pipe(keyedMerge((r) => r.sessionId, (r) => handle(r), (r, e) => errorFor(r, e), 1024))
 */
export function keyedMerge<T, R>(
  keyOf: (item: T) => OrderKey,
  work: (item: T) => Promise<R> | R,
  recover: (item: T, err: unknown) => R,
  limit: number,
): OperatorFunction<T, R> {
  const how: How<T, R> = { keyOf, work, recover, limit };
  return (source) => new Observable<R>((out) => source.subscribe(new KeyedMerge(out, how)));
}

/** What a keyedMerge does, shared by every subscription to it. */
interface How<T, R> {
  keyOf: (item: T) => OrderKey;
  work: (item: T) => Promise<R> | R;
  recover: (item: T, err: unknown) => R;
  limit: number;
}

/** One per item: its key, computed once, and its result once it has one. */
interface Job<T, R> {
  item: T;
  key: OrderKey;
  result?: R;
}

/**
 * The state of one subscription to a keyedMerge, and the observer of its source: one object
 * with methods rather than a scope of closures (a connection's pipeline lives as long as the
 * connection, and with tens of thousands of connections each closure is memory held).
 */
class KeyedMerge<T, R> {
  readonly #out: Subscriber<R>;
  readonly #how: How<T, R>;
  /**
   * key -> items waiting behind the one of that key now queued or running (null: none yet).
   * The first key held lives in its own slot (`#soloKey`/`#soloQueue`), the others in the
   * Map, made when first needed: a connection with one request in flight at a time (a
   * browser) then never has one. Emptying a Map allocates a new table, which lives until the
   * connection's next request and so, with thousands of connections, is promoted to the old
   * generation: old-space garbage on every request, and more frequent full GCs.
   */
  #soloKey: string | undefined;
  #soloQueue: Job<T, R>[] | null = null;
  #others: Map<string, Job<T, R>[] | null> | undefined;
  /** items holding their key (or keyless) that wait for a free slot */
  #ready: Job<T, R>[] = [];
  #readyHead = 0;
  #active = 0;
  #sourceDone = false;
  /** the EXCLUSIVE item waiting for earlier items to finish, or running; null: none */
  #exclusive: Job<T, R> | null = null;
  #exclusiveRunning = false;
  /** items that arrived after `#exclusive`, not yet looked at */
  #held: Job<T, R>[] = [];
  #heldHead = 0;
  /** results not yet emitted; drained by one loop, so synchronous work never recurses */
  #finished: Job<T, R>[] = [];
  #finishedHead = 0;
  #draining = false;

  constructor(out: Subscriber<R>, how: How<T, R>) {
    this.#out = out;
    this.#how = how;
  }

  next(item: T): void {
    const job: Job<T, R> = { item, key: this.#how.keyOf(item) };
    if (this.#exclusive !== null) this.#held.push(job);
    else this.#accept(job);
  }

  error(err: unknown): void {
    this.#out.error(err);
  }

  complete(): void {
    this.#sourceDone = true;
    this.#maybeComplete();
  }

  #waitingGet(key: string): Job<T, R>[] | null | undefined {
    if (key === this.#soloKey) return this.#soloQueue;
    return this.#others === undefined || this.#others.size === 0 ? undefined : this.#others.get(key);
  }

  #waitingSet(key: string, q: Job<T, R>[] | null): void {
    if (key === this.#soloKey) this.#soloQueue = q;
    else if (this.#soloKey === undefined && (this.#others === undefined || this.#others.size === 0 || !this.#others.has(key))) {
      this.#soloKey = key;
      this.#soloQueue = q;
    } else (this.#others ??= new Map()).set(key, q);
  }

  #waitingDelete(key: string): void {
    if (key === this.#soloKey) {
      this.#soloKey = undefined;
      this.#soloQueue = null;
    } else this.#others?.delete(key);
  }

  #waitingSize(): number {
    return (this.#soloKey === undefined ? 0 : 1) + (this.#others?.size ?? 0);
  }

  /** nothing admitted is queued or running: an EXCLUSIVE item may start */
  #idle(): boolean {
    return this.#active === 0 && this.#readyHead === this.#ready.length && this.#waitingSize() === 0;
  }

  #maybeComplete(): void {
    if (this.#sourceDone && this.#exclusive === null && this.#heldHead === this.#held.length && this.#idle() && this.#finishedHead === this.#finished.length)
      this.#out.complete();
  }

  #settle(job: Job<T, R>, result: R): void {
    job.result = result;
    // Outside a drain nothing is queued: the job is handed over directly (an item answered
    // in place, the common case, then never touches the queue).
    if (this.#draining) this.#finished.push(job);
    else this.#drain(job);
  }

  #drain(first: Job<T, R>): void {
    this.#draining = true;
    const limit = this.#how.limit;
    let job: Job<T, R> | undefined = first;
    for (; job !== undefined; job = this.#finishedHead < this.#finished.length ? this.#finished[this.#finishedHead++] : undefined) {
      if (this.#finishedHead > 1024 && this.#finishedHead * 2 > this.#finished.length) {
        this.#finished = this.#finished.slice(this.#finishedHead);
        this.#finishedHead = 0;
      }
      this.#active--;
      this.#out.next(job.result as R);
      if (typeof job.key === 'string') {
        const q = this.#waitingGet(job.key);
        if (q && q.length > 0) this.#admit(q.shift()!);
        else this.#waitingDelete(job.key);
      }
      while (this.#active < limit && this.#readyHead < this.#ready.length) {
        const next = this.#ready[this.#readyHead++]!;
        if (this.#readyHead > 1024 && this.#readyHead * 2 > this.#ready.length) {
          this.#ready = this.#ready.slice(this.#readyHead);
          this.#readyHead = 0;
        }
        this.#start(next);
      }
      if (job === this.#exclusive) {
        this.#exclusive = null;
        this.#exclusiveRunning = false;
        // Let in what arrived behind it, up to the next EXCLUSIVE item.
        while (this.#exclusive === null && this.#heldHead < this.#held.length) this.#accept(this.#held[this.#heldHead++]!);
        if (this.#heldHead === this.#held.length) {
          this.#held = [];
          this.#heldHead = 0;
        }
      }
      if (this.#exclusive !== null && !this.#exclusiveRunning && this.#idle()) {
        this.#exclusiveRunning = true;
        this.#start(this.#exclusive);
      }
    }
    // Emptied queues let go of what they held: a quiet connection must not keep its last
    // thousand requests and replies alive (5,000 connections made that hundreds of MB).
    // (Setting an array's length is a call into the runtime: only when there is something to drop.)
    if (this.#finished.length !== 0) this.#finished.length = 0;
    this.#finishedHead = 0;
    if (this.#readyHead === this.#ready.length) {
      if (this.#ready.length !== 0) this.#ready.length = 0;
      this.#readyHead = 0;
    }
    this.#draining = false;
    this.#maybeComplete();
  }

  #start(job: Job<T, R>): void {
    this.#active++;
    const item = job.item;
    let result: Promise<R> | R;
    try {
      result = this.#how.work(item);
    } catch (err) {
      this.#settle(job, this.#how.recover(item, err));
      return;
    }
    if (result instanceof Promise) {
      result.then(
        (r) => this.#settle(job, r),
        (err: unknown) => this.#settle(job, this.#how.recover(item, err)),
      );
    } else {
      this.#settle(job, result);
    }
  }

  #admit(job: Job<T, R>): void {
    if (this.#active < this.#how.limit) this.#start(job);
    else this.#ready.push(job);
  }

  /** Takes in an item no EXCLUSIVE item holds back. */
  #accept(job: Job<T, R>): void {
    const key = job.key;
    if (key === EXCLUSIVE) {
      this.#exclusive = job;
      if (this.#idle()) {
        this.#exclusiveRunning = true;
        this.#start(job);
      }
      return;
    }
    if (key !== undefined) {
      const q = this.#waitingGet(key);
      if (q !== undefined) {
        if (q === null) this.#waitingSet(key, [job]);
        else q.push(job);
        return;
      }
      this.#waitingSet(key, null);
    }
    this.#admit(job);
  }
}
