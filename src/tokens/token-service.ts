import { logFor, type Requester } from '../log.js';
import type { MaybePromise } from '../maybe-promise.js';
import { AccessTokens } from './access-tokens.js';
import { RefreshFamilies, refreshFamilyOf, type RefreshTokenInfo } from './refresh-families.js';
import { SessionBinding } from './session-binding.js';
import type { TokenOptions, TokenPair, Verification } from './types.js';
import { UserMarks } from './user-marks.js';

export { BINDING_CLAIM } from './session-binding.js';
export { MAX_FAMILIES_PER_SESSION, MAX_LIVE_ACCESS_TOKENS } from './refresh-families.js';
export type { SigningAlg, TokenOptions, TokenPair, Verification } from './types.js';
export type { RefreshTokenInfo } from './refresh-families.js';

/**
 * The token API the pipeline uses, assembled from access tokens, refresh families and
 * session binding (each in its own file).
 */
export class TokenService {
  readonly #access: AccessTokens;
  readonly #families: RefreshFamilies;
  readonly #binding: SessionBinding;
  readonly #marks: UserMarks;
  readonly #o: TokenOptions;

  constructor(o: TokenOptions) {
    this.#o = o;
    this.#marks = new UserMarks(o);
    // A session's end revokes the families bound to it; the families exist only once built below.
    this.#binding = new SessionBinding(o, (fam, why, byTime) => this.#families.revokeFamily(fam, why, undefined, byTime));
    this.#access = new AccessTokens(o, this.#binding, this.#marks);
    this.#families = new RefreshFamilies(o, this.#access, this.#binding, this.#marks);
  }

  /**
   * revoke_user_tokens: the user's access tokens issued at or before `before` (unix seconds)
   * are refused from now on, and the user's refresh families started by then are revoked.
   * `announce` tells the other nodes (by the hash of the user id) before the families go.
   * Resolves with the mark in force: `before`, or a later one the user already had.
   */
  async revokeUser(userId: string, before: number, announce: (userHash: string) => Promise<void>, by?: Requester): Promise<number> {
    const mark = await this.#marks.revoke(userId, before);
    await announce(UserMarks.userHash(userId));
    const families = await this.#families.revokeUser(userId, mark, by);
    logFor(by, this.#o.log).info({ event: 'user tokens revoked', user: this.#o.logRef(userId), before: mark, families }, 'user tokens revoked');
    return mark;
  }

  /** Another node revoked the tokens of the user with this hash: forget the cached mark. */
  forgetUserMark(userHash: string): void {
    this.#marks.forget(userHash);
  }

  /** Events may have been missed: forget every cached mark. */
  forgetUserMarks(): void {
    this.#marks.forgetAll();
  }

  /** Loads fast-jwt and makes the signer and verifiers now instead of on the first token. */
  prepare(): void {
    this.#access.prepare();
  }

  /** The public keys that verify this gateway's access tokens, as a JWK Set (RFC 7517); empty with HS256. */
  jwks(): { keys: Record<string, string>[] } {
    return this.#access.jwks();
  }

  /** Throws GatewayError MALFORMED when the payload sets a claim the gateway owns. */
  checkPayload(payload: Record<string, unknown>): void {
    this.#access.checkPayload(payload);
  }

  /** Issues an access token and the first refresh token of a new family; `by` is who asked (its log lines carry its connection id). */
  generate(payload: Record<string, unknown>, binding?: string, by?: Requester): Promise<TokenPair> {
    return this.#families.start(payload, binding, by);
  }

  /** Checks signature, algorithm, header, required claims, time, revocation and session binding. */
  verify(token: string, by?: Requester): MaybePromise<Verification> {
    return this.#access.verify(token, by);
  }

  /** Rotates a refresh token: single use; a second use revokes its family. */
  refresh(refreshToken: string, by?: Requester): Promise<TokenPair | { error: string }> {
    return this.#families.refresh(refreshToken, by);
  }

  /** A live refresh token's expiry and user, or undefined; read only (nothing is spent or rotated). */
  inspectRefresh(refreshToken: string): Promise<RefreshTokenInfo | undefined> {
    return this.#families.inspect(refreshToken);
  }

  /** Revokes a refresh-token family and denies its unexpired access tokens. */
  revokeFamily(fam: string, why: string, reusedTokenHash?: string): Promise<void> {
    return this.#families.revokeFamily(fam, why, reusedTokenHash);
  }

  /** The store lost its data, noticed at `at` (ms): access tokens issued before then, or in that second, are refused (see StoreEpoch). */
  storeLost(at: number): void {
    this.#access.storeLost(at);
  }

  /** The store's contents began at `at` (ms, the marker's time): access tokens issued in a second before it are refused. */
  storeBegan(at: number): void {
    this.#access.storeBegan(at);
  }

  /**
   * Revokes an access token (by `jti`, until it expires) or a refresh token (its whole
   * family). Only tokens the gateway issued can be revoked.
   */
  revoke(token: string, by?: Requester): Promise<{ revoked: true } | { error: string }> {
    const fam = refreshFamilyOf(token);
    return fam === undefined ? this.#access.revoke(token, by) : this.#families.revoke(token, fam, by);
  }

  /** The binding claim for a session: a hash of its store hash, never the id itself. */
  bindingFor(sessionHash: string): string {
    return this.#binding.bindingFor(sessionHash);
  }

  /** Marks a session as live for its bound tokens until `endMs` (its absolute end, ms); never shortens. */
  bind(sessionHash: string, endMs: number): Promise<string> {
    return this.#binding.bind(sessionHash, endMs);
  }

  /** The session's absolute end moved to `endMs` (extend_session): its bound tokens live on until then. */
  sessionExtended(sessionHash: string, endMs: number): Promise<void> {
    return this.#binding.extend(sessionHash, endMs);
  }

  /**
   * The session ended: its bound access tokens are refused and its refresh families are revoked
   * now; `byTime` (its time ran out, or it is gone from the store) makes them say `Session ended`
   * rather than `Token revoked`.
   */
  sessionEnded(sessionHash: string, byTime = false): Promise<void> {
    return this.#binding.sessionEnded(sessionHash, byTime);
  }
}
