import type { OperatorFunction } from 'rxjs';
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
  /** One per item: its key, computed once, and its result once it has one. */
  interface Job {
    item: T;
    key: OrderKey;
    result?: R;
  }
  return (source) =>
    new Observable<R>((out) => {
      /**
       * key -> items waiting behind the one of that key now queued or running (null: none yet).
       * The first key held lives in its own slot (`soloKey`/`soloQueue`), the others in the
       * Map: a connection with one request in flight at a time (a browser) then never touches
       * the Map. Emptying a Map allocates a new table, which lives until the connection's next
       * request and so, with thousands of connections, is promoted to the old generation:
       * old-space garbage on every request, and more frequent full GCs.
       */
      let soloKey: string | undefined;
      let soloQueue: Job[] | null = null;
      const others = new Map<string, Job[] | null>();
      const waitingGet = (key: string): Job[] | null | undefined => (key === soloKey ? soloQueue : others.size === 0 ? undefined : others.get(key));
      const waitingSet = (key: string, q: Job[] | null) => {
        if (key === soloKey) soloQueue = q;
        else if (soloKey === undefined && (others.size === 0 || !others.has(key))) {
          soloKey = key;
          soloQueue = q;
        } else others.set(key, q);
      };
      const waitingDelete = (key: string) => {
        if (key === soloKey) {
          soloKey = undefined;
          soloQueue = null;
        } else others.delete(key);
      };
      const waitingSize = () => (soloKey === undefined ? 0 : 1) + others.size;
      /** items holding their key (or keyless) that wait for a free slot */
      let ready: Job[] = [];
      let readyHead = 0;
      let active = 0;
      let sourceDone = false;
      /** the EXCLUSIVE item waiting for earlier items to finish, or running; null: none */
      let exclusive: Job | null = null;
      let exclusiveRunning = false;
      /** items that arrived after `exclusive`, not yet looked at */
      let held: Job[] = [];
      let heldHead = 0;
      /** nothing admitted is queued or running: an EXCLUSIVE item may start */
      const idle = () => active === 0 && readyHead === ready.length && waitingSize() === 0;

      /** results not yet emitted; drained by one loop, so synchronous work never recurses */
      let finished: Job[] = [];
      let finishedHead = 0;
      let draining = false;

      const maybeComplete = () => {
        if (sourceDone && exclusive === null && heldHead === held.length && idle() && finishedHead === finished.length) out.complete();
      };

      const settle = (job: Job, result: R) => {
        job.result = result;
        // Outside a drain nothing is queued: the job is handed over directly (an item answered
        // in place, the common case, then never touches the queue).
        if (draining) finished.push(job);
        else drain(job);
      };

      const drain = (first: Job) => {
        draining = true;
        let job: Job | undefined = first;
        for (; job !== undefined; job = finishedHead < finished.length ? finished[finishedHead++] : undefined) {
          if (finishedHead > 1024 && finishedHead * 2 > finished.length) {
            finished = finished.slice(finishedHead);
            finishedHead = 0;
          }
          active--;
          out.next(job.result as R);
          if (typeof job.key === 'string') {
            const q = waitingGet(job.key);
            if (q && q.length > 0) admit(q.shift()!);
            else waitingDelete(job.key);
          }
          while (active < limit && readyHead < ready.length) {
            const next = ready[readyHead++]!;
            if (readyHead > 1024 && readyHead * 2 > ready.length) {
              ready = ready.slice(readyHead);
              readyHead = 0;
            }
            start(next);
          }
          if (job === exclusive) {
            exclusive = null;
            exclusiveRunning = false;
            // Let in what arrived behind it, up to the next EXCLUSIVE item.
            while (exclusive === null && heldHead < held.length) accept(held[heldHead++]!);
            if (heldHead === held.length) {
              held = [];
              heldHead = 0;
            }
          }
          if (exclusive !== null && !exclusiveRunning && idle()) {
            exclusiveRunning = true;
            start(exclusive);
          }
        }
        // Emptied queues let go of what they held: a quiet connection must not keep its last
        // thousand requests and replies alive (5,000 connections made that hundreds of MB).
        // (Setting an array's length is a call into the runtime: only when there is something to drop.)
        if (finished.length !== 0) finished.length = 0;
        finishedHead = 0;
        if (readyHead === ready.length) {
          if (ready.length !== 0) ready.length = 0;
          readyHead = 0;
        }
        draining = false;
        maybeComplete();
      };

      const start = (job: Job) => {
        active++;
        const item = job.item;
        let result: Promise<R> | R;
        try {
          result = work(item);
        } catch (err) {
          settle(job, recover(item, err));
          return;
        }
        if (result instanceof Promise) {
          result.then(
            (r) => settle(job, r),
            (err) => settle(job, recover(item, err)),
          );
        } else {
          settle(job, result);
        }
      };

      const admit = (job: Job) => {
        if (active < limit) start(job);
        else ready.push(job);
      };

      /** Takes in an item no EXCLUSIVE item holds back. */
      const accept = (job: Job) => {
        const key = job.key;
        if (key === EXCLUSIVE) {
          exclusive = job;
          if (idle()) {
            exclusiveRunning = true;
            start(job);
          }
          return;
        }
        if (key !== undefined) {
          const q = waitingGet(key);
          if (q !== undefined) {
            if (q === null) waitingSet(key, [job]);
            else q.push(job);
            return;
          }
          waitingSet(key, null);
        }
        admit(job);
      };

      const sub = source.subscribe({
        next(item) {
          const job: Job = { item, key: keyOf(item) };
          if (exclusive !== null) held.push(job);
          else accept(job);
        },
        error(err) {
          out.error(err);
        },
        complete() {
          sourceDone = true;
          maybeComplete();
        },
      });
      return () => sub.unsubscribe();
    });
}
