import type { JSONWebKeySet } from 'jose';
import { MAX_KEY_FILE_BYTES, readAtMost } from '../config-files.js';
import { ConfigError } from '../errors.js';

// Read with the configuration, so kept apart from key-set.ts: a process that loads the
// configuration but serves no back-channel logout (stdio) does not load jose.

/**
 * Reads a JWK Set file (GATEWAY_OIDC_JWKS); refuses a file that is not a JWK Set of public keys:
 * a private or shared key has no business here. Errors do not quote the path: the variable may
 * have been meant as a URL, with a password in it.
 */
export function readKeySetFile(path: string): JSONWebKeySet {
  let bytes: Buffer;
  try {
    bytes = readAtMost(path, MAX_KEY_FILE_BYTES);
  } catch (err) {
    throw new ConfigError(`GATEWAY_OIDC_JWKS: cannot read the file it names (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (bytes.length > MAX_KEY_FILE_BYTES)
    throw new ConfigError(`GATEWAY_OIDC_JWKS: the file it names holds more than ${MAX_KEY_FILE_BYTES} bytes: not a JWK Set`);
  const text = bytes.toString('utf8');
  let set: unknown;
  try {
    set = JSON.parse(text);
  } catch {
    throw new ConfigError('GATEWAY_OIDC_JWKS: the file it names is not JSON');
  }
  const keys = (set as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || keys.some((k) => typeof k !== 'object' || k === null)) {
    throw new ConfigError('GATEWAY_OIDC_JWKS: the file it names is not a JWK Set ({"keys": [...]})');
  }
  if (keys.some((k: Record<string, unknown>) => k.d !== undefined || k.kty === 'oct')) {
    throw new ConfigError("GATEWAY_OIDC_JWKS: the file it names holds a private or symmetric key; give the IdP's public keys only");
  }
  return set as JSONWebKeySet;
}
