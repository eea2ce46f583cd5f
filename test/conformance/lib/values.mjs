// @ts-check
// Builds the values a case sends: captured variables and the `$` constructors (times,
// long strings, signed, tampered and malleated tokens).
import { createHmac } from 'node:crypto';

/** @typedef {Record<string, unknown>} Vars */

/** Hash for each HMAC `alg` a test token may name; anything else is signed as HS256. */
const HMAC_HASH = /** @type {Record<string, string>} */ ({ HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' });

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** @param {unknown} v */
const b64url = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** @param {unknown} v @returns {v is Record<string, unknown>} */
export const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The value of a captured variable; naming one that was never captured is a case error.
 * @param {Vars} vars @param {string} name
 */
export function lookup(vars, name) {
  if (!Object.hasOwn(vars, name)) throw new Error(`no captured value named ${name}`);
  return vars[name];
}

/**
 * Replaces `{{name}}` in every string; a string that is only `{{name}}` becomes the
 * captured value itself (a number stays a number). `quote` turns each substituted text
 * before it is spliced in (patterns escape it so a token's dots mean dots).
 * @param {unknown} value @param {Vars} vars @param {(text: string) => string} [quote]
 * @returns {unknown}
 */
export function substitute(value, vars, quote = (t) => t) {
  if (typeof value === 'string') {
    const whole = /^\{\{(\w+)\}\}$/.exec(value);
    if (whole) {
      const v = lookup(vars, /** @type {string} */ (whole[1]));
      return typeof v === 'string' ? quote(v) : v;
    }
    return value.replace(/\{\{(\w+)\}\}/g, (_, name) => quote(String(lookup(vars, name))));
  }
  if (Array.isArray(value)) return value.map((v) => substitute(v, vars, quote));
  if (isObject(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitute(v, vars, quote)]));
  return value;
}

/**
 * A message to send: variables substituted and every `$` constructor evaluated.
 * @param {unknown} value @param {Vars} vars @param {() => number} nowMs
 * @returns {unknown}
 */
export function build(value, vars, nowMs = Date.now) {
  /** @param {unknown} v @returns {unknown} */
  const walk = (v) => {
    if (typeof v === 'string') return substitute(v, vars);
    if (Array.isArray(v)) return v.map(walk);
    if (!isObject(v)) return v;
    if ('$now' in v) return Math.floor(nowMs() / 1000) + Number(v.$now);
    if ('$repeat' in v) {
      const r = /** @type {{text: string, times: number}} */ (walk(v.$repeat));
      return String(r.text).repeat(r.times);
    }
    if ('$jwt' in v) return signJwt(/** @type {JwtSpec} */ (walk(v.$jwt)));
    if ('$tamper' in v) return tamper(/** @type {{token: string, set: Record<string, unknown>}} */ (walk(v.$tamper)));
    if ('$malleate' in v) return malleate(String(walk(v.$malleate)));
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
  };
  return walk(value);
}

/** @typedef {{header?: Record<string, unknown>, payload: unknown, secret?: string, signature?: string}} JwtSpec */

/**
 * A compact JWS: HMAC over header.payload with the header's alg, unless the case gives
 * the signature text itself (forged and unsigned tokens).
 * @param {JwtSpec} spec
 */
export function signJwt(spec) {
  const header = spec.header ?? { alg: 'HS256', typ: 'JWT' };
  const signingInput = `${b64url(header)}.${b64url(spec.payload)}`;
  if (spec.signature !== undefined) return `${signingInput}.${spec.signature}`;
  if (spec.secret === undefined) throw new Error('$jwt needs a secret or a signature');
  const hash = HMAC_HASH[String(header.alg)] ?? 'sha256';
  return `${signingInput}.${createHmac(hash, spec.secret).update(signingInput).digest('base64url')}`;
}

/**
 * The same header and signature over changed claims: a signature check must refuse it.
 * @param {{token: string, set: Record<string, unknown>}} spec
 */
export function tamper(spec) {
  const [head = '', claims = '', signature = ''] = spec.token.split('.');
  const changed = { ...JSON.parse(Buffer.from(claims, 'base64url').toString('utf8')), ...spec.set };
  return `${head}.${b64url(changed)}.${signature}`;
}

/**
 * Other text for the same signature bytes: the last base64url character of a 32-byte
 * HMAC carries 2 unused low bits, so flipping the lowest leaves the decoded bytes alone.
 * @param {string} token
 */
export function malleate(token) {
  const last = BASE64URL.indexOf(token.at(-1) ?? '');
  if (last < 0) throw new Error('$malleate needs a token ending in a base64url character');
  return token.slice(0, -1) + BASE64URL[last ^ 1];
}
