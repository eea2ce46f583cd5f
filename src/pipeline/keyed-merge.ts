import { Observable, type OperatorFunction } from 'rxjs';

/**
 * Like `mergeMap` with a concurrency limit, but items that share a key run one after
 * another in arrival order, while items with other keys (or none) run concurrently.
 * `work` must not throw; if it does anyway, `recover` turns the error into a result,
 * so the stream never dies of one bad element. Results are emitted as they finish.
 *
 * @example
 * requests$.pipe(keyedMerge((r) => r.sessionId, (r) => handle(r), (r, e) => errorFor(r, e), 1024))
 */
export function keyedMerge<T, R>(
  keyOf: (item: T) => string | undefined,
  work: (item: T) => Promise<R> | R,
  recover: (item: T, err: unknown) => R,
  limit: number,
): OperatorFunction<T, R> {
  return (source) =>
    new Observable<R>((out) => {
      /** key -> items waiting behind the one of that key now queued or running */
      const waiting = new Map<string, T[]>();
      /** items holding their key (or keyless) that wait for a free slot */
      let ready: T[] = [];
      let readyHead = 0;
      let active = 0;
      let sourceDone = false;

      /** results not yet emitted; drained by one loop, so synchronous work never recurses */
      let finished: [T, R][] = [];
      let finishedHead = 0;
      let draining = false;

      const maybeComplete = () => {
        if (sourceDone && active === 0 && readyHead === ready.length && waiting.size === 0 && finishedHead === finished.length) out.complete();
      };

      const settle = (item: T, result: R) => {
        finished.push([item, result]);
        if (!draining) drain();
      };

      const drain = () => {
        draining = true;
        while (finishedHead < finished.length) {
          const [item, result] = finished[finishedHead++]!;
          if (finishedHead > 1024 && finishedHead * 2 > finished.length) {
            finished = finished.slice(finishedHead);
            finishedHead = 0;
          }
          active--;
          out.next(result);
          const key = keyOf(item);
          if (key !== undefined) {
            const q = waiting.get(key)!;
            if (q.length > 0) admit(q.shift()!);
            else waiting.delete(key);
          }
          while (active < limit && readyHead < ready.length) {
            const next = ready[readyHead++]!;
            if (readyHead > 1024 && readyHead * 2 > ready.length) {
              ready = ready.slice(readyHead);
              readyHead = 0;
            }
            start(next);
          }
        }
        draining = false;
        maybeComplete();
      };

      const start = (item: T) => {
        active++;
        let result: Promise<R> | R;
        try {
          result = work(item);
        } catch (err) {
          settle(item, recover(item, err));
          return;
        }
        if (result instanceof Promise) {
          result.then(
            (r) => settle(item, r),
            (err) => settle(item, recover(item, err)),
          );
        } else {
          settle(item, result);
        }
      };

      const admit = (item: T) => {
        if (active < limit) start(item);
        else ready.push(item);
      };

      const sub = source.subscribe({
        next(item) {
          const key = keyOf(item);
          if (key !== undefined) {
            const q = waiting.get(key);
            if (q !== undefined) {
              q.push(item);
              return;
            }
            waiting.set(key, []);
          }
          admit(item);
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
