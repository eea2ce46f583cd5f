import { hashSecret, randomId } from '../crypto.js';
import { GatewayError } from '../errors.js';
import { audit, logFor, type Requester } from '../log.js';
import type { AccessTokens } from './access-tokens.js';
import type { SessionBinding } from './session-binding.js';
import { tokenKeys as keys } from './store-keys.js';
import type { TokenOptions, TokenPair } from './types.js';
import type { UserMarks } from './user-marks.js';

interface RefreshRecord {
  /** family id */
  f: string;
  /** the claims to put into each access token of the family */
  p?: Record<string, unknown>;
  /** session binding claim, when issued by exchange_session */
  b?: string;
  /** set once the token has been used */
  spent?: 1;
  /** expires at, unix seconds (absent in records of earlier versions) */
  e?: number;
}

/** What introspection may say of a live refresh token (RFC 7662). */
export interface RefreshTokenInfo {
  /** unix seconds */
  exp: number;
  /** the user, when the family's payload names one */
  sub?: string;
}

/** A pair just issued, and what names it in the store. */
interface Issued {
  pair: TokenPair;
  jti: string;
  exp: number;
  refreshHash: string;
}

/** What a revocation of the family must reach, under `rf:<family>`. */
interface FamilyRecord {
  /** created at, ms: a session past its cap revokes its oldest families first */
  c: number;
  /** the unexpired access tokens, `[jti, exp]` (exp in unix seconds), to deny them on revocation */
  a: [string, number][];
  /** the user (`sub`), whose family index lists it */
  u?: string;
}

/** The user a family's tokens are for: the payload's `sub`, when it is a string. */
const userOf = (payload: Record<string, unknown> | undefined): string | undefined => (typeof payload?.sub === 'string' ? payload.sub : undefined);

/** Unexpired access tokens one refresh family may have at once (see #checkRefreshRate). */
export const MAX_LIVE_ACCESS_TOKENS = 1000;

/**
 * Refresh families one session may have (each `exchange_session` starts one). Past it the
 * oldest are revoked, so a page that exchanges again always gets working tokens, and the
 * store holds at most this many families per session whatever a client sends.
 */
export const MAX_FAMILIES_PER_SESSION = 16;

/** Families a bound start() tries before it gives up (each revoked by racing exchanges' caps). */
const MAX_START_ATTEMPTS = 3;

/** The session a start() was binding to ended while it issued: exchange_session answers `Session ended`. */
export class SessionEndedError extends Error {
  constructor() {
    super('Session ended');
    this.name = 'SessionEndedError';
  }
}

/** The cause recorded for a revocation that is not the reuse of one of the family's tokens. */
const REVOKED = '*';
/** The cause of a family revoked because its bound session's time ran out (no token hash is `~`). */
const ENDED = '~';
/** What a refresh token of a family revoked for `causes` (at least one) is told. */
const revokedText = (causes: readonly string[]): string => (causes.every((c) => c === ENDED) ? 'Session ended' : 'Refresh token revoked');

const REFRESH_SHAPE = /^([A-Za-z0-9_-]{22})\.[A-Za-z0-9_-]{43}$/;

/** The family id of a token shaped like a refresh token, or undefined. */
export function refreshFamilyOf(token: string): string | undefined {
  return REFRESH_SHAPE.exec(token)?.[1];
}

/**
 * Opaque single-use refresh tokens in families: a refresh rotates the pair; presenting a
 * spent refresh token revokes the family and denies every access token it issued.
 *
 * Revocation is a set of causes that only grows (a store index), so no later write (a racing
 * reuse on another node, say) can take it back; then the family's records are deleted, and
 * only the causes stay, for as long as a rotation in flight or an access token could need them.
 */
export class RefreshFamilies {
  readonly #o: TokenOptions;
  readonly #access: AccessTokens;
  readonly #binding: SessionBinding;
  readonly #marks: UserMarks;
  /** Bound families started by this node, modulo 1000 (see #startedAt). */
  #starts = 0;

  constructor(o: TokenOptions, access: AccessTokens, binding: SessionBinding, marks: UserMarks) {
    this.#o = o;
    this.#access = access;
    this.#binding = binding;
    this.#marks = marks;
  }

