import { createLocalJWKSet, createRemoteJWKSet, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';

/** A fetch of the IdP's key set that takes longer fails (the logout is answered 503). */
export const JWKS_FETCH_TIMEOUT_MS = 5_000;
/** A token naming a key the cached set lacks refetches the set at most this often. */
export const JWKS_COOLDOWN_MS = 60_000;
/** The cached set is fetched again once it is this old (key rotation at the IdP). */
export const JWKS_CACHE_MAX_AGE_MS = 600_000;

/**
 * The IdP's keys, from `GATEWAY_OIDC_JWKS`: an http(s) URL is fetched on first use, cached,
 * fetched again when stale or (at most once per cooldown) when a token names an unknown key;
 * a file was read with the configuration, once (restart to pick up a rotated key).
 */
export function idpKeySet(source: { url: string } | { set: JSONWebKeySet }): JWTVerifyGetKey {
  if ('url' in source) {
    return createRemoteJWKSet(new URL(source.url), {
      timeoutDuration: JWKS_FETCH_TIMEOUT_MS,
      cooldownDuration: JWKS_COOLDOWN_MS,
      cacheMaxAge: JWKS_CACHE_MAX_AGE_MS,
    });
  }
  return createLocalJWKSet(source.set);
}
