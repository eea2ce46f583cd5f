import { createSigner, createVerifier, TokenError } from 'fast-jwt';
import type { Clock } from '../clock.js';
import { hashSecret, randomId } from '../crypto.js';
import { GatewayError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/types.js';
import type { Ed25519Key } from './ed25519-keys.js';
import { MAX_TOKEN_LENGTH, checkShape } from './jwt-shape.js';

/** Signing algorithms the gateway can be configured with (RFC 8725 section 3.1: an allow-list). */
export type SigningAlg = 'HS256' | 'EdDSA';

export interface TokenOptions {
  store: Store;
  clock: Clock;
  log: Logger;
  logRef: (value: string) => string;
  /** HS256 keys; the first signs (when `alg` is HS256), all verify. A `kid` goes into the header when set. */
  keys: { kid?: string; secret: Buffer }[];
  /** Algorithm of the access tokens this node signs; default HS256. */
  alg?: SigningAlg;
  /** Ed25519 keys (alg EdDSA): the first signs, all verify and are published by `jwks()`. */
  ed25519Keys?: Ed25519Key[];
  /**
   * Whether the session with this store hash is live now (idle timeout included). Tokens
   * bound to a session are refused once it is not, even when no end event was seen.
   */
  sessionLive?: (sessionHash: string) => Promise<boolean>;
  accessTtl: number;
  refreshTtl: number;
  /** Seconds of leeway for `iat` in the future (clock skew between issuers). */
  clockTolerance: number;
  issuer?: string;
  audience?: string;
}

export interface TokenPair {
  access_token: string;
  expires_in: number;
  refresh_token: string;
  refresh_expires_in: number;
}

export type Verification = { valid: true; payload: Record<string, unknown> } | { valid: false; error: string };

/** Claims the gateway sets itself; a payload that sets one is refused (error 12). */
export const BINDING_CLAIM = 'sid_hash';
const RESERVED = ['iat', 'exp', 'nbf', 'jti', BINDING_CLAIM];

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
const keys = {
  refresh: (hash: string) => `rt:${hash}`,
  family: (fam: string) => `rf:${fam}`,
  familyRevoked: (fam: string) => `rfx:${fam}`,
  denied: (jti: string) => `jti:${jti}`,
  binding: (claim: string) => `b:${claim}`,
  boundFamilies: (claim: string) => `bf:${claim}`,
};

const FAST_JWT_TEXT: Record<string, string> = {
  [TokenError.codes.invalidSignature]: 'Invalid signature',
  [TokenError.codes.malformed]: 'Malformed token',
  [TokenError.codes.invalidAlgorithm]: 'Algorithm not allowed',
  [TokenError.codes.missingRequiredClaim]: 'Missing required claim',
  [TokenError.codes.invalidClaimType]: 'Invalid claim type',
  [TokenError.codes.invalidClaimValue]: 'Invalid claim value',
  [TokenError.codes.invalidPayload]: 'Malformed token: payload is not an object',
  [TokenError.codes.missingSignature]: 'Missing signature',
  [TokenError.codes.invalidCritHeader]: 'Header parameter "crit" not allowed',
  [TokenError.codes.invalidType]: 'Token type not allowed',
};

type Verify = (token: string) => Record<string, unknown>;
const verifierKey = (alg: string, kid: string | undefined) => `${alg} ${kid ?? ''}`;

/**
 * Access tokens (HS256 via fast-jwt, signer and verifiers made once) and opaque
 * single-use refresh tokens in families: a refresh rotates the pair; presenting a spent
 * refresh token revokes the family and denies every access token it issued.
 */
export class TokenService {
  readonly #o: TokenOptions;
  readonly #sign: (payload: Record<string, unknown>) => string;
  /** `alg kid` -> verifier (kid '' when HS256 keys have none) */
  readonly #verifiers = new Map<string, Verify>();

  constructor(o: TokenOptions) {
    this.#o = o;
    const alg = o.alg ?? 'HS256';
    // Verifiers are looked up by (alg, kid): a token can only ever be checked with a key of
    // the algorithm it names, so no HMAC-with-a-public-key confusion (RFC 8725 section 2.1).
    const common = {
      // fast-jwt checks iss/aud only when present: configured ones are required as well.
      requiredClaims: ['exp', 'iat', 'jti', ...(o.issuer ? ['iss'] : []), ...(o.audience ? ['aud'] : [])],
      // Time is checked below on the injected clock, so tests can move it.
      ignoreExpiration: true,
      ignoreNotBefore: true,
      allowedIss: o.issuer,
      allowedAud: o.audience,
      cache: 4096,
    };
    for (const k of o.keys) {
      this.#verifiers.set(verifierKey('HS256', k.kid), createVerifier({ ...common, key: k.secret, algorithms: ['HS256'] }) as Verify);
    }
    for (const k of o.ed25519Keys ?? []) {
      const pem = k.publicKey.export({ format: 'pem', type: 'spki' }).toString();
      this.#verifiers.set(verifierKey('EdDSA', k.kid), createVerifier({ ...common, key: pem, algorithms: ['EdDSA'] }) as Verify);
    }
    // iat comes from the payload (the injected clock), so fast-jwt never reads Date.now().
    if (alg === 'EdDSA') {
      const signing = o.ed25519Keys?.[0];
      if (!signing) throw new GatewayError('INTERNAL', 'no Ed25519 signing key');
      const pem = signing.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
      this.#sign = createSigner({ key: pem, algorithm: 'EdDSA', kid: signing.kid }) as (p: Record<string, unknown>) => string;
    } else {
      const signing = o.keys[0];
      if (!signing) throw new GatewayError('INTERNAL', 'no signing key');
      this.#sign = createSigner({ key: signing.secret, algorithm: 'HS256', kid: signing.kid }) as (p: Record<string, unknown>) => string;
    }
  }

  /** The public keys that verify this gateway's access tokens, as a JWK Set (RFC 7517); empty with HS256. */
  jwks(): { keys: Record<string, string>[] } {
    return { keys: (this.#o.ed25519Keys ?? []).map((k) => ({ ...k.jwk })) };
  }

  /** Throws GatewayError MALFORMED when the payload sets a claim the gateway owns. */
  checkPayload(payload: Record<string, unknown>): void {
    const reserved = [...RESERVED, ...(this.#o.issuer ? ['iss'] : []), ...(this.#o.audience ? ['aud'] : [])];
    for (const claim of reserved) {
      if (Object.hasOwn(payload, claim)) throw new GatewayError('MALFORMED', `Field "payload" must not set the reserved claim "${claim}"`);
    }
  }

  /** Issues an access token and the first refresh token of a new family. */
  async generate(payload: Record<string, unknown>, binding?: string): Promise<TokenPair> {
    this.checkPayload(payload);
    const fam = randomId(16);
    if (binding !== undefined) {
      // So that the session's end can revoke the family at once (RFC 9700 section 4.14).
      await this.#o.store.indexAdd(keys.boundFamilies(binding), fam, this.#o.clock.now() + this.#o.refreshTtl * 1000);
    }
    const pair = await this.#issue(fam, payload, binding, []);
    const bound = binding === undefined ? {} : { session_binding: this.#o.logRef(binding) };
    this.#o.log.info({ event: 'tokens issued', family: this.#o.logRef(fam), bound: binding !== undefined, ...bound }, 'tokens issued');
    return pair;
  }

  async #issue(fam: string, payload: Record<string, unknown>, binding: string | undefined, previous: [string, number][]): Promise<TokenPair> {
    const now = this.#o.clock.now();
    const iat = Math.floor(now / 1000);
    const exp = iat + this.#o.accessTtl;
    const jti = randomId(16);
    const claims: Record<string, unknown> = { ...payload };
    if (binding !== undefined) claims[BINDING_CLAIM] = binding;
    if (this.#o.issuer) claims.iss = this.#o.issuer;
    if (this.#o.audience) claims.aud = this.#o.audience;
    claims.iat = iat;
    claims.exp = exp;
    claims.jti = jti;
    const access = this.#sign(claims);
    // Never issue a token that verification would refuse for its length.
    if (access.length > MAX_TOKEN_LENGTH) {
      throw new GatewayError('MALFORMED', `Field "payload" is too large: the access token would exceed ${MAX_TOKEN_LENGTH} characters`);
    }
    const refresh = `${fam}.${randomId(32)}`;
    const ttlMs = this.#o.refreshTtl * 1000;
    const record: RefreshRecord = { f: fam, p: payload };
    if (binding !== undefined) record.b = binding;
    // The family remembers its unexpired access tokens, to deny them if it is revoked.
    const live = previous.filter(([, e]) => e * 1000 > now);
    live.push([jti, exp]);
    await this.#o.store.set(keys.family(fam), live, ttlMs);
    await this.#o.store.set(keys.refresh(hashSecret(refresh)), record, ttlMs);
    return { access_token: access, expires_in: this.#o.accessTtl, refresh_token: refresh, refresh_expires_in: this.#o.refreshTtl };
  }

  /** Checks signature, algorithm, header, required claims, time, revocation and session binding. */
  async verify(token: string): Promise<Verification> {
    const v = await this.#verify(token);
    if (!v.valid) this.#o.log.debug({ event: 'token refused', reason: v.error }, 'token refused');
    // The HMAC of the log reference costs a fifth of a verify: only when trace is on.
    else if (this.#o.log.isLevelEnabled('trace')) this.#o.log.trace({ event: 'token verified', jti: this.#o.logRef(String(v.payload.jti)) }, 'token verified');
    return v;
  }

  async #verify(token: string): Promise<Verification> {
    const checked = this.#checkSignature(token);
    if (!checked.valid) return checked;
    const { payload } = checked;
    const now = this.#o.clock.now();
    const exp = payload.exp as number;
    const iat = payload.iat as number;
    if (typeof exp !== 'number' || typeof iat !== 'number' || typeof payload.jti !== 'string') return { valid: false, error: 'Invalid claim type' };
    if (!Number.isFinite(exp) || !Number.isFinite(iat)) return { valid: false, error: 'Invalid claim value' };
    if (now >= exp * 1000) return { valid: false, error: 'Token expired' };
    if (iat * 1000 > now + this.#o.clockTolerance * 1000) return { valid: false, error: 'Token issued in the future' };
    if (typeof payload.nbf === 'number' && payload.nbf * 1000 > now + this.#o.clockTolerance * 1000) return { valid: false, error: 'Token not yet valid' };
    if ((await this.#o.store.get(keys.denied(payload.jti))) !== undefined) return { valid: false, error: 'Token revoked' };
    const binding = payload[BINDING_CLAIM];
    if (binding !== undefined && (typeof binding !== 'string' || !(await this.#boundSessionLive(binding)))) {
      return { valid: false, error: 'Session ended' };
    }
    return { valid: true, payload };
  }

  /** True while the session a binding claim stands for is live. */
  async #boundSessionLive(claim: string): Promise<boolean> {
    const marker = await this.#o.store.get<string | 1>(keys.binding(claim));
    if (marker === undefined) return false;
    // The marker holds the session's store hash: ask the sessions, which know the idle timeout.
    if (typeof marker === 'string' && this.#o.sessionLive) return this.#o.sessionLive(marker);
    return true;
  }

  #checkSignature(token: string): Verification {
    const shape = checkShape(token);
    if (!shape.ok) return { valid: false, error: shape.error };
    const { alg, kid } = shape.header;
    if (alg !== 'HS256' && alg !== 'EdDSA') return { valid: false, error: 'Algorithm not allowed' };
    const verifier = this.#verifiers.get(verifierKey(alg, kid));
    if (verifier === undefined) {
      // Tell apart a key id we never had from an algorithm this node does not accept.
      const algKnown = [...this.#verifiers.keys()].some((k) => k.startsWith(`${alg} `));
      if (!algKnown) return { valid: false, error: 'Algorithm not allowed' };
      return { valid: false, error: kid === undefined ? 'Missing key id' : 'Unknown key id' };
    }
    try {
      return { valid: true, payload: verifier(token) };
    } catch (err) {
      const code = err instanceof TokenError ? err.code : '';
      return { valid: false, error: FAST_JWT_TEXT[code] ?? 'Invalid token' };
    }
  }

  /** Rotates a refresh token: single use; a second use revokes its family. */
  async refresh(refreshToken: string): Promise<TokenPair | { error: string }> {
    const m = REFRESH_SHAPE.exec(refreshToken);
    if (!m) return { error: 'Invalid refresh token' };
    const fam = m[1]!;
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
    if (old.b !== undefined && !(await this.#boundSessionLive(old.b))) {
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
    for (const [jti, exp] of live) await this.#deny(jti, exp, now);
    this.#o.log.warn({ event: 'token family revoked', family: this.#o.logRef(fam), reason: why, access_tokens: live.length }, 'token family revoked');
  }

  async #deny(jti: string, exp: number, now: number): Promise<void> {
    const ttl = exp * 1000 - now + this.#o.clockTolerance * 1000;
    if (ttl > 0) await this.#o.store.set(keys.denied(jti), 1, ttl);
  }

  /**
   * Revokes an access token (by `jti`, until it expires: any re-encoding of it is denied
   * too) or a refresh token (its whole family). Only tokens the gateway issued can be revoked.
   */
  async revoke(token: string): Promise<{ revoked: true } | { error: string }> {
    const m = REFRESH_SHAPE.exec(token);
    if (m) {
      const record = await this.#o.store.get<RefreshRecord>(keys.refresh(hashSecret(token)));
      if (record === undefined || record.f !== m[1]) return { error: 'Invalid refresh token' };
      await this.revokeFamily(m[1]!, 'revoked by request');
      return { revoked: true };
    }
    const checked = this.#checkSignature(token);
    if (!checked.valid) return { error: checked.error };
    const { jti, exp } = checked.payload;
    if (typeof jti !== 'string' || typeof exp !== 'number') return { error: 'Invalid claim type' };
    await this.#deny(jti, exp, this.#o.clock.now());
    this.#o.log.info({ event: 'token revoked', jti: this.#o.logRef(jti) }, 'token revoked');
    return { revoked: true };
  }

  /** The binding claim for a session: a hash of its store hash, never the id itself. */
  bindingFor(sessionHash: string): string {
    return hashSecret(`binding:${sessionHash}`);
  }

  /**
   * Marks a session as live for its bound tokens for `ttlMs` (its absolute end); the marker
   * holds the store hash so that verification can ask whether the session is still live.
   */
  async bind(sessionHash: string, ttlMs: number): Promise<string> {
    const claim = this.bindingFor(sessionHash);
    await this.#o.store.set(keys.binding(claim), sessionHash, Math.max(1, ttlMs));
    return claim;
  }

  /** The session ended: its bound access tokens are refused and its refresh families are revoked now. */
  async sessionEnded(sessionHash: string): Promise<void> {
    const claim = this.bindingFor(sessionHash);
    const had = await this.#o.store.delete(keys.binding(claim));
    // The index is read even without a marker: the marker may have expired with the session.
    const index = keys.boundFamilies(claim);
    const families = await this.#o.store.indexMembers(index, this.#o.clock.now());
    for (const fam of families) {
      await this.revokeFamily(fam, 'bound session ended');
      await this.#o.store.indexRemove(index, fam);
    }
    if (!had && families.length === 0) return;
    this.#o.log.info({ event: 'bound tokens revoked', session: this.#o.logRef(sessionHash), families: families.length }, 'bound tokens revoked');
  }
}
