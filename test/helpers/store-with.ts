import type { Store } from '../../src/store/types.js';

/**
 * `store` with some of its members replaced: each override is called with the store's own
 * member (bound to it) and the call's arguments. Everything else passes through.
 *
 * @example
 * const slow = storeWith(memory, { take: (take, key) => later(() => take(key)) });
 */
export function storeWith(store: Store, overrides: { [K in keyof Store]?: (own: Store[K], ...args: never[]) => unknown }): Store {
  return new Proxy(store, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target) as unknown;
      const own = typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      const override = (overrides as Record<PropertyKey, ((own: unknown, ...a: unknown[]) => unknown) | undefined>)[prop];
      if (override === undefined) return own;
      return (...args: unknown[]) => override(own, ...args);
    },
  });
}
