import type { Clock, TimerHandle } from '../clock.js';

/** What the map holds per key: Keyv's `{value}` shape, with our own expiry beside it. */
export interface MemoryEntry {
  value: unknown;
  /** Expiry in ms on the injected clock (Keyv's own `expires` field stays unset). */
  exp: number;
}

/**
 * A user index set: while small (most users have a few sessions) a flat, exact-size array
 * `[member, expiresAt, ...]`, a fraction of what a Map costs for one member; a Map
 * once it holds more than SMALL_SET members, so large sets stay O(1) per operation.
 */
type IndexSet = (string | number)[] | Map<string, number>;
const SMALL_SET = 8;

const setSize = (set: IndexSet): number => (set instanceof Map ? set.size : set.length / 2);

/** Drops members expired at `now`, collecting the others into `live`; returns how many went. */
function prune(set: IndexSet, now: number, live?: string[]): number {
  let removed = 0;
  if (set instanceof Map) {
    for (const [member, exp] of set) {
      if (exp > now) live?.push(member);
      else if (set.delete(member)) removed++;
    }
    return removed;
  }
  let w = 0;
  for (let r = 0; r < set.length; r += 2) {
    const exp = set[r + 1] as number;
    if (exp <= now) {
      removed++;
      continue;
    }
    live?.push(set[r] as string);
    set[w] = set[r]!;
    set[w + 1] = exp;
    w += 2;
  }
  set.length = w;
  return removed;
}

const TICK_MS = 100;
/** A full sweep of the map takes about this long, whatever its size. */
const PASS_MS = 5_000;
const MIN_SCAN = 2_000;

/**
 * A Keyv store adapter over a plain Map that really frees expired entries.
 *
 * Keyv's default Map drops an entry only when it is read again, so a session that
 * nobody validates would stay forever. Here one unref'd timer scans the map in slices
 * (like Redis' active expiry): every entry is visited about every 5 s at a bounded cost
 * per tick, with no per-entry bookkeeping, so memory per session stays minimal.
 * Keyv is used with serialization off, so values are kept as objects (no JSON cost).
 */
export class MemoryMap {
  readonly opts = { dialect: 'map', url: 'memory://' };
  namespace?: string;
  readonly #map = new Map<string, MemoryEntry>();
  readonly #sets = new Map<string, IndexSet>();
  readonly #clock: Clock;
  #timer: TimerHandle | undefined;
  #cursor: Iterator<[string, MemoryEntry]> | undefined;
  #setCursor: Iterator<[string, IndexSet]> | undefined;
  /** Entries per tick for the current pass, fixed when the pass starts (see `sweep`). */
  #mapBudget = MIN_SCAN;
  #setBudget = MIN_SCAN;
  /** Sizes when the previous passes started. */
  #mapPassSize = 0;
  #setPassSize = 0;
  /** Members across all index sets: the sets' share of the sweep is sized by it. */
  #members = 0;
  #closed = false;

  constructor(clock: Clock) {
    this.#clock = clock;
    this.#arm();
  }