  /**
   * Issues an access token and the first refresh token of a new family. A bound family that
   * was revoked while it was issued (a racing exchange's cap, the session's end) is never
   * answered: it is tried again with a new family, a few times.
   */
  async start(payload: Record<string, unknown>, binding?: string, by?: Requester): Promise<TokenPair> {
    this.#access.checkPayload(payload);
    const log = logFor(by, this.#o.log);
    if (binding === undefined) {
      const fam = randomId(16);
      const { pair } = await this.#issue(fam, payload, undefined, undefined);
      log.info({ event: 'tokens issued', family: this.#o.logRef(fam), bound: false }, 'tokens issued');
      return pair;
    }
    for (let attempt = 1; ; attempt++) {
      const fam = randomId(16);
      // Its record first, with its age, then its place under the session: a racing exchange's
      // cap counts it by that age (a family listed without a record counts as the oldest).
      const started: FamilyRecord = { c: this.#startedAt(), a: [] };
      await this.#o.store.set(keys.family(fam), started, this.#o.refreshTtl * 1000);
      await this.#binding.track(binding, fam);
      const issued = await this.#issue(fam, payload, binding, started);
      await this.#capSession(binding);
      // As in refresh(): a revocation that read the family before its tokens existed could not
      // deny them, so they are denied here by name, and nothing of the family is answered.
      const causes = await this.#revokedCauses(fam);
      // A session that ended after the exchange found it live, but before this family was listed
      // under it, revoked nothing of the family (its end read the list before): the session is
      // asked again, after the listing, so that such an exchange answers session_invalid rather
      // than tokens that are dead already. An end after this look finds the family listed.
      const ended = !(await this.#binding.isLive(binding));
      if (causes.length === 0 && !ended) {
        log.info({ event: 'tokens issued', family: this.#o.logRef(fam), bound: true, session_binding: this.#o.logRef(binding) }, 'tokens issued');
        return issued.pair;
      }
      await this.#access.deny(issued.jti, issued.exp, this.#o.clock.now(), ended);
      await this.revokeFamily(fam, 'revoked while issued', undefined, ended, by);
      if (ended) throw new SessionEndedError();
      if (attempt === MAX_START_ATTEMPTS) {
        throw new GatewayError('RATE_LIMITED', 'Too many exchanges of this session at once: its oldest token families were revoked as they were issued');
      }
    }
  }

  /**
   * A bound family's age for the session's cap: now, plus thousandths of a millisecond that
   * grow with each family this node starts, so that of families started in one millisecond
   * (a fast store, a clock that does not move) the later is the younger, and the cap never
   * revokes the one being started for a tie. Within the millisecond, so that whole seconds
   * (revoke_user_tokens) are unchanged.
   */
  #startedAt(): number {
    this.#starts = (this.#starts + 1) % 1000;
    return this.#o.clock.now() + this.#starts / 1000;
  }

  async #family(fam: string): Promise<FamilyRecord | undefined> {
    const v = await this.#o.store.get<FamilyRecord | [string, number][]>(keys.family(fam));
    // Earlier versions stored the bare list of access tokens.
    return Array.isArray(v) ? { c: 0, a: v } : v;
  }

  /** Issues the next pair of a family; returns it with what a revocation racing it must deny. */
  async #issue(fam: string, payload: Record<string, unknown>, binding: string | undefined, previous: FamilyRecord | undefined): Promise<Issued> {
    const now = this.#o.clock.now();
    const access = this.#access.sign(payload, binding, now);
    const refresh = `${fam}.${randomId(32)}`;
    const refreshHash = hashSecret(refresh);
    const ttlMs = this.#o.refreshTtl * 1000;
    const record: RefreshRecord = { f: fam, p: payload, e: Math.floor((now + ttlMs) / 1000) };
    if (binding !== undefined) record.b = binding;
    const live = (previous?.a ?? []).filter(([, e]) => e * 1000 > now);
    live.push([access.jti, access.exp]);
    const user = userOf(payload);
    // One member per live family, kept as long as its newest refresh token: revoke_user_tokens
    // finds every family here, one rotated past the first token's lifetime included.
    if (user !== undefined) await this.#o.store.indexAdd(keys.userFamilies(user), fam, now + ttlMs);
    // The family knows the new tokens before they exist: a revocation that reads it later
    // reaches them, and one that read it earlier is seen by refresh() after this.
    await this.#o.store.indexAdd(keys.familyTokens(fam), refreshHash, now + ttlMs);
    const family: FamilyRecord = { c: previous?.c ?? now, a: live };
    if (user !== undefined) family.u = user;
    await this.#o.store.set(keys.family(fam), family, ttlMs);
    await this.#o.store.set(keys.refresh(refreshHash), record, ttlMs);
    const pair = { access_token: access.token, expires_in: this.#o.accessTtl, refresh_token: refresh, refresh_expires_in: this.#o.refreshTtl };
    return { pair, jti: access.jti, exp: access.exp, refreshHash };
  }

  /** Why the family is revoked: the hashes of reused tokens, `*` for anything else; empty while it is not. */
  async #revokedCauses(fam: string): Promise<string[]> {
    const [causes, legacy] = await Promise.all([
      this.#o.store.indexMembers(keys.familyRevoked(fam), this.#o.clock.now()),
      this.#o.store.get<string | number>(keys.legacyFamilyRevoked(fam)),
    ]);
    // Revoked by an earlier version, which kept one value: the reused token's hash, or 1.
    if (legacy !== undefined) causes.push(typeof legacy === 'string' ? legacy : REVOKED);
    return causes;
  }

  /** Rotates a refresh token: single use; a second use revokes its family. */
  async refresh(refreshToken: string, by?: Requester): Promise<TokenPair | { error: string }> {
    const fam = refreshFamilyOf(refreshToken);
    if (fam === undefined) return { error: 'Invalid refresh token' };
    const tokenHash = hashSecret(refreshToken);
    await this.#checkRefreshRate(fam, tokenHash);
    // A spend answered error 11 (the store too slow) that the store carries out after all would
    // leave the token spent while the client was told nothing happened, and its retry would be
    // taken for a reuse that revokes the family: the token is put back as soon as the late
    // answer comes. After a time-out a node answers error 11 at once until a probe of the store
    // answers; on Redis the probe follows this command on its connection, so the put-back is
    // sent before a retry made on this node can reach the store.
    const old = await this.#o.store.swap<RefreshRecord>(keys.refresh(tokenHash), { f: fam, spent: 1 }, undefined, (late) => {
      if (late !== undefined && late.f === fam && !late.spent) void this.#putBack(fam, tokenHash, late);
    });
    if (old === undefined || old.f !== fam) {
      // A revoked family's records are deleted: say why while its causes are kept.
      const causes = old === undefined ? await this.#revokedCauses(fam) : [];
      return { error: causes.length > 0 ? revokedText(causes) : 'Invalid refresh token' };
    }
    if (old.spent) {
      await this.revokeFamily(fam, 'refresh token reused', tokenHash, false, by);
      return { error: 'Refresh token already used: its token family is revoked' };
    }
    // This call won the atomic swap: it is the one use of the token. Should the rest fail (the
    // store stopped answering: error 11, which says nothing happened), the token is put back,
    // so that the client's retry is not taken for a reuse that revokes the family.
    try {
      return await this.#rotate(fam, tokenHash, old, by);
    } catch (err) {
      await this.#putBack(fam, tokenHash, old);
      throw err;
    }
  }

  /** The rest of a rotation, once this call has marked `old` (the record of `tokenHash`) spent. */
  async #rotate(fam: string, tokenHash: string, old: RefreshRecord, by?: Requester): Promise<TokenPair | { error: string }> {
    // The causes only grow, so
    // a revocation completed before is seen here whatever raced since. A cause that is the
    // reuse of this very token (a racing second use) does not take the rotation back; any other does.
    const before = (causes: string[]) => causes.filter((c) => c !== tokenHash);
    const earlier = before(await this.#revokedCauses(fam));
    if (earlier.length > 0) return { error: revokedText(earlier) };
    if (old.b !== undefined && !(await this.#binding.isLive(old.b))) {
      await this.revokeFamily(fam, 'bound session ended', undefined, true, by);
      return { error: 'Session ended' };
    }
    const family = await this.#family(fam);
    // A live token's family record lives as long as it does: without it the family was revoked
    // or has ended, and nothing of it is issued again. Revoked only by a racing reuse of this
    // very token (which deletes the records after this call won the token), the rotation still
    // answers, with a pair that dies with the family below.
    if (family === undefined) {
      const causes = await this.#revokedCauses(fam);
      if (causes.length === 0) return { error: 'Invalid refresh token' };
      const others = before(causes);
      if (others.length > 0) return { error: revokedText(others) };
    }
    // A family of the user started at or before a revoke_user_tokens that could not reach it
    // (started on another node while the revocation read the user's families) ends here.
    const user = userOf(old.p);
    if (family !== undefined && user !== undefined && Math.floor(family.c / 1000) <= (await this.#marks.get(user))) {
      await this.revokeFamily(fam, 'user tokens revoked', undefined, false, by);
      return { error: 'Refresh token revoked' };
    }
    const issued = await this.#issue(fam, old.p ?? {}, old.b, family);
    // A revocation that raced this rotation must still catch the tokens just issued: they are
    // denied here by name, since that revocation may have read (and deleted) the family's
    // records before they were written. When the race was a reuse of this very token (two tabs
    // refreshing at once, or a thief), the reply is still the rotation (it succeeded exactly
    // once), but its pair is dead with the family.
    const causes = await this.#revokedCauses(fam);
    if (causes.length > 0) {
      const now = this.#o.clock.now();
      await this.#access.deny(issued.jti, issued.exp, now);
      await this.#o.store.delete(keys.refresh(issued.refreshHash));
      await this.revokeFamily(fam, 'revoked during rotation', causes[0], false, by);
      const others = before(causes);
      if (others.length > 0) return { error: revokedText(others) };
    }
    const pair = issued.pair;
    logFor(by, this.#o.log).info({ event: 'tokens refreshed', family: this.#o.logRef(fam) }, 'tokens refreshed');
    return pair;
  }

  /**
   * Undoes the spending of a token whose rotation failed: its record back from the spent marker
   * this call wrote, by compare-and-swap (the expiry kept), so nothing a racing use or a
   * revocation wrote or deleted since is undone; a record put back while a revocation runs is
   * refused all the same (its causes, then its family record gone). Best effort: a store that
   * cannot take this write either leaves the token spent, and its retry is a reuse.
   */
  async #putBack(fam: string, tokenHash: string, old: RefreshRecord): Promise<void> {
    try {
      await this.#o.store.swapIf(keys.refresh(tokenHash), { f: fam, spent: 1 }, old);
    } catch {
      // The store is still away: the token stays spent.
    }
  }

  /**
   * What a live refresh token stands for, or undefined when refresh() would refuse it (unknown,
   * spent, family revoked, bound session ended, user's tokens revoked, expired); `exp` is the
   * earlier of its own expiry and, when bound, its session's end as of now. Read only:
   * nothing is spent, rotated or revoked (introspection, RFC 7662).
   */
  async inspect(refreshToken: string): Promise<RefreshTokenInfo | undefined> {
    const fam = refreshFamilyOf(refreshToken);
    if (fam === undefined) return undefined;
    const record = await this.#o.store.get<RefreshRecord>(keys.refresh(hashSecret(refreshToken)));
    if (record === undefined || record.f !== fam || record.spent) return undefined;
    const [causes, family] = await Promise.all([this.#revokedCauses(fam), this.#family(fam)]);
    // The family record lives as long as its current token: without it, nothing can be vouched for.
    if (causes.length > 0 || family === undefined) return undefined;
    const sessionEnd = record.b === undefined ? Infinity : await this.#binding.liveUntil(record.b);
    if (sessionEnd === undefined) return undefined;
    const user = userOf(record.p);
    if (user !== undefined && Math.floor(family.c / 1000) <= (await this.#marks.get(user))) return undefined;
    // Earlier versions kept no expiry: the token was issued with the family's last access token.
    const last = family.a.at(-1);
    const exp = record.e ?? (last === undefined ? undefined : last[1] - this.#o.accessTtl + this.#o.refreshTtl);
    if (exp === undefined || exp * 1000 <= this.#o.clock.now()) return undefined;
    // A bound token is refused from its session's end on: the earlier of the two is its expiry.
    const until = Math.min(exp, Math.floor(sessionEnd / 1000));
    return user === undefined ? { exp: until } : { exp: until, sub: user };
  }

  /**
   * A family lists its unexpired access tokens (to deny them if it is revoked), so a client
   * refreshing in a loop would grow that list and the spent-token markers without bound.
   * Past MAX_LIVE_ACCESS_TOKENS unexpired ones, a refresh of the family's current token is
   * refused with 1002 without spending it; a spent token still goes on to reuse detection.
   */
  async #checkRefreshRate(fam: string, tokenHash: string): Promise<void> {
    const list = (await this.#family(fam))?.a;
    if (list === undefined || list.length < MAX_LIVE_ACCESS_TOKENS) return;
    const nowS = this.#o.clock.now() / 1000;
    if (list.filter(([, e]) => e > nowS).length < MAX_LIVE_ACCESS_TOKENS) return;
    const record = await this.#o.store.get<RefreshRecord>(keys.refresh(tokenHash));
    if (record !== undefined && !record.spent && record.f === fam) {
      throw new GatewayError('RATE_LIMITED', `Too many refreshes: this token family already has ${MAX_LIVE_ACCESS_TOKENS} unexpired access tokens`);
    }
  }

  /**
   * Over its cap, a session's oldest live families are revoked, by one order every node
   * agrees on (age, then id), the family just started included: racing caps then revoke the
   * same ones, never a family too many. A start whose own family it was tries again.
   */
  async #capSession(claim: string): Promise<void> {
    const families = await this.#binding.families(claim);
    if (families.length <= MAX_FAMILIES_PER_SESSION) return;
    const listed = await Promise.all(
      families.map(async (f) => {
        const [family, causes] = await Promise.all([this.#family(f), this.#revokedCauses(f)]);
        return { f, c: family?.c, live: family !== undefined && causes.length === 0 };
      }),
    );
    // A family already revoked (by a racing cap, whose untrack may not have landed yet) or gone
    // is no longer counted: counting it would revoke one live family too many.
    const live = listed.filter((x) => x.live) as { f: string; c: number }[];
    for (const { f } of listed.filter((x) => !x.live)) await this.#binding.untrack(claim, f);
    if (live.length <= MAX_FAMILIES_PER_SESSION) return;
    // Ties in the order of the ids, so racing exchanges on several nodes pick the same ones.
    live.sort((x, y) => x.c - y.c || (x.f < y.f ? -1 : x.f > y.f ? 1 : 0));
    for (const { f } of live.slice(0, live.length - MAX_FAMILIES_PER_SESSION)) {
      await this.revokeFamily(f, 'session family cap');
      await this.#binding.untrack(claim, f);
    }
  }

  /**
   * Revokes a refresh-token family: records the cause (`reusedTokenHash` when a reuse caused
   * it), denies its unexpired access tokens and deletes its records.
   */
  async revokeFamily(fam: string, why: string, reusedTokenHash?: string, byTime = false, by?: Requester): Promise<void> {
    const now = this.#o.clock.now();
    const cause = reusedTokenHash ?? (byTime ? ENDED : REVOKED);
    const causes = keys.familyRevoked(fam);
    // First the cause, for as long as a token of the family could live: should the clean-up
    // below fail half-way, nothing of the family works again.
    await this.#o.store.indexAdd(causes, cause, now + this.#o.refreshTtl * 1000);
    const family = await this.#family(fam);
    for (const [jti, exp] of family?.a ?? []) await this.#access.deny(jti, exp, now, cause === ENDED);
    const tokens = keys.familyTokens(fam);
    const hashes = await this.#o.store.indexMembers(tokens, now);
    for (const hash of hashes) {
      await this.#o.store.delete(keys.refresh(hash));
      await this.#o.store.indexRemove(tokens, hash);
    }
    await this.#o.store.delete(keys.family(fam));
    if (family?.u !== undefined) await this.#o.store.indexRemove(keys.userFamilies(family.u), fam);
    // Nothing of the family is left to refuse: the cause need only outlast a rotation still in
    // flight (refresh() looks again after issuing) and the deny markers of its access tokens.
    await this.#o.store.indexAdd(causes, cause, now + (this.#o.accessTtl + this.#o.clockTolerance) * 1000, { shorten: true });
    const log = logFor(by, this.#o.log);
    if (reusedTokenHash !== undefined) audit(log, 'refresh token reuse detected', { family: this.#o.logRef(fam), reason: why });
    audit(log, 'token family revoked', {
      family: this.#o.logRef(fam),
      reason: why,
      access_tokens: family?.a.length ?? 0,
      refresh_tokens: hashes.length,
    });
  }

  /**
   * revoke_user_tokens: revokes every refresh family of the user started at or before
   * `before` (unix seconds); returns how many.
   */
  async revokeUser(userId: string, before: number, by?: Requester): Promise<number> {
    const index = keys.userFamilies(userId);
    const families = await this.#o.store.indexMembers(index, this.#o.clock.now());
    let count = 0;
    for (const fam of families) {
      const family = await this.#family(fam);
      if (family !== undefined && Math.floor(family.c / 1000) > before) continue;
      if (family !== undefined) {
        await this.revokeFamily(fam, 'user tokens revoked', undefined, false, by);
        count++;
      }
      await this.#o.store.indexRemove(index, fam);
    }
    return count;
  }

  /** Revokes the family of a refresh token this gateway issued (again: nothing changes). */
  async revoke(token: string, fam: string, by?: Requester): Promise<{ revoked: true } | { error: string }> {
    const record = await this.#o.store.get<RefreshRecord>(keys.refresh(hashSecret(token)));
    if (record === undefined && (await this.#revokedCauses(fam)).length > 0) return { revoked: true };
    if (record === undefined || record.f !== fam) return { error: 'Invalid refresh token' };
    await this.revokeFamily(fam, 'revoked by request', undefined, false, by);
    return { revoked: true };
  }
}
