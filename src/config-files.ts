import { readFileSync } from 'node:fs';
import { ConfigError } from './errors.js';

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
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError(`${name}_FILE: cannot read ${JSON.stringify(file)} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    const value = text.replace(/\r?\n$/, '');
    if (value === '' || /[\r\n]/.test(value)) throw new ConfigError(`${name}_FILE: ${JSON.stringify(file)} must hold the value on one line`);
    if (out === src) out = { ...src };
    out[name] = value;
  }
  return out;
}
