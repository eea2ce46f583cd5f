/** A value at hand, or a Promise of it where it had to wait (a remote store). */
export type MaybePromise<T> = T | Promise<T>;

/**
 * `f(x)`: at once when `x` is at hand, once it settles otherwise. The hot paths chain their
 * steps with it, so that a memory-store request is served without a Promise or a microtask.
 */
export function andThen<T, R>(x: MaybePromise<T>, f: (value: T) => MaybePromise<R>): MaybePromise<R> {
  return x instanceof Promise ? x.then(f) : f(x);
}
