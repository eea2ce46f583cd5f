import { ConfigError } from '../errors.js';

/** Where and how to reach PostgreSQL, read from `GATEWAY_STORE`. */
export interface PostgresTarget {
  /** For the `pg` driver: the URL without the gateway's own options (sslmode and the like kept). */
  connectionString: string;
  /** The schema that holds every table, and names the event channel: several deployments can share a database. */
  schema: string;
}

export const DEFAULT_SCHEMA = 'auth_gateway';
/** A lower-case SQL identifier: it cannot hold a quote, and quoted (postgres-schema.ts) it may be a reserved word (`user`). */
const SCHEMA = /^[a-z_][a-z0-9_]{0,47}$/;
/** Options the `pg` driver reads from the URL itself. */
const DRIVER_OPTIONS = new Set(['sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'application_name']);
const KNOWN = ['schema', ...DRIVER_OPTIONS].join(', ');
/** The modes the `pg` driver acts on; it ignores any other value (TLS on, certificate checked, whatever was meant). */
const SSL_MODES = ['disable', 'prefer', 'require', 'verify-ca', 'verify-full', 'no-verify'];
const HELP = 'GATEWAY_STORE must be postgres://[user[:password]@]host[:port]/database[?schema=NAME&sslmode=MODE]';

/**
 * Parses `postgres://` or `postgresql://` URLs. `schema` is the gateway's own option;
 * `sslmode` (and the certificate paths) go to the driver unchanged.
 * Error texts never repeat the URL: it may hold a password.
 */
export function parsePostgresUrl(raw: string): PostgresTarget {
  if (!/^postgres(ql)?:\/\/[^/?#]+\/[^/?#]+(\?[^#]*)?$/.test(raw)) throw new ConfigError(HELP);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(HELP);
  }
  if (url.hostname === '') throw new ConfigError(HELP);
  let schema = DEFAULT_SCHEMA;
  const kept = new URLSearchParams();
  const seen = new Set<string>();
  for (const [key, value] of url.searchParams) {
    // An unknown option is not quoted: a password cut short at a `?` lands in the query.
    if (key !== 'schema' && !DRIVER_OPTIONS.has(key)) throw new ConfigError(`GATEWAY_STORE: the URL has an option that is not known (known: ${KNOWN})`);
    if (seen.has(key)) throw new ConfigError(`GATEWAY_STORE: option "${key}" is given more than once`);
    seen.add(key);
    // PostgreSQL reserves names beginning with pg_ for its own schemas: CREATE SCHEMA refuses them.
    if (key === 'schema' && SCHEMA.test(value) && !value.startsWith('pg_')) schema = value;
    else if (key === 'schema') throw new ConfigError('GATEWAY_STORE: schema must be 1-48 of a-z 0-9 _, not starting with a digit or pg_');
    else if (key === 'sslmode' && !SSL_MODES.includes(value)) throw new ConfigError(`GATEWAY_STORE: sslmode must be one of ${SSL_MODES.join(', ')}`);
    else kept.append(key, value);
  }
  const query = kept.toString();
  const connectionString = `${raw.split('?')[0]!}${query === '' ? '' : `?${query}`}`;
  return { connectionString, schema };
}
