import { createSigner, createVerifier, TokenError } from 'fast-jwt';
import type { Clock } from '../clock.js';
import { hashSecret, randomId } from '../crypto.js';
import { GatewayError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/types.js';
import { checkShape } from './jwt-shape.js';

export interface TokenOptions {
  store: Store;
  clock: Clock;
  log: Logger;
  logRef: (value: string) => string;
  /** HS256 keys; the first signs. A `kid` goes into the header when set. */
  keys: { kid?: string; secret: Buffer }[];
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

const REFRESH_SHAPE = /^([A-Za-z0-9_-]{22})\.[A-Za-z0-9_-]{43}$/;
const keys = {
  refresh: (hash: string) => `rt:${hash}`,
  family: (fam: string) => `rf:${fam}`,
  familyRevoked: (fam: string) => `rfx:${fam}`,
  denied: (jti: string) => `jti:${jti}`,
  binding: (claim: string) => `b:${claim}`,
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

/**
 * Access tokens (HS256 via fast-jwt, signer and verifiers made once) and opaque
 * single-use refresh tokens in families: a refresh rotates the pair; presenting a spent
 * refresh token revokes the family and denies every access token it issued.
 */
export class TokenService {
  readonly #o: TokenOptions;
  readonly #sign: (payload: Record<string, unknown>) => string;
  /** kid -> verifier ('' when keys have no kid) */
  readonly #verifiers = new Map<string, (token: string) => Record<string, unknown>>();

  constructor(o: TokenOptions) {
    this.#o = o;
    const signing = o.keys[0];
    if (!signing) throw new GatewayError('INTERNAL', 'no signing key');
    // iat comes from the payload (the injected clock), so fast-jwt never reads Date.now().
    this.#sign = createSigner({ key: signing.secret, algorithm: 'HS256', kid: signing.kid }) as (p: Record<string, unknown>) => string;
    for (const k of o.keys) {
      this.#verifiers.set(
        k.kid ?? '',
        createVerifier({
          key: k.secret,
          algorithms: ['HS256'],
          requiredClaims: ['exp', 'iat', 'jti'],
          // Time is checked below on the injected clock, so tests can move it.
          ignoreExpiration: true,
          ignoreNotBefore: true,
          allowedIss: o.issuer,
          allowedAud: o.audience,
          cache: 4096,
        }) as (token: string) => Record<string, unknown>,
      );
    }
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
    const pair = await this.#issue(fam, payload, binding, []);
    this.#o.log.info({ event: 'tokens issued', family: this.#o.logRef(fam), bound: binding !== undefined }, 'tokens issued');
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
    const checked = this.#checkSignature(token);
    if (!checked.valid) return checked;
    const { payload } = checked;
    const now = this.#o.clock.now();
    const exp = payload.exp as number;
    const iat = payload.iat as number;
    if (typeof exp !== 'number' || typeof iat !== 'number' || typeof payload.jti !== 'string') return { valid: false, error: 'Invalid claim type' };
    if (now >= exp * 1000) return { valid: false, error: 'Token expired' };
    if (iat * 1000 > now + this.#o.clockTolerance * 1000) return { valid: false, error: 'Token issued in the future' };
    if (typeof payload.nbf === 'number' && payload.nbf * 1000 > now + this.#o.clockTolerance * 1000) return { valid: false, error: 'Token not yet valid' };
    if ((await this.#o.store.get(keys.denied(payload.jti))) !== undefined) return { valid: false, error: 'Token revoked' };
    const binding = payload[BINDING_CLAIM];
    if (binding !== undefined && (typeof binding !== 'string' || (await this.#o.store.get(keys.binding(binding))) === undefined)) {
      return { valid: false, error: 'Session ended' };
    }
    return { valid: true, payload };
  }

  #checkSignature(token: string): Verification {
    const shape = checkShape(token);
    if (!shape.ok) return { valid: false, error: shape.error };
    if (shape.header.alg !== 'HS256') return { valid: false, error: 'Algorithm not allowed' };
    const verifier = this.#verifiers.get(shape.header.kid ?? '');
    if (verifier === undefined) return { valid: false, error: shape.header.kid === undefined ? 'Missing key id' : 'Unknown key id' };
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
    const key = keys.refresh(hashSecret(refreshToken));
    const old = await this.#o.store.swap<RefreshRecord>(key, { f: fam, spent: 1 });
    if (old === undefined || old.f !== fam) return { error: 'Invalid refresh token' };
    if (old.spent) {
      await this.revokeFamily(fam, 'refresh token reused');
      return { error: 'Refresh token already used: its token family is revoked' };
    }
    if ((await this.#o.store.get(keys.familyRevoked(fam))) !== undefined) return { error: 'Refresh token revoked' };
    if (old.b !== undefined && (await this.#o.store.get(keys.binding(old.b))) === undefined) {
      await this.revokeFamily(fam, 'bound session ended');
      return { error: 'Session ended' };
    }
    const previous = (await this.#o.store.get<[string, number][]>(keys.family(fam))) ?? [];
    const pair = await this.#issue(fam, old.p ?? {}, old.b, previous);
    // A revocation that raced this rotation must still catch the token just issued.
    if ((await this.#o.store.get(keys.familyRevoked(fam))) !== undefined) {
      await this.revokeFamily(fam, 'revoked during rotation');
      return { error: 'Refresh token revoked' };
    }
    this.#o.log.info({ event: 'tokens refreshed', family: this.#o.logRef(fam) }, 'tokens refreshed');
    return pair;
  }

  /** Revokes a refresh-token family and denies its unexpired access tokens. */
  async revokeFamily(fam: string, why: string): Promise<void> {
    const ttlMs = this.#o.refreshTtl * 1000;
    await this.#o.store.set(keys.familyRevoked(fam), 1, ttlMs);
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

  /** Marks a session as live for its bound tokens until `endMs`. */
  async bind(sessionHash: string, ttlMs: number): Promise<string> {
    const claim = this.bindingFor(sessionHash);
    await this.#o.store.set(keys.binding(claim), 1, ttlMs);
    return claim;
  }

  /** The session ended: its bound access tokens are refused and its refresh families die. */
  async sessionEnded(sessionHash: string): Promise<void> {
    await this.#o.store.delete(keys.binding(this.bindingFor(sessionHash)));
  }
}
