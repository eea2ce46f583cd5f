import { errors, jwtVerify, type CryptoKey, type JWTPayload, type JWTVerifyGetKey, type JWTVerifyOptions } from 'jose';
import type { Clock } from '../clock.js';
import { keySetUnavailable } from './key-set.js';

/** The member of `events` that makes a JWT a logout token (Back-Channel Logout 1.0 §2.4). */
export const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

/** Asymmetric algorithms only: `none` and HS* (a secret shared with the IdP) are never accepted. */
export const LOGOUT_TOKEN_ALGORITHMS = ['RS256', 'ES256', 'EdDSA'];

/**
 * Oldest `iat` accepted, seconds (with the clock tolerance on top). It bounds how long a `jti`
 * must be remembered: a token older than this is refused anyway, so its replay is too.
 */
export const LOGOUT_TOKEN_MAX_AGE_S = 600;

/** Why a logout token was refused: for logs and metrics, never for the caller (§2.8 answers 400 alone). */
export type LogoutRefusal =
  | 'malformed'
  | 'algorithm'
  | 'unknown_key'
  | 'unusable_key'
  | 'signature'
  | 'issuer'
  | 'audience'
  | 'expired'
  | 'too_old'
  | 'iat'
  | 'jti'
  | 'events'
  | 'no_subject'
  | 'nonce'
  | 'claims';

/** A logout token that passed every check but the replay check (the store's, see the receiver). */
export interface LogoutToken {
  jti: string;
  sid?: string;
  sub?: string;
  /** Issued at, unix seconds. */
  iat: number;
}

export type LogoutCheck =
  | { ok: true; token: LogoutToken }
  | { ok: false; refused: LogoutRefusal; cause: unknown }
  /** The IdP's key set could not be fetched: the token could not be judged (answered 503). */
  | { ok: false; unavailable: true; cause: unknown };

export interface LogoutTokenOptions {
  issuer: string;
  audience: string;
  /** The IdP's keys (see key-set.ts). */
  keys: JWTVerifyGetKey;
  clock: Clock;
  /** Seconds of leeway on `iat` and `exp` (GATEWAY_CLOCK_TOLERANCE). */
  clockTolerance: number;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const nonEmpty = (v: unknown): v is string => typeof v === 'string' && v.length > 0;

/** Maps a refusal of jose to ours. */
function refusalOf(err: unknown): LogoutRefusal | undefined {
  // jose reports an iat past maxTokenAge as JWTExpired too, naming the claim.
  if (err instanceof errors.JWTExpired) return err.claim === 'iat' ? 'too_old' : 'expired';
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'iss') return 'issuer';
    if (err.claim === 'aud') return 'audience';
    if (err.claim === 'iat') return 'iat';
    if (err.claim === 'jti') return 'jti';
    return 'claims';
  }
  if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported) return 'algorithm';
  if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) return 'unknown_key';
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'signature';
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return 'malformed';
  // A key of the set that jose will not verify with (an RSA key under 2048 bits): a TypeError
  // from the verification, never from a fetch (key-set.ts gives those a class of their own).
  if (err instanceof TypeError) return 'unusable_key';
  return undefined;
}

/**
 * jwtVerify, trying in turn each key of the set that fits the token when more than one does
 * (a token without `kid` while the IdP rotates, a set with a `kid` twice: RFC 7515 makes `kid`
 * optional and RFC 7517 does not require it unique). The first key whose signature holds
 * decides; a wrong signature or an unusable key moves on to the next.
 */
async function verifyWithSet(jwt: string, keys: JWTVerifyGetKey, options: JWTVerifyOptions): Promise<JWTPayload> {
  try {
    return (await jwtVerify(jwt, keys, options)).payload;
  } catch (err) {
    if (!(err instanceof errors.JWKSMultipleMatchingKeys)) throw err;
    let refusal: unknown = err;
    for await (const key of err as errors.JWKSMultipleMatchingKeys & AsyncIterable<CryptoKey>) {
      try {
        return (await jwtVerify(jwt, key, options)).payload;
      } catch (keyErr) {
        if (!(keyErr instanceof errors.JWSSignatureVerificationFailed || keyErr instanceof TypeError)) throw keyErr;
        // A wrong signature says more than an unusable key: it is the answer when both happened.
        if (!(refusal instanceof errors.JWSSignatureVerificationFailed)) refusal = keyErr;
      }
    }
    throw refusal;
  }
}

/**
 * The checks of OpenID Connect Back-Channel Logout 1.0 §2.6 on top of what jwtVerify does
 * (signature by a key of the set, `alg`, `iss`, `aud`, `iat`, `exp`): `jti`, `events`, `sid` or
 * `sub`, no `nonce` (which keeps an ID token from passing as a logout token).
 */
function logoutClaims(p: JWTPayload): LogoutCheck {
  const fail = (refused: LogoutRefusal): LogoutCheck => ({ ok: false, refused, cause: undefined });
  if (!nonEmpty(p.jti)) return fail('jti');
  if (!isObject(p.events) || !isObject(p.events[BACKCHANNEL_LOGOUT_EVENT])) return fail('events');
  if (p.nonce !== undefined) return fail('nonce');
  const sid = p.sid;
  if (sid !== undefined && !nonEmpty(sid)) return fail('no_subject');
  if (p.sub !== undefined && !nonEmpty(p.sub)) return fail('no_subject');
  if (sid === undefined && p.sub === undefined) return fail('no_subject');
  const token: LogoutToken = { jti: p.jti, iat: p.iat! };
  if (sid !== undefined) token.sid = sid;
  if (p.sub !== undefined) token.sub = p.sub;
  return { ok: true, token };
}

/**
 * A verifier of logout tokens: the function the receiver calls per request. Options are
 * fixed here, once; the time comes from the injected clock.
 */
export function createLogoutTokenVerifier(o: LogoutTokenOptions): (jwt: string) => Promise<LogoutCheck> {
  if (!nonEmpty(o.issuer)) throw new RangeError('The issuer option must be a non-empty string.');
  if (!nonEmpty(o.audience)) throw new RangeError('The audience option must be a non-empty string.');
  if (!(Number.isFinite(o.clockTolerance) && o.clockTolerance >= 0)) throw new RangeError('The clockTolerance option must be a finite, non-negative number.');
  return async (jwt) => {
    let payload: JWTPayload;
    try {
      payload = await verifyWithSet(jwt, o.keys, {
        algorithms: LOGOUT_TOKEN_ALGORITHMS,
        issuer: o.issuer,
        audience: o.audience,
        // maxTokenAge makes jose require `iat` and refuse one in the future beyond the tolerance.
        maxTokenAge: LOGOUT_TOKEN_MAX_AGE_S,
        clockTolerance: o.clockTolerance,
        currentDate: new Date(o.clock.now()),
      });
    } catch (err) {
      const refused = refusalOf(err);
      if (refused !== undefined) return { ok: false, refused, cause: err };
      if (keySetUnavailable(err)) return { ok: false, unavailable: true, cause: err };
      return { ok: false, refused: 'malformed', cause: err };
    }
    return logoutClaims(payload);
  };
}
