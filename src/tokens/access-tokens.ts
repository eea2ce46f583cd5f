import { createRequire } from 'node:module';
import type { LRUCache } from 'lru-cache';
import { hashSecret, randomId } from '../crypto.js';
import { GatewayError } from '../errors.js';
import { logFor, type Requester } from '../log.js';
import { andThen, type MaybePromise } from '../maybe-promise.js';
import { codePointCount } from '../protocol/code-points.js';
import { freezeWithJson } from '../protocol/frozen-json.js';
import { MAX_ID } from '../protocol/code-points.js';
import { claimShapeError, timeError } from './claims.js';
import { MAX_TOKEN_LENGTH, checkShape, tokenTooLong } from './jwt-shape.js';
import { BINDING_CLAIM, type SessionBinding } from './session-binding.js';
import { tokenKeys as keys } from './store-keys.js';
import type { TokenOptions, Verification } from './types.js';
import type { UserMarks } from './user-marks.js';

/** Claims the gateway sets itself; a payload that sets one is refused (error 12). */
const RESERVED = ['iat', 'exp', 'nbf', 'jti', BINDING_CLAIM];

/** `make()` on the first call, its result ever after. */
function once<T>(make: () => T): () => T {
  let made: T | undefined;
  return () => (made ??= make());
}

type FastJwt = typeof import('fast-jwt');

/**
 * fast-jwt (CommonJS, with its ASN.1 and big-number modules) is loaded on the first signature or
 * verification, not at start: a short-lived stdio process that only manages sessions never
 * needs it. The keys it is given were checked by the configuration.
 */
const loadFastJwt = once(() => createRequire(import.meta.url)('fast-jwt') as FastJwt);

/** The reply's text for each of fast-jwt's error codes. */
const fastJwtTexts = once((): Record<string, string> => {
  const codes = loadFastJwt().TokenError.codes;
  return {
    [codes.invalidSignature]: 'Invalid signature',
    [codes.malformed]: 'Malformed token',
    [codes.invalidAlgorithm]: 'Algorithm not allowed',
    [codes.missingRequiredClaim]: 'Missing required claim',
    [codes.invalidClaimType]: 'Invalid claim type',
    [codes.invalidClaimValue]: 'Invalid claim value',
    [codes.invalidPayload]: 'Malformed token: payload is not an object',
    [codes.missingSignature]: 'Missing signature',
    [codes.invalidCritHeader]: 'Header parameter "crit" not allowed',
    [codes.invalidType]: 'Token type not allowed',
  };
});

type Verify = (token: string) => Record<string, unknown>;
type Sign = (payload: Record<string, unknown>) => string;
/** A token whose signature, header and claim types passed, with its cache key. */
type Checked = { valid: true; payload: Record<string, unknown>; key: string } | { valid: false; error: string };

/** Tokens remembered as checked (see #checkSignature): as many as fast-jwt's cache held. */
const CHECKED_TOKENS = 4096;
/** The longest a checked token is remembered, as fast-jwt's cache did (its cacheTTL). */
const CHECKED_TTL_MS = 600_000;
/** lru-cache, loaded with fast-jwt: on the first token. */
const loadLruCache = once(() => createRequire(import.meta.url)('lru-cache') as typeof import('lru-cache'));

const revoked = (): Verification => ({ valid: false, error: 'Token revoked' });
const sessionEnded = (): Verification => ({ valid: false, error: 'Session ended' });
/** A deny marker's value for a token of a session whose time ran out: refused as `Session ended`. */
const ENDED_MARK = 'e';

const verifierKey = (alg: string, kid: string | undefined) => `${alg} ${kid ?? ''}`;

/** An access token just signed, with the claims its family must remember to deny it later. */
export interface SignedAccess {
  token: string;
  jti: string;
  exp: number;
}

/**
 * Access tokens (HS256 or EdDSA via fast-jwt, signer and verifiers made once): signing,
 * verification on the injected clock, and denial by `jti` until expiry.
 */
