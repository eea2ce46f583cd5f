import { ConfigError } from '../errors.js';

/** Where and how to reach Redis, read from `GATEWAY_STORE`. */
export interface RedisTarget {
  /** One server, or the seed nodes of a Redis Cluster. */
  mode: 'single' | 'cluster';
  /** Connection URLs without the query: one for `single`, one per seed node for `cluster`. */
  urls: string[];
  db: number;
  /** Prefix of every key and of the event channel: several deployments can share a server. */
  namespace: string;
}

export const DEFAULT_NAMESPACE = 'auth-gateway';
const SHAPE = /^(rediss?):\/\/(?:([^@/?]*)@)?([^/?@]+)(?:\/(\d{1,2})?)?(?:\?(.*))?$/;
const HOST = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+)(?::(\d{1,5}))?$/;
const NAMESPACE = /^[A-Za-z0-9._-]{1,64}$/;
const HELP =
  'GATEWAY_STORE must be redis://[user:password@]host:port[/db][?namespace=NAME] or, for a Redis Cluster, redis://host:port,host:port,...[?namespace=NAME]';

/**
 * Parses `redis://[user:pass@]host:port[/db][?namespace=NAME&cluster=1]`.
 * Several comma-separated hosts (or `cluster=1`) mean a Redis Cluster, which has db 0 only.
 * Error texts never repeat the URL: it may hold a password.
 */
export function parseRedisUrl(raw: string): RedisTarget {
  const m = SHAPE.exec(raw);
  if (!m) throw new ConfigError(HELP);
  const [, scheme, auth, hostList, dbText, query] = m;
  // The Redis client decodes the user name and password with decodeURIComponent, which throws
  // on a `%` not followed by two hex digits: refused here, in one line, rather than at connect.
  if (auth !== undefined && !wellEncoded(auth))
    throw new ConfigError('GATEWAY_STORE: the user name or password holds a % that is not followed by two hex digits (write a % as %25)');
  const hosts = hostList!.split(',');
  for (const h of hosts) {
    const hm = HOST.exec(h);
    if (!hm || (hm[2] !== undefined && (Number(hm[2]) < 1 || Number(hm[2]) > 65_535))) throw new ConfigError(HELP);
  }
  const db = dbText === undefined ? 0 : Number(dbText);
  if (db > 15) throw new ConfigError('GATEWAY_STORE: the Redis database number must be from 0 to 15');
  let namespace = DEFAULT_NAMESPACE;
  let cluster = hosts.length > 1;
  const seen = new Set<string>();
  for (const [key, value] of new URLSearchParams(query ?? '')) {
    // Given twice, the last would win without a word: refused, as for postgres:// URLs.
    if ((key === 'namespace' || key === 'cluster') && seen.has(key)) throw new ConfigError(`GATEWAY_STORE: option "${key}" is given more than once`);
    seen.add(key);
    if (key === 'namespace' && NAMESPACE.test(value)) namespace = value;
    else if (key === 'namespace') throw new ConfigError('GATEWAY_STORE: namespace must be 1-64 of A-Z a-z 0-9 . _ -');
    else if (key === 'cluster' && (value === '1' || value === 'true')) cluster = true;
    // Not quoted: a password cut short at a `?` lands in the query.
    else throw new ConfigError('GATEWAY_STORE: the URL has an option that is not known (known: namespace, cluster)');
  }
  if (cluster && db !== 0) throw new ConfigError('GATEWAY_STORE: a Redis Cluster has database 0 only');
  const prefix = `${scheme}://${auth === undefined ? '' : `${auth}@`}`;
  const urls = cluster ? hosts.map((h) => `${prefix}${h}`) : [`${prefix}${hosts[0]}/${db}`];
  return { mode: cluster ? 'cluster' : 'single', urls, db, namespace };
}

function wellEncoded(text: string): boolean {
  try {
    decodeURIComponent(text);
    return true;
  } catch {
    return false;
  }
}
