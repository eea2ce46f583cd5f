import { LRUCache } from 'lru-cache';
import type { GatewayClient } from '../../client/src/gateway-client.js';
import { GatewayRequestError, GatewayTimeoutError } from '../../client/src/errors.js';
import { ErrorCodes } from '../../src/protocol/codes.js';
import { GatewaySessionError, unavailable } from './errors.js';

/** A validated session, as the middleware puts it on the request. */
export interface GatewaySession {
  /** The session's user. */
  readonly user_id: string;
  /** The session's data (frozen: it is shared with the cache); absent when the session has none. */
  readonly data?: Readonly<Record<string, unknown>>;
  /** Whole seconds the session is known to live on (a lower bound). */
  readonly expires_in: number;
}

/** Counters of the cache, for metrics and tests. */
export interface SessionCacheStats {
  /** Requests answered from the cache. */
  hits: number;
  /** Requests that had to ask the gateway (joined flights included). */
  misses: number;
  /** `validate_session` requests sent. */
  validations: number;
  /** Background re-validations of cached sessions answered (see revalidateFraction). */
  refreshed: number;
  /** Sessions answered valid but not cached (the gateway refused the subscription, or the session changed during each check). */
  uncached: number;
  /** Pushes received for cached or in-flight sessions, by type. */
  expiredPushes: number;
  updatedPushes: number;
  extendedPushes: number;
  /** Times the gateway link went down (the cache was cleared each time). */
  disconnects: number;
}

interface Entry {
  userId: string;
  data: Readonly<Record<string, unknown>> | undefined;
  /** Local time (ms) until which the session is certainly live, barring a push. */
  expiresAt: number;
  /** Local time (ms) of the last validate_session (activity, for the idle timeout). */
  checkedAt: number;
  /** How long the last validate_session said the session lived (ms): the basis of re-validation. */
  window: number;
  /** Bumped by every push: a check that started before one must not overwrite it. */
  version: number;
  /** The gateway holds a subscription for it on the current connection (false once it ended or the link went down). */
  subscribed: boolean;
  /**
   * Local time (ms) by which the session has ended at the latest, as the last answer about it
   * says: its expires_in (rounded up by the gateway) counted from the answer's arrival.
   */
  latestEnd: number;
  /** Local time (ms) until which the last cookie this object sent for it lives (0: none sent). */
  cookieUntil: number;
  /** Local time (ms) the last background validate_session was sent (0: none yet). */
  refreshSentAt: number;
}

interface Flight {
  promise: Promise<GatewaySession | null>;
  /** Bumped by every push for the session while the check is under way. */
  version: number;
  ended: boolean;
}

export interface SessionCacheOptions {
  max: number;
  revalidateFraction: number;
  now: () => number;
  /** The most a lookup waits for the gateway, ms, whatever it waits for: past it, UNAVAILABLE. */
  timeoutMs: number;
  /** How long the link's heartbeat waits for an answer to a ping, ms: a request left unanswered pings at most once per this. */
  pingTimeoutMs: number;
}

/** A check that saw a push arrive meanwhile is tried again, this many times at most. */
const MAX_CHECKS = 3;

function freeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) freeze(v);
    Object.freeze(value);
  }
  return value;
}

/**
 * Validated sessions, at most `max`, each followed on the gateway (`subscribe_session`) for
 * as long as it is cached: an end, update or extension anywhere reaches the entry by push.
 * An evicted entry is unsubscribed, so the gateway's subscriptions stay at most `max`.
 * While the link is down nothing is cached or answered (fail closed), and what was cached
 * before is dropped: pushes may have been missed.
 */
