/**
 * A Map for the common case of one entry: that entry lives in two fields, and a real Map is
 * made only when a second key comes (and kept from then on). An empty Map with its hash
 * table costs about 200 bytes; per bound connection the gateway keeps three maps that almost
 * always hold one entry (its follows, its session's subscribers and their warnings), and
 * with tens of thousands of connections those tables were a tenth of their memory.
 * Keys compare as in a Map (SameValueZero); iteration is in insertion order.
 */
export class SmallMap<K, V> {
  #key: K | undefined;
  #value: V | undefined;
  #one = false;
  #map: Map<K, V> | undefined;

  get size(): number {
    return this.#map !== undefined ? this.#map.size : this.#one ? 1 : 0;
  }

  get(key: K): V | undefined {
    if (this.#map !== undefined) return this.#map.get(key);
    return this.#one && same(this.#key, key) ? this.#value : undefined;
  }

  has(key: K): boolean {
    if (this.#map !== undefined) return this.#map.has(key);
    return this.#one && same(this.#key, key);
  }

  set(key: K, value: V): this {
    if (this.#map !== undefined) this.#map.set(key, value);
    else if (!this.#one || same(this.#key, key)) {
      this.#key = key;
      this.#value = value;
      this.#one = true;
    } else {
      this.#map = new Map([
        [this.#key as K, this.#value as V],
        [key, value],
      ]);
      this.#drop();
    }
    return this;
  }

  delete(key: K): boolean {
    if (this.#map !== undefined) return this.#map.delete(key);
    if (!this.#one || !same(this.#key, key)) return false;
    this.#drop();
    return true;
  }

  clear(): void {
    this.#map?.clear();
    this.#drop();
  }

  keys(): IterableIterator<K> {
    if (this.#map !== undefined) return this.#map.keys();
    return (this.#one ? [this.#key as K] : []).values();
  }

  values(): IterableIterator<V> {
    if (this.#map !== undefined) return this.#map.values();
    return (this.#one ? [this.#value as V] : []).values();
  }

  #drop(): void {
    this.#key = undefined;
    this.#value = undefined;
    this.#one = false;
  }
}

/** SameValueZero, as a Map compares keys. */
function same(a: unknown, b: unknown): boolean {
  return a === b || (a !== a && b !== b);
}
