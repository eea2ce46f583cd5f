/**
 * Checks of the registered claims that fast-jwt leaves to us (it is told to ignore time, so
 * that the injected clock decides): their types, their ranges, and a lifetime no longer than
 * a revocation covers. The contract accepts any unexpired token signed with the key, whatever
 * lifetime it was given; but `revoke_user_tokens` keeps its mark only as long as a token it
 * refuses could live (`maxTokenLifetime`), so a token living longer would outlive its own
 * revocation. A token that passes the signature check is still refused when these fail: a
 * leaked or guessed key must not mint a token valid for years (`exp: 1e300`), and a claim of
 * the wrong type must not be skipped silently (`nbf: "9999999999"`).
 */

import { codePointCount, MAX_ID } from '../protocol/code-points.js';
import { hasProtoMember } from '../protocol/decode.js';

/** The latest NumericDate accepted: 9999-12-31T23:59:59Z, far beyond any token we issue. */
const MAX_NUMERIC_DATE = 253_402_300_799;

export interface TimePolicy {
  /** Lifetime (`exp - iat`) of the access tokens this gateway issues, seconds. */
  accessTtl: number;
  /** Lifetime of the refresh tokens this gateway issues, seconds. */
  refreshTtl: number;
  /** Seconds of leeway for clock skew (an `iat` or `nbf` ahead, a lifetime a little longer). */
  clockTolerance: number;
}

/**
 * The longest lifetime (`exp - iat`, seconds) a token may have and still verify, and so how long
 * a revocation by user (`UserMarks`) is kept after its `before`: the longer of the two TTLs (a
 * refresh family outlives its first access token), plus the clock tolerance.
 */
export const maxTokenLifetime = (o: TimePolicy): number => Math.max(o.accessTtl, o.refreshTtl) + o.clockTolerance;

const isDate = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= MAX_NUMERIC_DATE;

/**
 * Why the claims' types or ranges are wrong, or undefined: `exp` and `iat` integers (seconds,
 * RFC 7519 section 2 NumericDate, as this gateway issues them), `exp` after `iat`, `nbf` one
 * too when present, `jti` a non-empty string, `sub` when present a string of 1 to MAX_ID
 * characters (a `user_id`, so that `revoke_user_tokens` can name it), and no member named
 * `__proto__` at any depth: what the gateway itself would sign (see AccessTokens.checkPayload),
 * for tokens signed elsewhere with the key.
 */
export function claimShapeError(payload: Record<string, unknown>): string | undefined {
  const { exp, iat, nbf, jti, sub } = payload;
  if (typeof exp !== 'number' || typeof iat !== 'number' || typeof jti !== 'string') return 'Invalid claim type';
  if ((nbf !== undefined && typeof nbf !== 'number') || (sub !== undefined && typeof sub !== 'string')) return 'Invalid claim type';
  if (!isDate(exp) || !isDate(iat) || exp <= iat || (nbf !== undefined && !isDate(nbf))) return 'Invalid claim value';
  if (jti === '' || (sub !== undefined && (sub.length === 0 || (sub.length > MAX_ID && codePointCount(sub) > MAX_ID)))) return 'Invalid claim value';
  if (hasProtoMember(payload)) return 'Invalid claim value';
  return undefined;
}

/** Why the claims are not valid at `now` (ms), or undefined; `claimShapeError` must have passed. */
export function timeError(payload: Record<string, unknown>, now: number, o: TimePolicy): string | undefined {
  const exp = payload.exp as number;
  const iat = payload.iat as number;
  const nbf = payload.nbf as number | undefined;
  const tolerance = o.clockTolerance * 1000;
  if (now >= exp * 1000) return 'Token expired';
  if (iat * 1000 > now + tolerance) return 'Token issued in the future';
  if (nbf !== undefined && nbf * 1000 > now + tolerance) return 'Token not yet valid';
  if (exp - iat > maxTokenLifetime(o)) return 'Token lifetime exceeds what a revocation covers';
  return undefined;
}