export class SessionCache {
  readonly stats: SessionCacheStats = {
    hits: 0,
    misses: 0,
    validations: 0,
    refreshed: 0,
    uncached: 0,
    expiredPushes: 0,
    updatedPushes: 0,
    extendedPushes: 0,
    disconnects: 0,
  };
  readonly #client: GatewayClient;
  readonly #o: SessionCacheOptions;
  readonly #lru: LRUCache<string, Entry>;
  readonly #flights = new Map<string, Flight>();
  readonly #refreshing = new Set<string>();
  /** Cookies this object's owner set (login, regenerate) for sessions not cached yet: until when they live (local ms). */
  readonly #cookies: LRUCache<string, number>;
  /** unsubscribe_session requests not answered yet: subscriptions the gateway may still hold (a new one waits for them when they would take it past `max`). */
  readonly #unsubscribing = new Set<Promise<unknown>>();
  /** Subscriptions made by checks under way, not yet in the cache. */
  #subscribing = 0;
  /** Bumped at every disconnect: a check that spans one is not cached. */
  #epoch = 0;
  #up: boolean;
  /** Set by close(), for good: a later open of the client (someone's connect()) does not bring the cache back. */
  #closed = false;
  /** performance.now() of the last ping sent because a request went unanswered. */
  #pingedAt = Number.NEGATIVE_INFINITY;

