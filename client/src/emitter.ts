/** A small typed event emitter that runs the same in browsers and Node. */
export class Emitter<Events extends Record<string, unknown>> {
  readonly #handlers = new Map<keyof Events, Set<(value: never) => void>>();

  /** Calls `fn` on every `event`; returns the function that stops it. */
  on<K extends keyof Events>(event: K, fn: (value: Events[K]) => void): () => void {
    let set = this.#handlers.get(event);
    if (set === undefined) this.#handlers.set(event, (set = new Set()));
    set.add(fn as (value: never) => void);
    return () => set.delete(fn as (value: never) => void);
  }

  /** Calls `fn` on the next `event` only. */
  once<K extends keyof Events>(event: K, fn: (value: Events[K]) => void): () => void {
    const off = this.on(event, (v) => {
      off();
      fn(v);
    });
    return off;
  }

  protected emit<K extends keyof Events>(event: K, value: Events[K]): void {
    for (const fn of [...(this.#handlers.get(event) ?? [])]) {
      try {
        (fn as (value: Events[K]) => void)(value);
      } catch (err) {
        // A listener's bug must not break the client's own bookkeeping.
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}
