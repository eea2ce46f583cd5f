import {
  createLocalJWKSet,
  createRemoteJWKSet,
  customFetch,
  errors,
  jwksCache,
  type ExportedJWKSCache,
  type FetchImplementation,
  type JSONWebKeySet,
  type JWTVerifyGetKey,
} from 'jose';
import { redactUrl, redactUrlsIn } from '../config.js';
import type { Logger } from '../log.js';

/** A fetch of the IdP's key set that takes longer fails (the logout is answered 503). */
export const JWKS_FETCH_TIMEOUT_MS = 5_000;
/** A token naming a key the cached set lacks refetches the set at most this often. */
export const JWKS_COOLDOWN_MS = 60_000;
/** The cached set is fetched again once it is this old (key rotation at the IdP). */
export const JWKS_CACHE_MAX_AGE_MS = 600_000;

/** After a fetch of the set failed, the next waits this long, doubled at each failure in a row up to JWKS_COOLDOWN_MS. */
export const JWKS_RETRY_MS = 1_000;

/**
 * Largest answer of the IdP's key set endpoint read, in bytes (after any content coding is
 * undone). A real set is a few KiB; a larger answer is refused as soon as its bytes pass this,
 * never held whole.
 */
export const MAX_JWKS_BYTES = 1 << 20;

/** Thrown instead of fetching while the set's last fetch failed recently (the logout is answered 503). */
export class KeySetBackoff extends Error {
  constructor(waitMs: number) {
    super(`the identity provider's key set could not be fetched; not asked again for ${Math.ceil(waitMs / 1000)} s`);
    this.name = 'KeySetBackoff';
  }
}

/**
 * fetch() of the set failed (connection refused, DNS, TLS): its TypeError, as the cause. A
 * TypeError is not read as such by itself: jose throws one too for a key of the set that it
 * will not use (an RSA key under 2048 bits), which is the token's fault, not an outage.
 */
export class KeySetFetchFailed extends Error {
  constructor(cause: TypeError) {
    super(`the identity provider's key set could not be fetched: ${cause.message}`, { cause });
    this.name = 'KeySetFetchFailed';
  }
}

/** Why an answer of the key set endpoint was refused before jose read it. */
export type KeySetAnswerRefusal = 'too_large' | 'redirect';

/** The endpoint answered, but not with a set the gateway will read: too large, or a redirect. */
export class KeySetAnswerRefused extends Error {
  readonly code: KeySetAnswerRefusal;
  constructor(code: KeySetAnswerRefusal, message: string) {
    super(message);
    this.name = 'KeySetAnswerRefused';
    this.code = code;
  }
}

/** The failures that say "the key set could not be had", not "the token is bad". */
export function keySetUnavailable(err: unknown): boolean {
  if (
    err instanceof KeySetBackoff ||
    err instanceof KeySetFetchFailed ||
    err instanceof KeySetAnswerRefused ||
    err instanceof errors.JWKSTimeout ||
    err instanceof errors.JWKSInvalid
  )
    return true;
  // jose's fetch of the set: a plain JOSEError for a status other than 200 or a body that is not JSON.
  if (err instanceof errors.JOSEError) return err.code === 'ERR_JOSE_GENERIC';
  return false;
}

/**
 * `err` with any credential of a URL its message, stack or causes quote masked (fetch()
 * quotes the URL in some errors), so that the line that logs it holds none. The error keeps
 * its class: keySetUnavailable still reads it.
 */
function withoutCredentials(err: unknown): unknown {
  let e: unknown = err;
  for (let depth = 0; e instanceof Error && depth < 8; depth++, e = e.cause) {
    try {
      e.message = redactUrlsIn(e.message);
      if (e.stack !== undefined) e.stack = redactUrlsIn(e.stack);
    } catch {
      // A frozen error is left as it is.
    }
  }
  return err;
}

/**
 * fetch() as jose asks for the set (`redirect: 'manual'`, its time limit as `signal`), with
 * two refusals of its own. A redirect is never followed: the configured URL is the one trusted
 * to name the IdP's keys, and a 3xx is a failed fetch that says so (the `Location` is not
 * quoted). The body is read up to MAX_JWKS_BYTES: a larger declared length is refused unread,
 * and a body that passes the limit as it streams is cancelled there, which closes the
 * connection.
 */