  constructor(client: GatewayClient, o: SessionCacheOptions) {
    this.#client = client;
    this.#o = o;
    this.#up = client.connected;
    this.#cookies = new LRUCache<string, number>({ max: o.max });
    this.#lru = new LRUCache<string, Entry>({
      max: o.max,
      dispose: (entry, id) => {
        if (entry.subscribed) this.#unsubscribe(id);
      },
    });
    client.on('open', () => (this.#up = !this.#closed));
    client.on('close', () => this.#down());
    client.on('session_expired', (e) => {
      if (e.sessionId !== undefined) this.#ended(e.sessionId);
    });
    client.on('session_updated', (e) => {
      if (e.sessionId !== undefined) this.#updated(e.sessionId, e.data);
    });
    client.on('session_extended', (e) => {
      if (e.sessionId !== undefined) this.#extended(e.sessionId, e.expiresIn);
    });
  }

  /** Sessions in the cache. */
  get size(): number {
    return this.#lru.size;
  }

  /** True while the gateway link is up. */
  get up(): boolean {
    return this.#up;
  }

  /**
   * The session `id` names: from the cache (synchronously) or after asking the gateway
   * (a promise; concurrent calls for one id share it). null: no live session.
   * Throws (or rejects with) GatewaySessionError UNAVAILABLE while the link is down.
   */
  lookup(id: string): GatewaySession | null | Promise<GatewaySession | null> {
    if (!this.#up) throw unavailable();
    const entry = this.#lru.get(id);
    if (entry !== undefined) {
      const now = this.#o.now();
      if (now < entry.expiresAt) {
        this.stats.hits++;
        // validate_session is activity for the gateway's idle timeout; a hit is not. Checking
        // again after a fraction of the window keeps an active session from idling out.
        if (now - entry.checkedAt >= entry.window * this.#o.revalidateFraction) this.#refresh(id, entry);
        return this.#view(entry, now);
      }
      this.#lru.delete(id); // past its end: never served, asked again
    }
    this.stats.misses++;
    const flight = this.#flights.get(id);
    if (flight !== undefined) return flight.promise;
    const f: Flight = { promise: Promise.resolve(null), version: 0, ended: false };
    f.promise = this.#check(id, f).finally(() => this.#flights.delete(id));
    this.#flights.set(id, f);
    return f.promise;
  }

  /**
   * The Max-Age (seconds) to send the session's cookie with again, when the session's end may
   * have moved past what the last cookie sent from here covers (an idle timeout moves it at
   * every validation; a cookie set by another instance is sent once from here; one set here,
   * see cookieSet, is sent again only once the end may pass it); else undefined.
   */
  cookieDue(id: string): number | undefined {
    const e = this.#lru.peek(id);
    if (e === undefined) return undefined;
    // The latest the session may end: what its last answer says, or, once a background
    // validation was sent (this request's, say), its window counted from then plus the time its
    // answer may take (the validation moves an idle end by about a window). The cookie is given
    // that life now, not at the next request, which may come after the old end.
    const end = Math.max(e.latestEnd, e.refreshSentAt > 0 ? e.refreshSentAt + e.window + this.#o.timeoutMs : 0);
    if (end <= e.cookieUntil) return undefined;
    const maxAge = this.#cookieMaxAge(end);
    e.cookieUntil = this.#o.now() + maxAge * 1000;
    return maxAge;
  }

  /**
   * The session's cookie is being set (login, regenerate) for a session that has `expiresIn`
   * seconds left: the Max-Age to give it. cookieDue sends it again only once the session's end
   * may pass it. Kept for a session not cached yet too: the next request caches it.
   */
  cookieSet(id: string, expiresIn: number): number {
    const now = this.#o.now();
    const maxAge = this.#cookieMaxAge(now + expiresIn * 1000);
    const until = now + maxAge * 1000;
    const e = this.#lru.peek(id);
    if (e !== undefined) e.cookieUntil = Math.max(e.cookieUntil, until);
    else this.#cookies.set(id, until);
    return maxAge;
  }

  /**
   * A cookie's Max-Age for a session that ends by `end` (local ms) at the latest: rounded up,
   * never down, and one second more. The gateway rounds expires_in up to whole seconds, so a
   * later answer about an end that did not move may read up to a second later; the spare
   * second keeps that from counting as a move. Outliving the session does no harm: the gateway
   * refuses the cookie then.
   */
  #cookieMaxAge(end: number): number {
    return Math.max(0, Math.ceil((end - this.#o.now()) / 1000)) + 1;
  }

  /** Forgets a session at once (this node ended or replaced it; the push confirms later). */
  forget(id: string): void {
    this.#lru.delete(id);
    this.#cookies.delete(id);
  }

  /** Forgets every cached session of `userId` but `exceptId` at once (this node revoked them; the pushes confirm later). */
  forgetUser(userId: string, exceptId?: string): void {
    for (const [id, e] of [...this.#lru.entries()]) if (e.userId === userId && id !== exceptId) this.#lru.delete(id);
  }

  /** The connection is closing for good: nothing is answered from now on, even if the client opens again. */
  close(): void {
    this.#closed = true;
    this.#down();
  }

  /** Drops everything without telling the gateway (its connection is gone). */
  #clear(): void {
    for (const e of this.#lru.values()) e.subscribed = false;
    this.#lru.clear();
  }

  #view(e: Entry, now: number): GatewaySession {
    const expiresIn = Math.max(0, Math.ceil((e.expiresAt - now) / 1000));
    return e.data === undefined ? { user_id: e.userId, expires_in: expiresIn } : { user_id: e.userId, data: e.data, expires_in: expiresIn };
  }

  /** Subscribes, then validates (one round trip: the gateway serves one session's requests in order), then caches. */
  async #check(id: string, f: Flight): Promise<GatewaySession | null> {
    const epoch = this.#epoch;
    // One time limit for the whole check (the wait for room, then each round trip), so a request
    // waits at most timeoutMs. Real elapsed time, as the client's timers count it: `now` is the
    // sessions' clock, which tests pin.
    const deadline = performance.now() + this.#o.timeoutMs;
    const left = (): number => {
      const ms = Math.ceil(deadline - performance.now());
      if (ms <= 0) throw unavailable();
      return ms;
    };
    let cached = false;
    let subscription: Promise<boolean> | undefined;
    let counted = false;
    try {
      // With no room left, a new subscription evicts a cached session: ask first whether this
      // one is live, so that cookies naming no session (a flood of made-up ids) evict nothing.
      if (this.#lru.size + this.#subscribing + this.#unsubscribing.size >= this.#o.max) {
        this.stats.validations++;
        const pre = await this.#client.request('validate_session', { session_id: id }, { timeoutMs: left() });
        if (epoch !== this.#epoch) throw unavailable();
        if (pre.type !== 'session_valid' || f.ended) return null;
      }
      this.#subscribing++;
      counted = true;
      await this.#makeRoom(left());
      if (!this.#up || epoch !== this.#epoch) throw unavailable();
      subscription = this.#client.subscribeSession(id, { timeoutMs: left() }).then(
        (r) => r.type === 'subscribed',
        (err: unknown) => {
          // Past the gateway's GATEWAY_MAX_SUBSCRIPTIONS: the answer is served, not cached.
          if (err instanceof GatewayRequestError && err.code === ErrorCodes.RATE_LIMITED) return false;
          // Unanswered in time, it may still be served: the unsubscribe, sent after it on the same session, ends it then.
          if (err instanceof GatewayTimeoutError && epoch === this.#epoch) this.#unsubscribe(id);
          throw err;
        },
      );
      for (let attempt = 1; ; attempt++) {
        const version = f.version;
        const sentAt = this.#o.now();
        this.stats.validations++;
        const [subscribed, v] = await Promise.all([subscription, this.#client.request('validate_session', { session_id: id }, { timeoutMs: left() })]);
        const answeredAt = this.#o.now();
        if (epoch !== this.#epoch) throw unavailable();
        if (v.type !== 'session_valid' || f.ended) return null;
        const entry: Entry = {
          userId: v.user_id,
          data: v.data === undefined ? undefined : freeze(v.data),
          // expires_in is rounded up: the end is at least expires_in - 1 s after the gateway read it, which was after sentAt.
          expiresAt: sentAt + (v.expires_in - 1) * 1000,
          checkedAt: sentAt,
          window: v.expires_in * 1000,
          latestEnd: answeredAt + v.expires_in * 1000,
          version: 0,
          subscribed: true,
          cookieUntil: this.#cookies.get(id) ?? 0,
          refreshSentAt: 0,
        };
        const view = this.#view(entry, sentAt);
        if (f.version !== version && attempt < MAX_CHECKS) continue; // changed while asked: ask again
        if (!subscribed || f.version !== version) {
          this.stats.uncached++;
          return view;
        }
        this.#lru.set(id, entry);
        this.#cookies.delete(id);
        cached = true;
        return view;
      }
    } catch (err) {
      if (err instanceof GatewaySessionError) throw err;
      if (err instanceof GatewayTimeoutError) this.#unanswered();
      throw unavailable(err); // a timeout, or the connection closed meanwhile
    } finally {
      if (counted) this.#subscribing--;
      // A subscription that did not make it into the cache is ended (once it is known to exist).
      void subscription?.then(
        (subscribed) => {
          if (subscribed && !cached && epoch === this.#epoch && this.#client.subscriptions.has(id)) this.#unsubscribe(id);
        },
        () => undefined,
      );
    }
  }

  /**
   * Before a new subscription (already counted in #subscribing): evicts the least recently
   * used entries, and while the subscriptions the gateway may hold (cached, being made, being
   * ended) are more than `max`, waits for unsubscribe_session replies, so the gateway never
   * holds more than `max` (unless more than `max` checks are under way at once). With room to
   * spare it does not wait. Waits at most `ms`: past it, UNAVAILABLE.
   */
  async #makeRoom(ms: number): Promise<void> {
    while (this.#lru.size > 0 && this.#lru.size + this.#subscribing > this.#o.max) this.#lru.pop();
    const full = () => this.#unsubscribing.size > 0 && this.#lru.size + this.#subscribing + this.#unsubscribing.size > this.#o.max;
    if (!full()) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), ms)));
    try {
      while (full()) if ((await Promise.race([...this.#unsubscribing, late])) === 'late') throw unavailable();
    } finally {
      clearTimeout(timer);
    }
  }

  #unsubscribe(id: string): void {
    if (!this.#up) return; // the gateway ended the connection's subscriptions with it
    const p: Promise<unknown> = this.#client.unsubscribeSession(id).catch(() => undefined);
    this.#unsubscribing.add(p);
    void p.finally(() => this.#unsubscribing.delete(p));
  }

  /** A background validate_session of a cached session: activity for the idle timeout, and a fresh end. */
  #refresh(id: string, entry: Entry): void {
    if (this.#refreshing.has(id)) return;
    this.#refreshing.add(id);
    const epoch = this.#epoch;
    const version = entry.version;
    const sentAt = this.#o.now();
    entry.refreshSentAt = sentAt;
    this.stats.validations++;
    this.#client
      .validateSession(id)
      .then(
        (v) => {
          this.stats.refreshed++;
          if (epoch !== this.#epoch || this.#lru.peek(id) !== entry) return;
          if (v.type !== 'session_valid') {
            this.#lru.delete(id);
            return;
          }
          entry.checkedAt = sentAt;
          entry.window = v.expires_in * 1000;
          entry.expiresAt = Math.max(entry.expiresAt, sentAt + (v.expires_in - 1) * 1000);
          entry.latestEnd = Math.max(entry.latestEnd, this.#o.now() + v.expires_in * 1000);
          if (entry.version === version) entry.data = v.data === undefined ? undefined : freeze(v.data);
        },
        (err: unknown) => {
          // The link failed: the close handler clears the cache. A timeout alone leaves the entry
          // to its end, and pings (see #unanswered).
          if (err instanceof GatewayTimeoutError && epoch === this.#epoch) this.#unanswered();
        },
      )
      .finally(() => this.#refreshing.delete(id));
  }

  /**
   * A request went unanswered: the link may have gone silent (the gateway frozen, packets
   * dropped), and while it is taken for open, cached sessions are served though no push can
   * arrive. Ping now rather than when the heartbeat's interval comes round: when nothing
   * answers within the heartbeat's timeout the link is closed, and the cache with it. At most
   * one such ping per two of those timeouts: a ping forced while one is pending puts off the
   * verdict on it, so each gets its verdict before the next.
   */
  #unanswered(): void {
    const at = performance.now();
    if (at - this.#pingedAt < 2 * this.#o.pingTimeoutMs) return;
    this.#pingedAt = at;
    this.#client.wake();
  }

  #ended(id: string): void {
    const f = this.#flights.get(id);
    const e = this.#lru.peek(id);
    if (f === undefined && e === undefined) return;
    this.stats.expiredPushes++;
    if (f !== undefined) {
      f.ended = true;
      f.version++;
    }
    if (e !== undefined) {
      e.subscribed = false; // the gateway ended the subscription with the session
      this.#lru.delete(id);
    }
  }

  #updated(id: string, data: Record<string, unknown> | undefined): void {
    const f = this.#flights.get(id);
    const e = this.#lru.peek(id);
    if (f === undefined && e === undefined) return;
    this.stats.updatedPushes++;
    if (f !== undefined) f.version++;
    if (e !== undefined) {
      e.version++;
      e.data = data === undefined ? undefined : freeze(data);
    }
  }

  #extended(id: string, expiresIn: number): void {
    const f = this.#flights.get(id);
    const e = this.#lru.peek(id);
    if (f === undefined && e === undefined) return;
    this.stats.extendedPushes++;
    if (f !== undefined) f.version++;
    if (e !== undefined) {
      e.version++;
      // One second for the rounding up of expires_in, one for the push's way here.
      e.expiresAt = Math.max(e.expiresAt, this.#o.now() + (expiresIn - 2) * 1000);
      e.latestEnd = Math.max(e.latestEnd, this.#o.now() + expiresIn * 1000);
    }
  }

  #down(): void {
    if (!this.#up) return;
    this.#up = false;
    this.#epoch++;
    this.stats.disconnects++;
    this.#clear();
  }
}
