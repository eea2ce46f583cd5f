import { deepFreeze } from '../deep-freeze.js';

/**
 * The JSON text of values that can no longer change, written once. A verified token's
 * payload is kept for as long as the token lives and sent back in every `token_valid` for
 * it: serializing it again for each reply would be most of the cost of encoding one.
 */
const texts = new WeakMap<object, string>();

/** Freezes `value` and everything in it, and remembers its JSON text; returns `value`. */
export function freezeWithJson<T extends object>(value: T): T {
  deepFreeze(value);
  texts.set(value, JSON.stringify(value));
  return value;
}

/** `JSON.stringify(value)`: the text remembered by freezeWithJson, when there is one. */
export function jsonOf(value: object): string {
  return texts.get(value) ?? JSON.stringify(value);
}