export class AccessTokens {
  readonly #o: TokenOptions;
  readonly #binding: SessionBinding;
  readonly #marks: UserMarks;
  /**
   * Unix seconds: tokens issued in it or before are refused (the store lost their revocations:
   * `storeLost`, `storeBegan`). `iat` has whole seconds, so a token of the second of a loss may
   * be older than the loss: it is refused too, with those issued later in that second.
   */
  #refusedThrough = -1;
  readonly #signer: () => Sign;
  /** `alg kid` -> verifier (kid '' when HS256 keys have none), made on first use */
  readonly #verifiers = new Map<string, () => Verify>();
  /** SHA-256 of a checked token -> its payload (see #checkSignature), made on first use. */
  readonly #checked = once(
    (): LRUCache<string, Record<string, unknown>> =>
      new (loadLruCache().LRUCache)<string, Record<string, unknown>>({ max: CHECKED_TOKENS, ttlAutopurge: false }),
  );

  constructor(o: TokenOptions, binding: SessionBinding, marks: UserMarks) {
    this.#o = o;
    this.#binding = binding;
    this.#marks = marks;
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
      // Checked tokens are remembered in front of the verifiers (#checked), under a one-shot
      // SHA-256, much cheaper than fast-jwt's cache key; its own cache would only add that key.
      cache: false,
    };
    for (const k of o.keys) {
      this.#verifiers.set(
        verifierKey('HS256', k.kid),
        once(() => loadFastJwt().createVerifier({ ...common, key: k.secret, algorithms: ['HS256'] }) as Verify),
      );
    }
    for (const k of o.ed25519Keys ?? []) {
      const pem = k.publicKey.export({ format: 'pem', type: 'spki' }).toString();
      this.#verifiers.set(
        verifierKey('EdDSA', k.kid),
        once(() => loadFastJwt().createVerifier({ ...common, key: pem, algorithms: ['EdDSA'] }) as Verify),
      );
    }
    // iat comes from the payload (the injected clock), so fast-jwt never reads Date.now().
    if (alg === 'EdDSA') {
      const signing = o.ed25519Keys?.[0];
      if (!signing) throw new GatewayError('INTERNAL', 'no Ed25519 signing key');
      const pem = signing.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
      this.#signer = once(() => loadFastJwt().createSigner({ key: pem, algorithm: 'EdDSA', kid: signing.kid }) as Sign);
    } else {
      const signing = o.keys[0];
      if (!signing) throw new GatewayError('INTERNAL', 'no signing key');
      this.#signer = once(() => loadFastJwt().createSigner({ key: signing.secret, algorithm: 'HS256', kid: signing.kid }) as Sign);
    }
  }

  /** Makes the signer and every verifier now, rather than on first use (a server pays fast-jwt's load at start). */
  prepare(): void {
    this.#signer();
    for (const verifier of this.#verifiers.values()) verifier();
  }

  /** The public keys that verify this gateway's access tokens, as a JWK Set (RFC 7517); empty with HS256. */
  jwks(): { keys: Record<string, string>[] } {
    return { keys: (this.#o.ed25519Keys ?? []).map((k) => ({ ...k.jwk })) };
  }

  /**
   * Throws GatewayError MALFORMED when the payload sets a claim the gateway owns, or a `sub`
   * that revoke_user_tokens could not name: a string (RFC 7519 section 4.1.2) of 1 to
   * MAX_ID characters, as its `user_id`, so that every token of a user can be revoked.
   */
  checkPayload(payload: Record<string, unknown>): void {
    const reserved = [...RESERVED, ...(this.#o.issuer ? ['iss'] : []), ...(this.#o.audience ? ['aud'] : [])];
    for (const claim of reserved) {
      if (Object.hasOwn(payload, claim)) throw new GatewayError('MALFORMED', `Field "payload" must not set the reserved claim "${claim}"`);
    }
    if (!Object.hasOwn(payload, 'sub')) return;
    const sub = payload.sub;
    if (typeof sub !== 'string' || sub.length === 0 || (sub.length > MAX_ID && codePointCount(sub) > MAX_ID)) {
      throw new GatewayError('MALFORMED', `Field "payload" must set "sub", when it sets it, to a string of 1 to ${MAX_ID} characters (a user_id)`);
    }
  }

  /** Signs an access token for `payload`, bound to a session when `binding` is set. */
  sign(payload: Record<string, unknown>, binding: string | undefined, now: number): SignedAccess {
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
    const token = this.#signer()(claims);
    // Never issue a token that verification would refuse for its length.
    if (token.length > MAX_TOKEN_LENGTH) {
      throw new GatewayError('MALFORMED', `Field "payload" is too large: the access token would exceed ${MAX_TOKEN_LENGTH} characters`);
    }
    return { token, jti, exp };
  }

  /**
   * Checks signature, algorithm, header, required claims, time, revocation and session binding.
   * Answered in place when every state it reads is in this process (memory store, cached mark).
   */
  verify(token: string, by?: Requester): MaybePromise<Verification> {
    return andThen(this.#verify(token), (v) => {
      // Only a line that is written makes the requester's logger (and, for trace, the HMAC reference).
      if (!v.valid) {
        if (this.#o.log.isLevelEnabled('debug')) logFor(by, this.#o.log).debug({ event: 'token refused', reason: v.error }, 'token refused');
      } else if (this.#o.log.isLevelEnabled('trace'))
        logFor(by, this.#o.log).trace({ event: 'token verified', jti: this.#o.logRef(String(v.payload.jti)) }, 'token verified');
      return v;
    });
  }

  /**
   * The store lost what it held, noticed at `at` (ms; a Redis restarted without persistence):
   * the revocations of the tokens issued before then are gone, so those tokens are refused,
   * with every token of the second of `at` (an `iat` cannot tell before from after the loss).
   */
  storeLost(at: number): void {
    this.#refusedThrough = Math.max(this.#refusedThrough, Math.floor(at / 1000));
  }

  /**
   * The store's contents began at `at` (ms; its marker's time, see StoreEpoch): tokens issued in
   * a second before its own are refused. A marker written after a loss is the whole second
   * after it, so the second of the loss is refused; one written at a first start is any time,
   * and the tokens of its second verify.
   */
  storeBegan(at: number): void {
    this.#refusedThrough = Math.max(this.#refusedThrough, Math.floor(at / 1000) - 1);
  }

  #verify(token: string): MaybePromise<Verification> {
    const checked = this.#checkSignature(token);
    if (!checked.valid) return checked;
    const { payload } = checked;
    const now = this.#o.clock.now();
    const claimError = timeError(payload, now, this.#o);
    if (claimError !== undefined) {
      if (claimError === 'Token expired') this.#checked().delete(checked.key);
      return { valid: false, error: claimError };
    }
    // Issued before the store lost its data, or in that second (its deny list went with it): refused.
    if ((payload.iat as number) <= this.#refusedThrough) return revoked();
    // revoke_user_tokens: one cached look-up per user, a store read only on a miss.
    const sub = payload.sub;
    if (typeof sub !== 'string') return this.#notRevoked(payload, now);
    const mark = this.#marks.cached(sub);
    if (mark !== undefined) return (payload.iat as number) <= mark ? revoked() : this.#notRevoked(payload, now);
    return this.#marks.load(sub).then((loaded) => ((payload.iat as number) <= loaded ? revoked() : this.#notRevoked(payload)));
  }

  /**
   * The checks of the state that may change at any time, made on every call: the `jti` deny list
   * and the bound session. `now`: the clock reading the token's times were checked by, when
   * taken in this same turn (the deny list is then read by it too).
   */
  #notRevoked(payload: Record<string, unknown>, now?: number): MaybePromise<Verification> {
    return andThen(this.#o.store.read(keys.denied(payload.jti as string), now), (denied): MaybePromise<Verification> => {
      if (denied !== undefined) return denied === ENDED_MARK ? sessionEnded() : revoked();
      const binding = payload[BINDING_CLAIM];
      if (binding === undefined) return { valid: true, payload };
      if (typeof binding !== 'string') return sessionEnded();
      return this.#binding.isLive(binding).then((live) => (live ? { valid: true, payload } : sessionEnded()));
    });
  }

  /**
   * Signature, algorithm, header and the claims' types: what depends on nothing but the token
   * and this node's keys, so a token that passed is remembered (by its SHA-256, never the token
   * itself) with its payload. Time, revocation and binding are checked on every call.
   */
  #checkSignature(token: string): Checked {
    if (tokenTooLong(token)) return { valid: false, error: 'Token too long' };
    const key = hashSecret(token);
    const checked = this.#checked();
    const known = checked.get(key);
    if (known !== undefined) return { valid: true, payload: known, key };
    const v = this.#checkUncached(token);
    if (!v.valid) return v;
    const shapeError = claimShapeError(v.payload);
    if (shapeError !== undefined) return { valid: false, error: shapeError };
    // Kept no longer than the token lives, on the cache's own clock (time is still checked on every call).
    const ttl = (v.payload.exp as number) * 1000 - this.#o.clock.now();
    // Shared by every later verify of this token, so frozen; its JSON text is written once.
    if (ttl > 0) checked.set(key, freezeWithJson(v.payload), { ttl: Math.min(ttl, CHECKED_TTL_MS) });
    return { valid: true, payload: v.payload, key };
  }

  #checkUncached(token: string): Verification {
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
      return { valid: true, payload: verifier()(token) };
    } catch (err) {
      const code = err instanceof loadFastJwt().TokenError ? (err as { code: string }).code : '';
      return { valid: false, error: fastJwtTexts()[code] ?? 'Invalid token' };
    }
  }

  /**
   * Denies an access token by `jti` until it expires (plus the clock tolerance); `byTime`: its
   * bound session's time ran out, and it is refused as `Session ended`.
   */
  async deny(jti: string, exp: number, now: number, byTime = false): Promise<void> {
    const ttl = exp * 1000 - now + this.#o.clockTolerance * 1000;
    if (ttl > 0) await this.#o.store.set(keys.denied(jti), byTime ? ENDED_MARK : 1, ttl);
  }

  /** Revokes an access token by `jti`, until it expires: any re-encoding of it is denied too. */
  async revoke(token: string, by?: Requester): Promise<{ revoked: true } | { error: string }> {
    // The deny marker lives until `exp`: only a sound one (claimShapeError, checked there) may set its lifetime.
    const checked = this.#checkSignature(token);
    if (!checked.valid) return { error: checked.error };
    const jti = checked.payload.jti as string;
    await this.deny(jti, checked.payload.exp as number, this.#o.clock.now());
    logFor(by, this.#o.log).info({ event: 'token revoked', jti: this.#o.logRef(jti) }, 'token revoked');
    return { revoked: true };
  }
}
