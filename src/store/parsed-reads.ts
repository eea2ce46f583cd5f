import { LRUCache } from 'lru-cache';
import { deepFreeze } from '../deep-freeze.js';

/** Keys whose last read is kept: the sessions read most recently (a few MB at most). */
const KEPT = 4096;

interface Parsed<T> {
  raw: string;
  data: T;
}

/**
 * The values a remote store reads, parsed once per stored text. A session is read on every
 * request that names it, and its stored text changes only when it is written: the text of the
 * last read of each key is kept with what it parsed to, and a read of the same key that
 * returns the same text gets that value again instead of parsing it again. Values are frozen,
 * as the memory store's are shared: a caller never changes what it read. Only the read paths
 * use it (take and swap return a value that is no longer stored), and nothing is trusted from
 * it but the parse: the text is compared on every read, and expiry is checked by the caller.
 */
export class ParsedReads<T> {
  readonly #parse: (raw: string) => T;
  readonly #kept = new LRUCache<string, Parsed<T>>({ max: KEPT });

  constructor(parse: (raw: string) => T) {
    this.#parse = parse;
  }

  /** `parse(raw)`, or the value the same text of `key` parsed to last time. */
  parse(key: string, raw: string): T {
    const kept = this.#kept.get(key);
    if (kept !== undefined && kept.raw === raw) return kept.data;
    const data = this.#parse(raw);
    deepFreeze(data);
    this.#kept.set(key, { raw, data });
    return data;
  }
}
