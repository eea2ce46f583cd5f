import type { Clock } from '../clock.js';
import type { EndReason } from '../protocol/messages.js';
import { SmallMap } from '../small-map.js';
import { TimerQueue } from './timer-queue.js';

/** Someone following a session: told once when it ends, and optionally warned before. */
export interface Subscriber {
  /** The session id as the subscriber knows it (it may echo it back; it never learns another). */
  sessionId: string;
  ended(reason: EndReason): void;
  /** For bound connections: called `warnBefore` ms before the end with the seconds left. */
  expiring?(expiresIn: number): void;
  warnBefore?: number;
  /** extend_session moved the end: the seconds now left. */
  extended?(expiresIn: number): void;
  /** update_session replaced the data. */
  updated?(data: Record<string, unknown>): void;
}

interface Followed {
  subs: SmallMap<string, Subscriber>;
  /** warnBefore (ms) -> how many subscribers ask for it: the earliest is kept without a walk over `subs`. */
  warnings: SmallMap<number, number>;
  end: number;
  reason: 'ttl' | 'idle';
  warned: boolean;
  /** Checks of its end that failed in a row (the store could not answer): the next waits longer. */
  failures: number;
  /** Keys of the subscribers that came after the warning went out, each to be warned on its own. */
  late?: Set<string>;
  /**
   * A look was asked for because a request saw the session gone or changed (see `recheck`):
   * when the store no longer has it before its time, the end's event, which carries the
   * reason, is on its way and is waited for (`waited`: the wait was made).
   */
  awaitEnd?: boolean;
  waited?: boolean;
}

/**
 * Checks of followed sessions against the store at once, at most. A resync looks at every
 * followed session again, and a node following tens of thousands would otherwise send as many
 * reads at once: on a node already late (the reason its link was judged away), they time out
 * in turn, the store is judged away again, and the next resync starts another wave.
 */
export const MAX_CHECKS = 256;
/** A check that failed is made again after this, doubled at each failure in a row up to `RETRY_MAX_MS`. */
const RETRY_MS = 250;
/**
 * While the store cannot answer, each followed session is looked at again this often at most
 * (a remote store's return also resyncs every followed session at once, src/gateway.ts).
 */
const RETRY_MAX_MS = 4000;
/**
 * How long a session found gone before its time, by a look a request asked for, waits for its
 * end's event (the reason) before its followers are told `destroyed`: the request that ended
 * it published the event before it answered, so it is normally here within milliseconds.
 */
export const END_EVENT_WAIT_MS = 1000;

/** Where a followed session's end stands now in the store (undefined: it is gone). */
export type EndLookup = (hash: string) => Promise<{ at: number; reason: 'ttl' | 'idle' } | undefined>;

/** What the hub asks of the session layer when a followed session's end comes. */
export type ExpiryCheck = (hash: string) => Promise<{ ended: EndReason | 'gone' | undefined; next?: number; reason?: 'ttl' | 'idle' }>;

/**
 * Who follows which session, and the one timer queue for their ends. Timers exist only for
 * followed sessions; an end is checked against the store before anything is pushed.
 */
export class SubscriptionHub {
  readonly #followed = new Map<string, Followed>();
  readonly #ends: TimerQueue<string>;
  readonly #warnings: TimerQueue<string>;
  readonly #clock: Clock;
  readonly #check: ExpiryCheck;
  readonly #onError: (err: unknown) => void;
  readonly #currentEnd: EndLookup | undefined;
  #subscriptions = 0;
  /** Sessions whose end is to be checked, in order, each once; at most MAX_CHECKS are being checked. */
  readonly #queued = new Set<string>();
  #checking = 0;
  /** Told, for each session ended by its own expiry, how late after its end the followers were told (seconds). */
  onLateness: ((seconds: number) => void) | undefined;

  /**
   * `currentEnd`, when the end can move (idle timeout), is asked before a warning goes out:
   * activity this node did not see (another node, another path) may have pushed the end later.
   */
  constructor(clock: Clock, check: ExpiryCheck, onError: (err: unknown) => void, currentEnd?: EndLookup) {
    this.#clock = clock;
    this.#check = check;
    this.#onError = onError;
    this.#currentEnd = currentEnd;
    this.#ends = new TimerQueue(clock, (hash) => this.#due(hash));
    this.#warnings = new TimerQueue(clock, (hash) => this.#warn(hash));
  }

