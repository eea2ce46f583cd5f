import { readFileSync } from 'node:fs';
import { createLocalJWKSet, createRemoteJWKSet, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import { ConfigError } from '../errors.js';

/** A fetch of the IdP's key set that takes longer fails (the logout is answered 503). */
export const JWKS_FETCH_TIMEOUT_MS = 5_000;
/** A token naming a key the cached set lacks refetches the set at most this often. */
export const JWKS_COOLDOWN_MS = 60_000;
/** The cached set is fetched again once it is this old (key rotation at the IdP). */
export const JWKS_CACHE_MAX_AGE_MS = 600_000;

/** Reads a JWK Set file (GATEWAY_OIDC_JWKS); refuses a file that is not a JWK Set of public keys: a private or shared key has no business here. */
export function readKeySetFile(path: string): JSONWebKeySet {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`GATEWAY_OIDC_JWKS: cannot read ${JSON.stringify(path)} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let set: unknown;
  try {
    set = JSON.parse(text);
  } catch {
    throw new ConfigError(`GATEWAY_OIDC_JWKS: ${JSON.stringify(path)} is not JSON`);
  }
  const keys = (set as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || keys.some((k) => typeof k !== 'object' || k === null)) {
    throw new ConfigError(`GATEWAY_OIDC_JWKS: ${JSON.stringify(path)} is not a JWK Set ({"keys": [...]})`);
  }
  if (keys.some((k: Record<string, unknown>) => k.d !== undefined || k.kty === 'oct')) {
    throw new ConfigError(`GATEWAY_OIDC_JWKS: ${JSON.stringify(path)} holds a private or symmetric key; give the IdP's public keys only`);
  }
  return set as JSONWebKeySet;
}

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
