import type { Clock } from '../clock.js';
import { GatewayError } from '../errors.js';
import type { MaybePromise } from '../maybe-promise.js';
import { hashSecret, randomId } from '../crypto.js';
import { audit, logFor, type Logger, type Requester } from '../log.js';
import type { EndReason } from '../protocol/messages.js';
import type { Store } from '../store/types.js';
import { endOf, idpSidIndexKey, idpSubIndexKey, secondsLeft, sessionKey, unixSeconds, userIndexKey, type SessionEnd, type SessionRecord } from './records.js';

export interface SessionOptions {
  store: Store;
  clock: Clock;
  log: Logger;
  logRef: (value: string) => string;
  /** Default lifetime, seconds. */
  ttl: number;
  /** Idle timeout, seconds; 0: off. */
  idleTimeout: number;
  /** Longest a session may live from its creation through extend_session, seconds; 0: no cap. */
  maxLifetime?: number;
  /**
   * Called once for every session this node ends, with the store hash. What it returns (the
   * end announced to the other nodes, the session's tokens revoked; never rejected) is waited
   * for before the call that ended the session answers.
   */
  onEnded: (hash: string, reason: EndReason) => Promise<void> | void;
  /** Called when this node extended or updated a live session. */
  onChanged?: (hash: string, change: SessionChange) => void;
  /**
   * Called, and waited for, before an extend writes the session's new absolute end (ms): moves
   * the binding marker of the session's tokens (exchange_session) there first (see `#rewrite`).
   */
  onExtending?: (hash: string, absoluteEnd: number) => Promise<void>;
}

/** What changed in a live session: its end (extend_session) or its data (update_session). */
export type SessionChange = { kind: 'extended'; end: number; reason: SessionEnd['reason'] } | { kind: 'updated'; data: Record<string, unknown> };

/** The identity provider's names of a login, kept for back-channel logout. */
export interface IdpLogin {
  sid?: string;
  sub?: string;
}

export interface SessionCreated {
  sessionId: string;
  hash: string;
  expiresAt: number;
  expiresIn: number;
}

export type Validation =
  | {
      valid: true;
      hash: string;
      record: SessionRecord;
      /** When the session ends (ms), the idle timeout included, and why: the one place it is computed. */
      end: number;
      endReason: SessionEnd['reason'];
      expiresIn: number;
    }
  | { valid: false; error: string };

export interface SessionSummary {
  handle: string;
  created_at: number;
  expires_at: number;
  data?: Record<string, unknown>;
}

/** The one answer for a session that is not (or no longer) there, whatever the cause. */
export const INVALID = { valid: false, error: 'Session not found or expired' } as const;
/** How many sessions a revoke (of a user's, of an identity provider's login) ends together. */
const END_GROUP = 128;
/** How many times a revoke reads its index again after losing takes to requests that raced it. */
const END_PASSES = 8;
/** How many compare-and-swaps a change makes at most while other writes keep winning. */
const REWRITE_ATTEMPTS = 64;

const sameJson = (a: unknown, b: unknown): boolean => a === b || JSON.stringify(a) === JSON.stringify(b);

/**
 * Server-side sessions. Ids are 256 random bits; the store sees only their SHA-256.
 * Every path that ends a session goes through `#end`, which takes the record
 * atomically, so of racing ends (destroy, regenerate, expiry, on any node) exactly one wins
 * and subscribers hear about it once.
 */
export class SessionService {
  readonly #o: SessionOptions;
  readonly #idleMs: number;

  constructor(options: SessionOptions) {
    this.#o = options;
    this.#idleMs = options.idleTimeout * 1000;
  }

  /** Store hash of a session id. */
  hashOf(sessionId: string): string {
    return hashSecret(sessionId);
  }

  /** create_session; `by` is who asked (its log lines carry its connection id). */
  async create(userId: string, data: Record<string, unknown> | undefined, ttlSeconds?: number, idp?: IdpLogin, by?: Requester): Promise<SessionCreated> {
    return this.#put(randomId(32), userId, data, ttlSeconds ?? this.#o.ttl, 'session created', idp, by);
  }