  /**
   * Follows `hash` for `key` (a subscriber replaces the one it had under the same key) until
   * `end` (ms). False, and nothing changes, when `limit` is given and the session already has
   * that many subscribers. Constant time: nothing walks the session's other subscribers.
   */
  subscribe(hash: string, key: string, sub: Subscriber, end: number, reason: 'ttl' | 'idle', limit?: number): boolean {
    let f = this.#followed.get(hash);
    const fresh = f === undefined;
    if (f === undefined) {
      f = { subs: new SmallMap(), warnings: new SmallMap(), end, reason, warned: false, failures: 0 };
      this.#followed.set(hash, f);
    }
    const old = f.subs.get(key);
    if (old === undefined && limit !== undefined && f.subs.size >= limit) return false;
    const warnBefore = this.#earliestWarning(f);
    if (old !== undefined) this.#countWarning(f, old, -1);
    f.subs.set(key, sub);
    if (old === undefined) this.#subscriptions++;
    this.#countWarning(f, sub, 1);
    if (fresh || f.end !== end || f.reason !== reason || this.#earliestWarning(f) !== warnBefore) this.#reschedule(hash, f, end, reason);
    else if (f.warned && sub.expiring !== undefined && (sub.warnBefore ?? 0) > 0) {
      // The others were warned already (a second tab opened late in the session): this one is
      // warned too, on the timer as a first one would be, so after the reply to its subscribe.
      (f.late ??= new Set()).add(key);
      this.#warnings.schedule(hash, this.#clock.now());
    }
    return true;
  }

  /** Stops following; true when `key` was following `hash`. */
  unsubscribe(hash: string, key: string): boolean {
    const f = this.#followed.get(hash);
    const sub = f?.subs.get(key);
    if (f === undefined || sub === undefined) return false;
    f.subs.delete(key);
    this.#subscriptions--;
    if (f.subs.size === 0) this.#drop(hash);
    else this.#countWarning(f, sub, -1);
    return true;
  }

  /** Subscribers of one followed session (0 when not followed). */
  subscribers(hash: string): number {
    return this.#followed.get(hash)?.subs.size ?? 0;
  }

  #countWarning(f: Followed, s: Subscriber, by: 1 | -1): void {
    if (!s.expiring || !s.warnBefore || s.warnBefore <= 0) return;
    const n = (f.warnings.get(s.warnBefore) ?? 0) + by;
    if (n > 0) f.warnings.set(s.warnBefore, n);
    else f.warnings.delete(s.warnBefore);
  }

