/**
 * Structural checks a JWT must pass before any cryptography (RFC 8725 section 3):
 * three canonical base64url segments, a header we fully understand, a bounded length.
 */

import { codePointCount } from '../protocol/code-points.js';

export const MAX_TOKEN_LENGTH = 8192;

/**
 * Over MAX_TOKEN_LENGTH characters, counted as code points as the protocol counts every
 * length (an emoji is one). Only a token long in UTF-16 units is counted: a real token is
 * ASCII, so the common case is one comparison.
 */
export function tokenTooLong(token: string): boolean {
  return token.length > MAX_TOKEN_LENGTH && codePointCount(token) > MAX_TOKEN_LENGTH;
}

const SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/**
 * Header parameters that would make the token choose its own key or semantics: keys and
 * key URLs (RFC 8725 section 3.10: never fetch or trust a key the token names), `crit`
 * extensions we do not implement, compression, unencoded payloads, encryption, nested
 * tokens (`cty`).
 */
const FORBIDDEN_HEADERS = ['crit', 'jku', 'jwk', 'x5u', 'x5c', 'x5t', 'x5t#S256', 'zip', 'b64', 'enc', 'cty'];

export interface JwtHeader {
  alg: string;
  typ?: string;
  kid?: string;
}

/**
 * True when `typ` names the media type application/jwt: media type names are case-insensitive
 * and a `typ` without a `/` has `application/` implied (RFC 7515 section 4.1.9, RFC 7519
 * section 5.1), so `JWT`, `jwt` and `application/jwt` are one type. Any other type (`at+jwt`,
 * `JWS+JOSE`) is another kind of token and is refused (RFC 8725 section 3.11).
 */
function isJwtType(typ: unknown): boolean {
  if (typeof typ !== 'string') return false;
  const t = typ.toLowerCase();
  return t === 'jwt' || t === 'application/jwt';
}

export type ShapeResult = { ok: true; header: JwtHeader; signature: string } | { ok: false; error: string };

/**
 * Canonical base64url (RFC 7515 section 2): no padding, and the unused low bits of the
 * last character are zero, so one signature has exactly one spelling.
 */
function canonical(segment: string): boolean {
  const rem = segment.length % 4;
  if (rem === 1) return false;
  if (rem === 0) return true;
  const last = segment.charCodeAt(segment.length - 1);
  const v = last >= 65 && last <= 90 ? last - 65 : last >= 97 && last <= 122 ? last - 71 : last >= 48 && last <= 57 ? last + 4 : last === 45 ? 62 : 63;
  return rem === 2 ? (v & 0x0f) === 0 : (v & 0x03) === 0;
}

/** Checks the token's form and header; returns the header for key selection. */
export function checkShape(token: string): ShapeResult {
  if (tokenTooLong(token)) return { ok: false, error: 'Token too long' };
  if (!SHAPE.test(token)) return { ok: false, error: 'Malformed token' };
  const dot1 = token.indexOf('.');
  const dot2 = token.indexOf('.', dot1 + 1);
  const h = token.slice(0, dot1);
  const p = token.slice(dot1 + 1, dot2);
  const signature = token.slice(dot2 + 1);
  if (signature.length === 0) return { ok: false, error: 'Missing signature' };
  if (!canonical(h) || !canonical(p) || !canonical(signature)) return { ok: false, error: 'Malformed token: non-canonical base64url' };
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
  } catch {
    return { ok: false, error: 'Malformed token: header is not JSON' };
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) return { ok: false, error: 'Malformed token: header is not an object' };
  const hd = header as Record<string, unknown>;
  if (typeof hd.alg !== 'string') return { ok: false, error: 'Malformed token: no algorithm' };
  for (const name of FORBIDDEN_HEADERS) {
    if (name in hd) return { ok: false, error: `Header parameter "${name}" not allowed` };
  }
  if (hd.typ !== undefined && !isJwtType(hd.typ)) return { ok: false, error: 'Token type not allowed' };
  if (hd.kid !== undefined && typeof hd.kid !== 'string') return { ok: false, error: 'Malformed token: kid is not a string' };
  return { ok: true, header: hd as unknown as JwtHeader, signature };
}