  /** Seeds a session under a given id: fixtures only. */
  async seed(sessionId: string, userId: string, data: Record<string, unknown> | undefined, ttlSeconds: number): Promise<SessionCreated> {
    return this.#put(sessionId, userId, data, ttlSeconds, 'session seeded from fixtures');
  }

  async #put(
    sessionId: string,
    userId: string,
    data: Record<string, unknown> | undefined,
    ttlSeconds: number,
    event: string,
    idp?: IdpLogin,
    by?: Requester,
  ): Promise<SessionCreated> {
    const now = this.#o.clock.now();
    const record: SessionRecord = { u: userId, c: now, e: now + ttlSeconds * 1000, t: ttlSeconds };
    if (this.#idleMs > 0) record.s = now;
    if (data !== undefined) record.d = data;
    // Kept as hashes, as session ids are: the store holds no identity provider's ids either.
    if (idp?.sid !== undefined) record.is = hashSecret(idp.sid);
    if (idp?.sub !== undefined) record.iu = hashSecret(idp.sub);
    const hash = this.hashOf(sessionId);
    await this.#write(hash, record, now);
    const end = endOf(record, this.#idleMs).at;
    // The log references are HMACs: computed only when the line is written.
    if (this.#o.log.isLevelEnabled('info'))
      logFor(by, this.#o.log).info({ event, session: this.#o.logRef(hash), user: this.#o.logRef(userId), ttl: ttlSeconds }, event);
    return { sessionId, hash, expiresAt: unixSeconds(end), expiresIn: secondsLeft(end, now) };
  }

  /**
   * Stores until the absolute end, even with an idle timeout: activity then rewrites the
   * record with a compare-and-swap (`#rewrite`) that the store refuses once the record's end
   * has passed, so a validate racing an end can never bring the session back. The idle end
   * is enforced on every read (`endOf`).
   */
  async #write(hash: string, record: SessionRecord, now: number): Promise<void> {
    await this.#o.store.set(sessionKey(hash), record, record.e - now);
    await this.#index(hash, record);
  }

  /** Index members live as long as the session (an extend moves them along). */
  async #index(hash: string, record: SessionRecord): Promise<void> {
    await this.#o.store.indexAdd(userIndexKey(record.u), hash, record.e);
    if (record.is !== undefined) await this.#o.store.indexAdd(idpSidIndexKey(record.is), hash, record.e);
    if (record.iu !== undefined) await this.#o.store.indexAdd(idpSubIndexKey(record.iu), hash, record.e);
  }

  /** Reads without touching: for subscriptions and checks. */
  async peek(hash: string): Promise<Validation> {
    return this.#peekNow(hash);
  }

  /** `peek`, answered in place when the store holds the record in this process. */
  #peekNow(hash: string): MaybePromise<Validation> {
    const now = this.#o.clock.now();
    const read = this.#o.store.read<SessionRecord>(sessionKey(hash), now);
    // In place: read and judged at the same moment, by one clock reading.
    if (!(read instanceof Promise)) return this.#judge(hash, read, now);
    return this.#settle(hash, read).then((r) => this.#judge(hash, r.record, r.now));
  }

  /**
   * A record read from a remote store, as of a moment when what it says is certain. The read
   * ran at some time between the call and its answer; a record found past its end by the
   * clock at the answer but not at the call may have been read just before its end, and a
   * write of activity (or an extend) may have landed after the read and before the end: it
   * is read again, from a call made after the end, when no write can land any more (the
   * store refuses writes to a record past its end, see `#rewrite`). So a session judged
   * ended is never found live again by a later read. `now` is the time the record is to be
   * judged at (a later clock reading could again fall after an end the read preceded).
   */
  async #settle(hash: string, read: Promise<SessionRecord | undefined>): Promise<{ record: SessionRecord | undefined; now: number }> {
    let asked = this.#o.clock.now();
    let record = await read;
    for (;;) {
      const now = this.#o.clock.now();
      if (record === undefined) return { record, now };
      const end = endOf(record, this.#idleMs).at;
      if (end > now) return { record, now };
      if (end <= asked) return { record, now: asked };
      asked = now;
      record = await this.#o.store.get<SessionRecord>(sessionKey(hash));
    }
  }

  #judge(hash: string, record: SessionRecord | undefined, now = this.#o.clock.now()): Validation {
    if (record === undefined) return INVALID;
    const end = endOf(record, this.#idleMs);
    if (end.at <= now) return INVALID;
    return { valid: true, hash, record, end: end.at, endReason: end.reason, expiresIn: secondsLeft(end.at, now) };
  }

  /**
   * Validates a presented id; with an idle timeout, this is the activity that keeps it alive.
   * Without one a validate is a peek, answered in place on the memory store (no Promise).
   */
  validate(sessionId: string): MaybePromise<Validation> {
    const hash = this.hashOf(sessionId);
    return this.#idleMs === 0 ? this.#peekNow(hash) : this.#touch(hash);
  }

  async #touch(hash: string): Promise<Validation> {
    const seen = await this.peek(hash);
    if (!seen.valid) return seen;
    const now = this.#o.clock.now();
    const written = await this.#rewrite(hash, seen.record, (r) => ({ ...r, s: Math.max(r.s ?? now, now) }));
    if (written === undefined) return INVALID;
    const end = endOf(written, this.#idleMs);
    return { valid: true, hash, record: written, end: end.at, endReason: end.reason, expiresIn: secondsLeft(end.at, now) };
  }

  /**
   * Writes `change(seen)` over the stored record with the store's compare-and-swap: written
   * only if the record is still the one the change was made from, and only while that record's
   * end is ahead of the store's clock at the time of the write. When another write came
   * between (an extend or update elsewhere), the change is made again on what it left; an end
   * racing it (destroy, revoke, regenerate: they take the record) wins, and a record whose end
   * has passed is never written (a node may already have answered session_invalid for it).
   * Returns what was written, or undefined when the session is gone or over. `until` moves
   * the store's expiry (extend); without it the expiry is kept.
   *
   * A moved end is in the session's indexes before it is in the record: should the write fail
   * (error 11) or lose to an end, the indexes hold a later end than the record's (a member
   * past its record is skipped by list and revoke, and pruned at its expiry), never an earlier
   * one, which would leave a live session that `revoke_user_sessions` no longer finds. Racing
   * extends each index their own end; the store keeps the later (Store.indexAdd).
   *
   * It is in the binding marker of the session's tokens before the record too (`onExtending`):
   * moved only after the record, a marker whose write failed (error 11, after the extend was
   * answered) stayed at the old end, and the tokens died there while the session lived on
   * (their refresh then revoked the family). A marker ahead of its record is harmless: a bound
   * token is checked against the record as well.
   */
  async #rewrite(
    hash: string,
    seen: SessionRecord,
    change: (r: SessionRecord) => SessionRecord,
    until?: (r: SessionRecord) => number,
  ): Promise<SessionRecord | undefined> {
    const key = sessionKey(hash);
    let base = seen;
    for (let attempt = 1; ; attempt++) {
      // Not judged here by this node's clock: `base` may have been read before its end, and
      // another write may have moved the end since; the store refuses the write if it had not.
      const end = endOf(base, this.#idleMs).at;
      const next = change(base);
      if (until !== undefined) await Promise.all([this.#index(hash, next), this.#o.onExtending?.(hash, until(next))]);
      const r = await this.#o.store.swapIf<SessionRecord>(key, base, next, until === undefined ? { before: end } : { before: end, expiresAt: until(next) });
      if (r.swapped) return next;
      // Gone, or still the same record: its end came before the write could be made.
      if (r.old === undefined || sameJson(r.old, base)) return undefined;
      if (attempt >= REWRITE_ATTEMPTS) throw GatewayError.unavailable(new Error(`session write lost ${attempt} compare-and-swaps in a row`));
      base = r.old;
    }
  }

  /**
   * extend_session: moves the end to now + `ttlSeconds` (default: the session's own ttl),
   * never earlier than its current end and never past creation + the maximum lifetime. Counts
   * as activity for the idle timeout.
   */
  async extend(hash: string, ttlSeconds?: number, by?: Requester, minMoveMs = 0): Promise<Validation> {
    const seen = await this.peek(hash);
    if (!seen.valid) return seen;
    const now = this.#o.clock.now();
    const capMs = (this.#o.maxLifetime ?? 0) * 1000;
    const extended = (r: SessionRecord): SessionRecord => {
      const wanted = now + (ttlSeconds ?? r.t ?? Math.round((r.e - r.c) / 1000)) * 1000;
      const capped = capMs > 0 ? Math.min(wanted, r.c + capMs) : wanted;
      const next: SessionRecord = { ...r, e: Math.max(r.e, capped), v: (r.v ?? 0) + 1 };
      if (this.#idleMs > 0) next.s = now;
      return next;
    };
    // An extend that would move the end by less than `minMoveMs` changes nothing: a page sending
    // it in a loop costs a read each, not a write, a push to every follower and a log line.
    if (minMoveMs > 0 && endOf(extended(seen.record), this.#idleMs).at - seen.end < minMoveMs) return seen;
    // Indexed with each end it writes, before the write (see #rewrite).
    const written = await this.#rewrite(hash, seen.record, extended, (r) => r.e);
    if (written === undefined) return INVALID;
    const end = endOf(written, this.#idleMs);
    if (this.#o.log.isLevelEnabled('info'))
      logFor(by, this.#o.log).info({ event: 'session extended', session: this.#o.logRef(hash), expires_in: secondsLeft(end.at, now) }, 'session extended');
    this.#o.onChanged?.(hash, { kind: 'extended', end: end.at, reason: end.reason });
    return { valid: true, hash, record: written, end: end.at, endReason: end.reason, expiresIn: secondsLeft(end.at, now) };
  }

  /** update_session: replaces the session's data; the end stays where it is. */
  async update(hash: string, data: Record<string, unknown>, by?: Requester): Promise<Validation> {
    const seen = await this.peek(hash);
    if (!seen.valid) return seen;
    const written = await this.#rewrite(hash, seen.record, (r) => ({ ...r, d: data, v: (r.v ?? 0) + 1 }));
    if (written === undefined) return INVALID;
    const now = this.#o.clock.now();
    const end = endOf(written, this.#idleMs);
    if (end.at <= now) return INVALID;
    if (this.#o.log.isLevelEnabled('info')) logFor(by, this.#o.log).info({ event: 'session updated', session: this.#o.logRef(hash) }, 'session updated');
    this.#o.onChanged?.(hash, { kind: 'updated', data });
    return { valid: true, hash, record: written, end: end.at, endReason: end.reason, expiresIn: secondsLeft(end.at, now) };
  }

  /**
   * Ends every session created with the identity provider's session id `sid` (or, without
   * one, with its subject `sub`), reason `revoked`: back-channel logout. Returns how many ended.
   */
  async endByIdp(idp: IdpLogin): Promise<number> {
    const bySid = idp.sid !== undefined;
    const name = bySid ? idp.sid : idp.sub;
    if (name === undefined) return 0;
    const field = bySid ? 'is' : 'iu';
    const value = hashSecret(name);
    const key = bySid ? idpSidIndexKey(value) : idpSubIndexKey(value);
    // Every member read leaves the index, ended or stale.
    const count = await this.#endAll(
      () => this.#o.store.indexMembers(key, this.#o.clock.now()),
      (r) => r[field] === value,
      (hash) => this.#o.store.indexRemove(key, hash),
    );
    this.#o.log.info({ event: 'identity provider logout', by: bySid ? 'sid' : 'sub', count }, 'identity provider logout');
    return count;
  }

  /**
   * Moves data and expiry to a fresh id and ends the old one at once (session fixation). The
   * new session is stored, and in the user's indexes, before the old one is taken: a
   * `revoke_user_sessions` running meanwhile finds one of the two live at every moment (and
   * looks again when it loses a take), so no regeneration outlives a revoke it raced.
   */
  async regenerate(oldSessionId: string, by?: Requester): Promise<SessionCreated | { error: string }> {
    const oldHash = this.hashOf(oldSessionId);
    const oldKey = sessionKey(oldHash);
    const settled = await this.#settle(oldHash, this.#o.store.get<SessionRecord>(oldKey));
    const seen = settled.record;
    if (seen === undefined) return { error: INVALID.error };
    if (endOf(seen, this.#idleMs).at <= settled.now) {
      // Past its end (an idle session stays stored until its absolute end): ended, not moved.
      await (
        await this.#finish(oldHash, endOf(seen, this.#idleMs).reason, by)
      )?.announced;
      return { error: INVALID.error };
    }
    const sessionId = randomId(32);
    const hash = this.hashOf(sessionId);
    const now = this.#o.clock.now();
    const moved = this.#moved(seen, now);
    // Nothing is taken yet: a failure here leaves the old session as it was.
    await this.#write(hash, moved, now);
    let record: SessionRecord | undefined;
    try {
      record = await this.#o.store.take<SessionRecord>(oldKey, (taken) => this.#lateTake(oldHash, 'destroyed', taken));
    } catch (err) {
      // Whether the old one was taken is not known: neither id is left valid where the store
      // still answers, and the old one's followers hear of its end; the caller gets error 11.
      await this.#discard(hash, moved).catch(() => undefined);
      const ended = await this.#finish(oldHash, 'destroyed', by).catch(() => undefined);
      await ended?.announced;
      throw err;
    }
    if (record === undefined || endOf(record, this.#idleMs).at <= this.#o.clock.now()) {
      // Ended meanwhile (by a request that announced it), or its end came: the new one goes too.
      await this.#discard(hash, moved);
      if (record !== undefined) {
        const announced = this.#ended(oldHash, this.#told(record, 'destroyed'), record.u, by);
        await this.#unindex(oldHash, record);
        await announced;
      }
      return { error: INVALID.error };
    }
    let current = moved;
    if (record.v !== seen.v || record.e !== seen.e) {
      // Extended or updated between the read and the take: the new session carries what was taken.
      // Written only over what this call wrote: nothing if the new one was ended meanwhile (a
      // revoke that found it).
      current = this.#moved(record, now);
      try {
        if ((await this.#o.store.swapIf(sessionKey(hash), moved, current, { expiresAt: current.e })).swapped) await this.#index(hash, current);
      } catch (err) {
        // The old record is taken, and the new id never answered: as when the take's own answer
        // is lost, the new one goes where the store still answers and the old one's end is
        // announced now (its followers told, its tokens revoked), not found at its ttl.
        await this.#discard(hash, current).catch(() => undefined);
        const announced = this.#ended(oldHash, this.#told(record, 'destroyed'), record.u, by);
        await this.#unindex(oldHash, record).catch(() => undefined);
        await announced;
        throw err;
      }
    }
    const announced = this.#ended(oldHash, 'regenerated', record.u, by);
    // The regeneration has happened (the old id taken, its followers told to move to the new
    // one): the new id is answered even when the old one's index members cannot be removed now.
    // Error 11 here would leave the caller without the only live id (a stale member is skipped
    // by list and revoke, and pruned at its expiry).
    await this.#unindex(oldHash, record).catch(() => undefined);
    await announced;
    logFor(by, this.#o.log).info({ event: 'session regenerated', session: this.#o.logRef(hash), old: this.#o.logRef(oldHash) }, 'session regenerated');
    const end = endOf(current, this.#idleMs).at;
    return { sessionId, hash, expiresAt: unixSeconds(end), expiresIn: secondsLeft(end, now) };
  }

  /** The record a regeneration writes under the new id: the same, active now. */
  #moved(record: SessionRecord, now: number): SessionRecord {
    const moved: SessionRecord = { ...record };
    if (this.#idleMs > 0) moved.s = now;
    return moved;
  }

  /** Removes a session no request has seen (a regeneration's new id that did not happen). */
  async #discard(hash: string, record: SessionRecord): Promise<void> {
    await this.#o.store.take(sessionKey(hash));
    await this.#unindex(hash, record);
  }

  /**
   * Takes an ended session out of every index that names it: its user's and, for a login of an
   * identity provider, those by the provider's session id and subject (back-channel logout).
   * Left there, a member would stay until the session's absolute end. One round trip: the
   * removals go out together.
   */
  async #unindex(hash: string, record: SessionRecord): Promise<void> {
    const store = this.#o.store;
    const removals = [store.indexRemove(userIndexKey(record.u), hash)];
    if (record.is !== undefined) removals.push(store.indexRemove(idpSidIndexKey(record.is), hash));
    if (record.iu !== undefined) removals.push(store.indexRemove(idpSubIndexKey(record.iu), hash));
    await Promise.all(removals);
  }

  /** Ends a session by id; true when it was live. Idempotent. */
  async destroy(sessionId: string, reason: EndReason = 'destroyed', by?: Requester): Promise<boolean> {
    return this.end(this.hashOf(sessionId), reason, by);
  }

  /** Ends a session by store hash; true when this call ended a live session. Resolves once the end is announced. */
  async end(hash: string, reason: EndReason, by?: Requester): Promise<boolean> {
    const finished = await this.#finish(hash, reason, by);
    if (finished === undefined) return false;
    await finished.announced;
    return finished.told === reason;
  }

  /**
   * Takes the record and tells followers; returns the reason told and the end's announcement
   * (see `onEnded`), or undefined when there was nothing to take. A record already past its end
   * (an idle session stays stored until its absolute end) is reported with its own reason, not
   * as a live session ended now.
   */
  async #finish(hash: string, reason: EndReason, by?: Requester): Promise<{ told: EndReason; announced: Promise<void> } | undefined> {
    const record = await this.#o.store.take<SessionRecord>(sessionKey(hash), (taken) => this.#lateTake(hash, reason, taken));
    if (record === undefined) return undefined;
    const told = this.#told(record, reason);
    // The record is gone: followers are told now, before the indexes are tidied. The end has
    // happened whether or not the tidying does: a removal the store fails leaves a stale member,
    // skipped by list and revoke and pruned at its own expiry, and the end is still answered as
    // one (error 11 would tell the caller that a session already ended and pushed may be live).
    const announced = this.#ended(hash, told, record.u, by);
    await this.#unindex(hash, record).catch(() => undefined);
    return { told, announced };
  }

  /** The reason an end reports: a record already past its end keeps its own. */
  #told(record: SessionRecord, reason: EndReason): EndReason {
    const natural = endOf(record, this.#idleMs);
    return natural.at <= this.#o.clock.now() ? natural.reason : reason;
  }

  /**
   * A take that timed out (its request answered error 11) was carried out by the store after
   * all: the session is over, and its followers on every node are told now rather than at its
   * end, when the next look at the store would find it gone.
   */
  #lateTake(hash: string, reason: EndReason, record: SessionRecord | undefined): void {
    if (record === undefined) return;
    void this.#ended(hash, this.#told(record, reason), record.u);
    this.#unindex(hash, record).catch(() => undefined);
  }

  /**
   * Logs the end and tells `onEnded`. The promise (never rejected) is what the answer waits
   * for: a node that fails right after answering has already told the others.
   */
  #ended(hash: string, reason: EndReason, userId: string, by?: Requester): Promise<void> {
    if (this.#o.log.isLevelEnabled('info'))
      logFor(by, this.#o.log).info({ event: 'session ended', reason, session: this.#o.logRef(hash), user: this.#o.logRef(userId) }, 'session ended');
    return this.#o.onEnded(hash, reason) ?? Promise.resolve();
  }

  /**
   * Checks a followed session whose end has come: ends it if due and returns the reason,
   * returns `gone` when the store no longer has it (the store's own expiry, or an end whose
   * event was missed), or returns the new end when activity moved it.
   */
  async checkExpiry(hash: string): Promise<{ ended: EndReason | 'gone' | undefined; next?: number; reason?: 'ttl' | 'idle' }> {
    // Settled: a record past its end as read from a call made after that end, which no write
    // can move any more (#rewrite's compare-and-swap is refused past the end): taken as is.
    const { record, now } = await this.#settle(hash, this.#o.store.get<SessionRecord>(sessionKey(hash)));
    if (record === undefined) return { ended: 'gone' };
    const { at, reason } = endOf(record, this.#idleMs);
    if (at > now) return { ended: undefined, next: at, reason };
    // No request waits on an end by time: its announcement goes on on its own.
    return { ended: (await this.#finish(hash, reason))?.told ?? 'gone' };
  }

  /** The user's live sessions, by handle (the store hash: it cannot be presented as an id). */
  async list(userId: string): Promise<SessionSummary[]> {
    const now = this.#o.clock.now();
    const hashes = await this.#o.store.indexMembers(userIndexKey(userId), now);
    const out: SessionSummary[] = [];
    for (const hash of hashes) {
      const seen = await this.peek(hash);
      if (!seen.valid || seen.record.u !== userId) continue;
      const s: SessionSummary = { handle: hash, created_at: unixSeconds(seen.record.c), expires_at: unixSeconds(seen.end) };
      if (seen.record.d !== undefined) s.data = seen.record.d;
      out.push(s);
    }
    return out.sort((a, b) => a.created_at - b.created_at);
  }

  /** Ends one of the user's sessions by handle; false when the handle is not the user's. */
  async destroyHandle(userId: string, handle: string, by?: Requester): Promise<boolean> {
    const seen = await this.peek(handle);
    if (!seen.valid || seen.record.u !== userId) return false;
    return this.end(handle, 'destroyed', by);
  }

  /** Ends every session of the user (but the one named), pushing reason `revoked`. */
  async revokeUser(userId: string, exceptSessionId?: string, by?: Requester): Promise<number> {
    const keep = exceptSessionId === undefined ? undefined : this.hashOf(exceptSessionId);
    const members = async () => {
      const all = await this.#o.store.indexMembers(userIndexKey(userId), this.#o.clock.now());
      return keep === undefined ? all : all.filter((hash) => hash !== keep);
    };
    // The index is named by the user id as the store spells it: only this user's records are ended.
    const count = await this.#endAll(members, (r) => r.u === userId, undefined, by);
    audit(logFor(by, this.#o.log), 'user sessions revoked', { user: this.#o.logRef(userId), count });
    return count;
  }

  /**
   * Ends, reason `revoked`, those of `hashes` whose record `owned` accepts; returns how many
   * this call ended. A group at a time, each step for the whole group at once (the reads, then
   * the takes, then `after` for every hash read): a remote store sends each step as one batch
   * or one pipelined write, so the last session waits for a few round trips per group, not for
   * the sessions before it. A failure ends the call with it.
   */
  async #endGroups(
    hashes: readonly string[],
    owned: (record: SessionRecord) => boolean,
    after?: (hash: string) => Promise<void>,
    by?: Requester,
  ): Promise<{ count: number; lost: number }> {
    let count = 0;
    let lost = 0;
    const announced: Promise<void>[] = [];
    for (let i = 0; i < hashes.length; i += END_GROUP) {
      const group = hashes.slice(i, i + END_GROUP);
      const records = await Promise.all(group.map((hash) => this.#o.store.get<SessionRecord>(sessionKey(hash))));
      const finished = await Promise.all(
        group.map((hash, k) => (records[k] !== undefined && owned(records[k]) ? this.#finish(hash, 'revoked', by) : undefined)),
      );
      for (let k = 0; k < group.length; k++) {
        const f = finished[k];
        const record = records[k];
        if (f === undefined) {
          // Gone before the read or the take: ended by another request, which may have been a
          // regeneration that moved it to a new id (looked for by a read of the index again).
          if (record === undefined || owned(record)) lost++;
          continue;
        }
        if (f.told === 'revoked') count++;
        announced.push(f.announced);
      }
      if (after !== undefined) await Promise.all(group.map(after));
    }
    // The next group goes on while this one's ends are announced; the answer waits for them all.
    await Promise.all(announced);
    return { count, lost };
  }

  /**
   * `#endGroups` over an index's members; read again while a member was found gone, at the
   * read or at the take (it may have moved to a new id that the index holds by then:
   * regenerate_session adds the new id before it takes the old), at most END_PASSES times.
   */
  async #endAll(
    members: () => Promise<string[]>,
    owned: (record: SessionRecord) => boolean,
    after?: (hash: string) => Promise<void>,
    by?: Requester,
  ): Promise<number> {
    const done = new Set<string>();
    let count = 0;
    for (let pass = 0; pass < END_PASSES; pass++) {
      const hashes = (await members()).filter((hash) => !done.has(hash));
      for (const hash of hashes) done.add(hash);
      const r = await this.#endGroups(hashes, owned, after, by);
      count += r.count;
      if (r.lost === 0) break;
    }
    return count;
  }
}
