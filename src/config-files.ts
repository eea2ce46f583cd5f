import { closeSync, openSync, readSync } from 'node:fs';
import { ConfigError } from './errors.js';

/**
 * The most a secret file is read of: far above any list of keys, and a bound on what a device
 * named by mistake (`/dev/urandom`, which never ends) can pour into the process at start-up.
 */
export const MAX_SECRET_FILE_BYTES = 65_536;

/** The most a key file (a PEM private key, a JWK Set) is read of, for the same reason. */
export const MAX_KEY_FILE_BYTES = 1_048_576;

/** The file's first `limit` + 1 bytes at most: more than `limit` when the file is longer. */
export function readAtMost(path: string, limit: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(limit + 1);
    let n = 0;
    while (n < buf.length) {
      const got = readSync(fd, buf, n, buf.length - n, null);
      if (got === 0) break;
      n += got;
    }
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

/**
 * Variables that may hold a secret, each of which may instead name a file with
 * `<NAME>_FILE` (as Docker and Kubernetes secrets are mounted): keys, the service and
 * introspection keys, a store URL with a password in it, the log salt.
 */
export const SECRET_VARS = [
  'GATEWAY_JWT_SECRET',
  'GATEWAY_JWT_SECRETS',
  'GATEWAY_SERVICE_KEY',
  'GATEWAY_INTROSPECTION_KEYS',
  'GATEWAY_STORE',
  'GATEWAY_LOG_SALT',
] as const;

/**
 * Returns `src` with every `<NAME>_FILE` of SECRET_VARS replaced by the file's content (one
 * line; a final newline, as `echo` and editors write, is not part of the value). Setting both
 * forms of a variable is refused, as is a file that cannot be read, is empty or has several lines.
 * Messages name the variable and the path, never the content.
 */
export function resolveFileVars(src: Record<string, string | undefined>): Record<string, string | undefined> {
  let out = src;
  for (const name of SECRET_VARS) {
    const file = src[`${name}_FILE`];
    if (file === undefined) continue;
    if (file.trim() === '') throw new ConfigError(`${name}_FILE is set but empty: unset it to use the default`);
    if (src[name] !== undefined) throw new ConfigError(`${name} and ${name}_FILE: set either one, not both`);
    let bytes: Buffer;
    try {
      bytes = readAtMost(file, MAX_SECRET_FILE_BYTES);
    } catch (err) {
      throw new ConfigError(`${name}_FILE: cannot read ${JSON.stringify(file)} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    if (bytes.length > MAX_SECRET_FILE_BYTES)
      throw new ConfigError(`${name}_FILE: ${JSON.stringify(file)} holds more than ${MAX_SECRET_FILE_BYTES} bytes: it must hold the value on one line`);
    const value = bytes.toString('utf8').replace(/\r?\n$/, '');
    if (value === '' || /[\r\n]/.test(value)) throw new ConfigError(`${name}_FILE: ${JSON.stringify(file)} must hold the value on one line`);
    if (out === src) out = { ...src };
    out[name] = value;
  }
  return out;
}