  /** The largest warnBefore asked for (0: none); a handful of distinct values at most. */
  #earliestWarning(f: Followed): number {
    let max = 0;
    for (const w of f.warnings.keys()) if (w > max) max = w;
    return max;
  }

  /** The session is over: tells every follower once and forgets it. */
  ended(hash: string, reason: EndReason): void {
    const f = this.#followed.get(hash);
    if (f === undefined) return;
    this.#drop(hash);
    for (const sub of f.subs.values()) {
      try {
        sub.ended(reason);
      } catch (err) {
        this.#onError(err);
      }
    }
  }

  /** Activity moved the end of a followed session (idle timeout). */
  moved(hash: string, end: number, reason: 'ttl' | 'idle'): void {
    const f = this.#followed.get(hash);
    if (f !== undefined && f.end !== end) this.#reschedule(hash, f, end, reason);
  }

  /**
   * extend_session moved the end (on this node or another): the timers move to the new end,
   * the expiry warning is armed again for it, and every follower is told the seconds left.
   */
  extended(hash: string, end: number, reason: 'ttl' | 'idle'): void {
    const f = this.#followed.get(hash);
    if (f === undefined) return;
    this.#reschedule(hash, f, end, reason);
    const left = Math.max(0, Math.ceil((end - this.#clock.now()) / 1000));
    this.#tell(f, (s) => s.extended?.(left));
  }

  /** update_session replaced the data of a followed session: every follower is told. */
  updated(hash: string, data: Record<string, unknown>): void {
    const f = this.#followed.get(hash);
    if (f !== undefined) this.#tell(f, (s) => s.updated?.(data));
  }

  #tell(f: Followed, fn: (s: Subscriber) => void): void {
    for (const s of [...f.subs.values()]) {
      try {
        fn(s);
      } catch (err) {
        this.#onError(err);
      }
    }
  }

  /** Hashes of every followed session: re-checked after a lost connection to the bus. */
  followed(): string[] {
    return [...this.#followed.keys()];
  }

  isFollowed(hash: string): boolean {
    return this.#followed.has(hash);
  }

  get size(): number {
    return this.#followed.size;
  }

  /** Subscribers over every followed session. */
  get subscriptions(): number {
    return this.#subscriptions;
  }

  /**
   * Re-checks one followed session now. `awaitEnd`: asked because a request found the session
   * gone while the link to the store's events is up (a change event whose session was ended
   * meanwhile, a subscribe's second look): an end found then is one whose event, carrying its
   * reason, is on its way, and it is waited for up to END_EVENT_WAIT_MS before the followers
   * are told `destroyed`. Without it (after a resync: events were missed) `destroyed` at once.
   */
  recheck(hash: string, awaitEnd = false): void {
    const f = this.#followed.get(hash);
    if (f === undefined) return;
    if (awaitEnd) f.awaitEnd = true;
    this.#due(hash);
  }

  #reschedule(hash: string, f: Followed, end: number, reason: 'ttl' | 'idle'): void {
    f.end = end;
    f.reason = reason;
    f.warned = false;
    // The warning of the new end goes to every subscriber.
    f.late = undefined;
    this.#ends.schedule(hash, end);
    const warnBefore = this.#earliestWarning(f);
    if (warnBefore > 0) this.#warnings.schedule(hash, end - warnBefore);
    else this.#warnings.cancel(hash);
  }

  #drop(hash: string): void {
    const f = this.#followed.get(hash);
    if (f !== undefined) this.#subscriptions -= f.subs.size;
    this.#followed.delete(hash);
    this.#queued.delete(hash);
    this.#ends.cancel(hash);
    this.#warnings.cancel(hash);
  }

  #warn(hash: string): void {
    const f = this.#followed.get(hash);
    if (f === undefined) return;
    if (f.warned) return this.#warnLate(f);
    if (this.#currentEnd === undefined) return this.#sendWarning(f);
    this.#currentEnd(hash).then(
      (cur) => {
        if (this.#followed.get(hash) !== f || f.warned) return;
        if (cur === undefined) this.#due(hash);
        else if (cur.at > f.end) this.#reschedule(hash, f, cur.at, cur.reason);
        else this.#sendWarning(f);
      },
      (err) => {
        this.#onError(err);
        if (this.#followed.get(hash) === f) this.#sendWarning(f);
      },
    );
  }

  /** Warns the subscribers that came after the warning of this end went out. */
  #warnLate(f: Followed): void {
    const late = f.late;
    if (late === undefined) return;
    f.late = undefined;
    const left = Math.max(0, Math.ceil((f.end - this.#clock.now()) / 1000));
    for (const key of late) {
      const s = f.subs.get(key);
      if (s?.expiring === undefined) continue;
      try {
        s.expiring(left);
      } catch (err) {
        this.#onError(err);
      }
    }
  }

  #sendWarning(f: Followed): void {
    if (f.warned) return;
    f.warned = true;
    const left = Math.max(0, Math.ceil((f.end - this.#clock.now()) / 1000));
    for (const s of f.subs.values()) {
      if (!s.expiring) continue;
      try {
        s.expiring(left);
      } catch (err) {
        this.#onError(err);
      }
    }
  }

  /** The end of a followed session is to be checked: queued, and checked as soon as fewer than MAX_CHECKS are. */
  #due(hash: string): void {
    if (!this.#followed.has(hash)) return;
    this.#queued.add(hash);
    this.#drain();
  }

  /** Pending checks waiting on the store (for tests and metrics). */
  get checking(): number {
    return this.#checking;
  }

  #drain(): void {
    while (this.#checking < MAX_CHECKS && this.#queued.size > 0) {
      const hash = this.#queued.values().next().value as string;
      this.#queued.delete(hash);
      const f = this.#followed.get(hash);
      if (f === undefined) continue;
      this.#checking++;
      this.#check(hash).then(
        (r) => {
          this.#settled();
          const now = this.#followed.get(hash);
          if (now === undefined) return;
          now.failures = 0;
          if (r.ended === undefined) now.awaitEnd = now.waited = undefined;
          const due = this.#clock.now() >= now.end;
          if ((r.ended === 'gone' && due) || r.ended === 'ttl' || r.ended === 'idle') this.onLateness?.(Math.max(0, this.#clock.now() - now.end) / 1000);
          // Gone from the store: by its own time when that had come, else ended by a request.
          // When a request asked for this look (see `recheck`), that end's event is on its way
          // with the reason: waited for, a bounded time. Else, or when it does not come, an end
          // this node did not hear of (its link to the store's events was away), which the store
          // no longer tells: `destroyed`, not a `ttl` that had not come.
          if (r.ended === 'gone' && !due && now.awaitEnd === true && now.waited !== true) {
            now.waited = true;
            this.#ends.schedule(hash, this.#clock.now() + END_EVENT_WAIT_MS);
          } else if (r.ended === 'gone') this.ended(hash, due && now.waited !== true ? f.reason : 'destroyed');
          else if (r.ended !== undefined) this.ended(hash, r.ended);
          // Activity elsewhere moved the end, and maybe its kind (an idle end past the absolute one).
          else if (r.next !== undefined && (r.next !== now.end || (r.reason !== undefined && r.reason !== now.reason)))
            this.#reschedule(hash, now, r.next, r.reason ?? now.reason);
          else if (r.next !== undefined) this.#ends.schedule(hash, r.next);
        },
        (err) => {
          this.#settled();
          // The store could not answer: try again shortly rather than guess either way, later at
          // each failure in a row, and each session at its own time (a quarter either way), so
          // that the sessions that failed together do not come back together.
          this.#onError(err);
          const now = this.#followed.get(hash);
          if (now === undefined) return;
          const wait = Math.min(RETRY_MAX_MS, RETRY_MS * 2 ** now.failures);
          now.failures = Math.min(now.failures + 1, 16);
          this.#ends.schedule(hash, this.#clock.now() + Math.round(wait * (0.75 + Math.random() / 2)));
        },
      );
    }
  }

  #settled(): void {
    this.#checking--;
    if (this.#queued.size > 0) this.#drain();
  }
}
