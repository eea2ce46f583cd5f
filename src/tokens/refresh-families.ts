import { hashSecret, randomId } from '../crypto.js';
import { GatewayError } from '../errors.js';
import type { AccessTokens } from './access-tokens.js';
import type { SessionBinding } from './session-binding.js';
import { tokenKeys as keys } from './store-keys.js';
import type { TokenOptions, TokenPair } from './types.js';

interface RefreshRecord {
  /** family id */
  f: string;
  /** the claims to put into each access token of the family */
  p?: Record<string, unknown>;
  /** session binding claim, when issued by exchange_session */
  b?: string;
  /** set once the token has been used */
  spent?: 1;
}

/** Unexpired access tokens one refresh family may have at once (see #checkRefreshRate). */
export const MAX_LIVE_ACCESS_TOKENS = 1000;

const REFRESH_SHAPE = /^([A-Za-z0-9_-]{22})\.[A-Za-z0-9_-]{43}$/;

/** The family id of a token shaped like a refresh token, or undefined. */
export function refreshFamilyOf(token: string): string | undefined {
  return REFRESH_SHAPE.exec(token)?.[1];
}

/**
 * Opaque single-use refresh tokens in families: a refresh rotates the pair; presenting a
 * spent refresh token revokes the family and denies every access token it issued.
 */
export class RefreshFamilies {
  readonly #o: TokenOptions;
  readonly #access: AccessTokens;
  readonly #binding: SessionBinding;

  constructor(o: TokenOptions, access: AccessTokens, binding: SessionBinding) {
    this.#o = o;
    this.#access = access;
    this.#binding = binding;
  }

  /** Issues an access token and the first refresh token of a new family. */
  async start(payload: Record<string, unknown>, binding?: string): Promise<TokenPair> {
    this.#access.checkPayload(payload);
    const fam = randomId(16);
    if (binding !== undefined) await this.#binding.track(binding, fam);
    const pair = await this.#issue(fam, payload, binding, []);
    const bound = binding === undefined ? {} : { session_binding: this.#o.logRef(binding) };
    this.#o.log.info({ event: 'tokens issued', family: this.#o.logRef(fam), bound: binding !== undefined, ...bound }, 'tokens issued');
    return pair;
  }

  async #issue(fam: string, payload: Record<string, unknown>, binding: string | undefined, previous: [string, number][]): Promise<TokenPair> {
    const now = this.#o.clock.now();
    const access = this.#access.sign(payload, binding, now);
    const refresh = `${fam}.${randomId(32)}`;
    const ttlMs = this.#o.refreshTtl * 1000;
    const record: RefreshRecord = { f: fam, p: payload };
    if (binding !== undefined) record.b = binding;
    // The family remembers its unexpired access tokens, to deny them if it is revoked.
    const live = previous.filter(([, e]) => e * 1000 > now);
    live.push([access.jti, access.exp]);
    await this.#o.store.set(keys.family(fam), live, ttlMs);
    await this.#o.store.set(keys.refresh(hashSecret(refresh)), record, ttlMs);
    return { access_token: access.token, expires_in: this.#o.accessTtl, refresh_token: refresh, refresh_expires_in: this.#o.refreshTtl };
  }

  /** Rotates a refresh token: single use; a second use revokes its family. */
  async refresh(refreshToken: string): Promise<TokenPair | { error: string }> {
    const fam = refreshFamilyOf(refreshToken);
    if (fam === undefined) return { error: 'Invalid refresh token' };
    const tokenHash = hashSecret(refreshToken);
    await this.#checkRefreshRate(fam, tokenHash);
    const old = await this.#o.store.swap<RefreshRecord>(keys.refresh(tokenHash), { f: fam, spent: 1 });
    if (old === undefined || old.f !== fam) return { error: 'Invalid refresh token' };
    if (old.spent) {
      await this.revokeFamily(fam, 'refresh token reused', tokenHash);
      return { error: 'Refresh token already used: its token family is revoked' };
    }
    // This call won the atomic swap: it is the one use of the token. A revocation caused by a
    // later (racing) reuse of this same token does not take the rotation back; any other does.
    const revokedBefore = (cause: unknown) => cause !== undefined && cause !== tokenHash;
    if (revokedBefore(await this.#o.store.get(keys.familyRevoked(fam)))) return { error: 'Refresh token revoked' };
    if (old.b !== undefined && !(await this.#binding.isLive(old.b))) {
      await this.revokeFamily(fam, 'bound session ended');
      return { error: 'Session ended' };
    }
    const previous = (await this.#o.store.get<[string, number][]>(keys.family(fam))) ?? [];
    const pair = await this.#issue(fam, old.p ?? {}, old.b, previous);
    // A revocation that raced this rotation must still catch the tokens just issued. When the
    // race was a reuse of this very token (two tabs refreshing at once, or a thief), the reply
    // is still the rotation (it succeeded exactly once), but its pair is denied with the family.
    const cause = await this.#o.store.get(keys.familyRevoked(fam));
    if (cause !== undefined) {
      await this.revokeFamily(fam, 'revoked during rotation', typeof cause === 'string' ? cause : undefined);
      if (revokedBefore(cause)) return { error: 'Refresh token revoked' };
    }
    this.#o.log.info({ event: 'tokens refreshed', family: this.#o.logRef(fam) }, 'tokens refreshed');
    return pair;
  }

  /**
   * A family lists its unexpired access tokens (to deny them if it is revoked), so a client
   * refreshing in a loop would grow that list and the spent-token markers without bound.
   * Past MAX_LIVE_ACCESS_TOKENS unexpired ones, a refresh of the family's current token is
   * refused with 1002 without spending it; a spent token still goes on to reuse detection.
   */
  async #checkRefreshRate(fam: string, tokenHash: string): Promise<void> {
    const list = await this.#o.store.get<[string, number][]>(keys.family(fam));
    if (list === undefined || list.length < MAX_LIVE_ACCESS_TOKENS) return;
    const nowS = this.#o.clock.now() / 1000;
    if (list.filter(([, e]) => e > nowS).length < MAX_LIVE_ACCESS_TOKENS) return;
    const record = await this.#o.store.get<RefreshRecord>(keys.refresh(tokenHash));
    if (record !== undefined && !record.spent && record.f === fam) {
      throw new GatewayError('RATE_LIMITED', `Too many refreshes: this token family already has ${MAX_LIVE_ACCESS_TOKENS} unexpired access tokens`);
    }
  }

  /** Revokes a refresh-token family and denies its unexpired access tokens. */
  async revokeFamily(fam: string, why: string, reusedTokenHash?: string): Promise<void> {
    const ttlMs = this.#o.refreshTtl * 1000;
    // The marker holds the hash of the reused refresh token when reuse caused it (see refresh()).
    await this.#o.store.set(keys.familyRevoked(fam), reusedTokenHash ?? 1, ttlMs);
    const live = (await this.#o.store.get<[string, number][]>(keys.family(fam))) ?? [];
    const now = this.#o.clock.now();
    for (const [jti, exp] of live) await this.#access.deny(jti, exp, now);
    this.#o.log.warn({ event: 'token family revoked', family: this.#o.logRef(fam), reason: why, access_tokens: live.length }, 'token family revoked');
  }

  /** Revokes the family of a refresh token this gateway issued. */
  async revoke(token: string, fam: string): Promise<{ revoked: true } | { error: string }> {
    const record = await this.#o.store.get<RefreshRecord>(keys.refresh(hashSecret(token)));
    if (record === undefined || record.f !== fam) return { error: 'Invalid refresh token' };
    await this.revokeFamily(fam, 'revoked by request');
    return { revoked: true };
  }
}