const boundedFetch: FetchImplementation = async (url, init) => {
  const res = await fetch(url, { ...init, redirect: 'manual' });
  if (res.type === 'opaqueredirect' || (res.status >= 300 && res.status < 400)) {
    void res.body?.cancel().catch(() => undefined);
    throw new KeySetAnswerRefused(
      'redirect',
      `the identity provider's key set answered ${res.status} (a redirect, not followed): set GATEWAY_OIDC_JWKS to the URL that serves the set`,
    );
  }
  // jose refuses any other status without reading the body; it is not read here either.
  if (res.status !== 200) {
    void res.body?.cancel().catch(() => undefined);
    return res;
  }
  const tooLarge = () => new KeySetAnswerRefused('too_large', `the identity provider's key set answer is larger than ${MAX_JWKS_BYTES} bytes: refused`);
  const declared = Number(res.headers.get('content-length') ?? Number.NaN);
  if (Number.isFinite(declared) && declared > MAX_JWKS_BYTES) {
    void res.body?.cancel().catch(() => undefined);
    throw tooLarge();
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (res.body !== null) {
    const reader = res.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > MAX_JWKS_BYTES) {
        void reader.cancel().catch(() => undefined);
        throw tooLarge();
      }
      chunks.push(value);
    }
  }
  return new Response(Buffer.concat(chunks, size), { status: 200 });
};

/**
 * The IdP's keys, from `GATEWAY_OIDC_JWKS`: an http(s) URL is fetched on first use, cached,
 * fetched again when stale or (at most once per cooldown) when a token names an unknown key;
 * a file was read with the configuration, once (restart to pick up a rotated key).
 *
 * jose starts its cooldown only after a fetch that succeeded: while the IdP's endpoint fails,
 * every token, a forged one included, would make one request to it. So a failed fetch is not
 * made again for JWKS_RETRY_MS, doubling at each failure in a row up to JWKS_COOLDOWN_MS.
 *
 * A fetch that fails never costs the keys already had: the last set fetched whole serves every
 * token whose key it holds, during those waits too. Otherwise a forged token naming an unknown
 * `kid`, whose refetch failed, would have the IdP's valid logouts answered 503 for the wait.
 * Only a token whose key that set lacks is answered as the failure was (503). Each failed
 * fetch is logged once, on `log` (the URL with any credential masked). `now`: the clock of the
 * waits (tests move it).
 */
export function idpKeySet(source: { url: string } | { set: JSONWebKeySet }, o: { now?: () => number; log?: Logger } = {}): JWTVerifyGetKey {
  if (!('url' in source)) return createLocalJWKSet(source.set);
  const now = o.now ?? Date.now;
  // jose writes each set it fetched whole (and found to be a JWK Set) here: the last good set.
  const fetched: Partial<ExportedJWKSCache> = {};
  const remote = createRemoteJWKSet(new URL(source.url), {
    timeoutDuration: JWKS_FETCH_TIMEOUT_MS,
    cooldownDuration: JWKS_COOLDOWN_MS,
    cacheMaxAge: JWKS_CACHE_MAX_AGE_MS,
    [customFetch]: boundedFetch,
    [jwksCache]: fetched as ExportedJWKSCache,
  });
  let lastSet: { uat: number; keys: JWTVerifyGetKey } | undefined;
  /** The key of the last good set for this token, else `unavailable` thrown. */
  const fromLastSet: (unavailable: unknown) => JWTVerifyGetKey = (unavailable) => async (header, token) => {
    if (fetched.uat === undefined || fetched.jwks === undefined) throw unavailable;
    if (lastSet?.uat !== fetched.uat) lastSet = { uat: fetched.uat, keys: createLocalJWKSet(fetched.jwks) };
    try {
      return await lastSet.keys(header, token);
    } catch (err) {
      // A refetch might have found the key: the token cannot be judged, which is not a refusal.
      throw err instanceof errors.JWKSNoMatchingKey ? unavailable : err;
    }
  };
  let failures = 0;
  let retryAt = 0;
  return async (header, token) => {
    const wait = retryAt - now();
    if (wait > 0) return fromLastSet(new KeySetBackoff(wait))(header, token);
    try {
      const key = await remote(header, token);
      failures = 0;
      return key;
    } catch (caught) {
      // Only the fetch throws a bare TypeError here (the keys are used later, by the verifier).
      const err = withoutCredentials(caught instanceof TypeError ? new KeySetFetchFailed(caught) : caught);
      if (!keySetUnavailable(err)) throw err;
      const retryMs = Math.min(JWKS_COOLDOWN_MS, JWKS_RETRY_MS * 2 ** failures);
      retryAt = now() + retryMs;
      failures = Math.min(failures + 1, 16);
      o.log?.warn(
        { event: 'jwks fetch failed', jwks: redactUrl(source.url), err, retry_in_ms: retryMs, kept: fetched.uat !== undefined },
        "the identity provider's key set could not be fetched; the keys fetched before, if any, still serve",
      );
      return fromLastSet(err)(header, token);
    }
  };
}