  /** The entry, unless it has expired by `at` (default: the clock now). */
  get(key: string, at?: number): MemoryEntry | undefined {
    const e = this.#map.get(key);
    if (e === undefined) return undefined;
    if (e.exp <= (at ?? this.#clock.now())) {
      this.#map.delete(key);
      return undefined;
    }
    return e;
  }

  /** Keyv hands `{value, expires}`; the expiry is recomputed on the injected clock. */
  set(key: string, data: { value: unknown }, ttl?: number): boolean {
    const exp = typeof ttl === 'number' && ttl > 0 ? this.#clock.now() + ttl : Number.POSITIVE_INFINITY;
    this.#map.set(key, { value: data.value, exp });
    return true;
  }

  delete(key: string): boolean {
    return this.#map.delete(key);
  }

  clear(): void {
    this.#map.clear();
    this.#sets.clear();
    this.#members = 0;
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  /** Atomic by construction: JavaScript runs this to the end before anything else. */
  take(key: string): unknown {
    const e = this.get(key);
    if (e === undefined) return undefined;
    this.#map.delete(key);
    return e.value;
  }

  swap(key: string, value: unknown, expiresAt?: number): unknown {
    const e = this.get(key);
    if (e === undefined) return undefined;
    const old = e.value;
    e.value = value;
    if (expiresAt !== undefined) e.exp = expiresAt;
    return old;
  }

  /** Atomic by construction, like take; the store's clock is the injected one. */
  swapIf(key: string, expected: unknown, value: unknown, options: { expiresAt?: number; before?: number }): { swapped: boolean; old: unknown } {
    const e = this.get(key);
    if (e === undefined) return { swapped: false, old: undefined };
    const old = e.value;
    if (old !== expected && JSON.stringify(old) !== JSON.stringify(expected)) return { swapped: false, old };
    if (options.before !== undefined && this.#clock.now() >= options.before) return { swapped: false, old };
    e.value = value;
    if (options.expiresAt !== undefined) e.exp = options.expiresAt;
    return { swapped: true, old };
  }

  /** Atomic by construction, like take. */
  claim(key: string, ttlMs: number, value: unknown): boolean {
    if (this.get(key) !== undefined) return false;
    this.#map.set(key, { value, exp: this.#clock.now() + ttlMs });
    return true;
  }

  /** Store.indexAdd: a member already there keeps the later expiry, unless `shorten`. */
  indexAdd(key: string, member: string, expiresAt: number, shorten = false): void {
    const set = this.#sets.get(key);
    const until = (old: number | undefined) => (shorten || old === undefined ? expiresAt : Math.max(old, expiresAt));
    if (set === undefined) {
      this.#sets.set(key, [member, expiresAt]);
      this.#members++;
    } else if (set instanceof Map) {
      const old = set.get(member);
      if (old === undefined) this.#members++;
      set.set(member, until(old));
    } else {
      const at = set.indexOf(member);
      if (at >= 0 && at % 2 === 0) {
        set[at + 1] = until(set[at + 1] as number);
        return;
      }
      this.#members++;
      if (set.length < 2 * SMALL_SET) {
        // Copied rather than pushed: exact size, no spare capacity per user.
        this.#sets.set(key, [...set, member, expiresAt]);
        return;
      }
      const map = new Map<string, number>();
      for (let i = 0; i < set.length; i += 2) map.set(set[i] as string, set[i + 1] as number);
      map.set(member, expiresAt);
      this.#sets.set(key, map);
    }
  }

  indexRemove(key: string, member: string): void {
    const set = this.#sets.get(key);
    if (set === undefined) return;
    if (set instanceof Map) {
      if (set.delete(member)) this.#members--;
    } else {
      const at = set.indexOf(member);
      if (at >= 0 && at % 2 === 0) {
        set.splice(at, 2);
        this.#members--;
      }
    }
    if (setSize(set) === 0) this.#sets.delete(key);
  }

  indexMembers(key: string, now: number): string[] {
    const set = this.#sets.get(key);
    if (set === undefined) return [];
    const out: string[] = [];
    this.#members -= prune(set, now, out);
    if (setSize(set) === 0) this.#sets.delete(key);
    return out;
  }

  /** Keys held, index sets included. */
  get size(): number {
    return this.#map.size + this.#sets.size;
  }

  close(): void {
    this.#closed = true;
    this.#timer?.cancel();
  }

  #arm(): void {
    if (this.#closed) return;
    this.#timer = this.#clock.setTimer(() => {
      this.sweep();
      this.#arm();
    }, TICK_MS);
  }

  /**
   * One slice of the sweep: visits a bounded number of entries, dropping the expired.
   * The map and the index sets each get their own budget, so neither starves the other.
   * A pass's budget is fixed when it starts, sized for the larger of this pass and the one
   * before: so a pass takes at most about PASS_MS, and no pass is slower per entry than
   * the previous one. Together (Map order is insertion order, so positions only move
   * forward) every entry is visited again within about PASS_MS of its last visit, and an
   * expired entry is gone at most one pass after it expires.
   */
  sweep(): void {
    const now = this.#clock.now();
    const perTick = (n: number) => Math.max(MIN_SCAN, Math.ceil((n * TICK_MS) / PASS_MS));
    if (this.#cursor === undefined) {
      this.#cursor = this.#map.entries();
      this.#mapBudget = perTick(Math.max(this.#map.size, this.#mapPassSize));
      this.#mapPassSize = this.#map.size;
    }
    let budget = this.#mapBudget;
    while (budget > 0) {
      const next = this.#cursor.next();
      if (next.done) {
        this.#cursor = undefined;
        break;
      }
      budget--;
      if (next.value[1].exp <= now) this.#map.delete(next.value[0]);
    }
    if (this.#setCursor === undefined) {
      this.#setCursor = this.#sets.entries();
      this.#setBudget = perTick(Math.max(this.#members, this.#setPassSize));
      this.#setPassSize = this.#members;
    }
    budget = this.#setBudget;
    while (budget > 0) {
      const next = this.#setCursor.next();
      if (next.done) {
        this.#setCursor = undefined;
        break;
      }
      const [key, set] = next.value;
      budget -= setSize(set);
      this.#members -= prune(set, now);
      if (setSize(set) === 0) this.#sets.delete(key);
    }
  }
}
