import { randomBytes } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import { resolveFileVars, SECRET_VARS } from './config-files.js';
import { ConfigError } from './errors.js';
import type { JSONWebKeySet } from 'jose';
import { isPublishedKey, keyWeakness } from './key-material.js';
import { readKeySetFile } from './oidc/key-set-file.js';
import { parsePostgresUrl } from './store/postgres-url.js';
import { parseRedisUrl } from './store/redis-url.js';

/** Everything the gateway can be told, validated once at start-up. */
export interface Config {
  nodeId: string;
  /** HS256 keys, the first signs; `kid` is set when configured as a list. */
  jwtKeys: { kid?: string; secret: Buffer }[];
  /** True when no secret was configured and a random one was made for this process. */
  jwtSecretGenerated: boolean;
  /** Algorithm of the access tokens this node signs (`GATEWAY_JWT_ALG`). */
  jwtAlg: 'HS256' | 'EdDSA';
  /** PEM files of Ed25519 private keys (`GATEWAY_JWT_ED25519_KEY`, comma-separated; the first signs). */
  jwtEd25519KeyFiles: string[];
  sessionTtl: number;
  sessionIdleTimeout: number;
  /** Longest a session may live from its creation through extend_session, seconds; 0: no cap. */
  sessionMaxLifetime: number;
  accessTokenTtl: number;
  refreshTokenTtl: number;
  clockTolerance: number;
  jwtIssuer?: string;
  jwtAudience?: string;
  /** Salt of the hashes standing for ids in logs; set the same on every node to correlate. */
  logSalt?: string;
  fixtures?: string;
  maxMessageBytes: number;
  logLevel: string;
  host: string;
  port: number;
  serviceKey?: string;
  /** Bearer keys that may call /oauth2/introspect and /oauth2/revoke and nothing else (resource servers). */
  introspectionKeys: string[];
  allowedOrigins?: string[];
  store: string;
  sessionCookie: string;
  /** GATEWAY_SESSION_COOKIE unset: over https the cookie is `__Host-` + `sessionCookie`. */
  sessionCookieHostPrefix: boolean;
  expiryWarning: number;
  rateLimit: number;
  /** Bytes of frames a second one browser connection may send (charged before parsing). */
  rateLimitBytes: number;
  /** Frames that fail to decode a minute before a browser connection is closed with 1008. */
  malformedLimit: number;
  /** Subscriptions and bound browser connections one session may have on this node. */
  maxSubscribersPerSession: number;
  /** Open browser connections from one client address. */
  maxConnectionsPerAddress: number;
  /** Peers whose X-Forwarded-For and X-Forwarded-Proto are believed (none when undefined). */
  trustedProxies?: BlockList;
  /** Where /metrics is served instead of the main port (`host:port`). */
  metricsAddr?: { host: string; port: number };
  /** Failed auth answers (session_invalid, token_invalid) a minute to one browser connection or address before error 1002. */
  failedAuthLimit: number;
  /** `exchange_session` requests a minute from one browser address before error 1002. */
  exchangeLimit: number;
  maxBufferedBytes: number;
  maxInFlight: number;
  maxSubscriptions: number;
  storeTimeoutMs: number;
  /** Seconds between two pings of a WebSocket connection; one unanswered for that long is cut (GATEWAY_HEARTBEAT_INTERVAL). */
  heartbeatInterval: number;
  /** After SIGTERM: how long /readyz answers 503 while everything is still served (GATEWAY_DRAIN_DELAY). */
  drainDelayMs: number;
  /** Then: the window over which WebSocket connections are closed with 1012 (GATEWAY_DRAIN_WINDOW). */
  drainWindowMs: number;
  dev: boolean;
  /** Back-channel logout (`GATEWAY_OIDC_*`): all three, or none (the route then answers 404). */
  oidc?: OidcConfig;
  /** `GATEWAY_*` variables of the environment that are not read (misspelt, most often), by name: warned about at start-up. */
  unknownVariables: UnknownVariable[];
}

/** A `GATEWAY_*` variable that is not read, with the known name within two edits of it, if any. */
export interface UnknownVariable {
  name: string;
  closest?: string;
}

/** The identity provider whose logout tokens `POST /oidc/backchannel-logout` accepts. */
export interface OidcConfig {
  /** `iss` of its logout tokens. */
  issuer: string;
  /** `aud` they must carry: this gateway's (or its application's) client id at the IdP. */
  audience: string;
  /** Its JWK Set: an http(s) URL (fetched when needed), or a file, read at start-up. */
  jwks: { url: string } | { file: string; set: JSONWebKeySet };
}

type Source = Record<string, string | undefined>;

/** Every `GATEWAY_*` variable `loadConfig` reads (a test holds it to the README's table). */
export const KNOWN_VARIABLES: readonly string[] = [
  'GATEWAY_JWT_SECRET',
  'GATEWAY_JWT_SECRETS',
  'GATEWAY_JWT_ISSUER',
  'GATEWAY_JWT_AUDIENCE',
  'GATEWAY_JWT_ALG',
  'GATEWAY_JWT_ED25519_KEY',
  'GATEWAY_CLOCK_TOLERANCE',
  'GATEWAY_SESSION_TTL',
  'GATEWAY_SESSION_IDLE_TIMEOUT',
  'GATEWAY_SESSION_MAX_LIFETIME',
  'GATEWAY_ACCESS_TOKEN_TTL',
  'GATEWAY_REFRESH_TOKEN_TTL',
  'GATEWAY_FIXTURES',
  'GATEWAY_MAX_MESSAGE_BYTES',
  'GATEWAY_MAX_IN_FLIGHT',
  'GATEWAY_MAX_SUBSCRIPTIONS',
  'GATEWAY_NODE_ID',
  'GATEWAY_LOG_LEVEL',
  'GATEWAY_LOG_SALT',
  'GATEWAY_STORE',
  'GATEWAY_HEARTBEAT_INTERVAL',
  'GATEWAY_STORE_TIMEOUT_MS',
  'GATEWAY_HOST',
  'GATEWAY_PORT',
  'GATEWAY_SERVICE_KEY',
  'GATEWAY_INTROSPECTION_KEYS',
  'GATEWAY_ALLOWED_ORIGINS',
  'GATEWAY_SESSION_COOKIE',
  'GATEWAY_EXPIRY_WARNING',
  'GATEWAY_RATE_LIMIT',
  'GATEWAY_RATE_LIMIT_BYTES',
  'GATEWAY_MALFORMED_LIMIT',
  'GATEWAY_FAILED_AUTH_LIMIT',
  'GATEWAY_MAX_SUBSCRIBERS_PER_SESSION',
  'GATEWAY_MAX_CONNECTIONS_PER_ADDRESS',
  'GATEWAY_TRUSTED_PROXIES',
  'GATEWAY_METRICS_ADDR',
  'GATEWAY_EXCHANGE_LIMIT',
  'GATEWAY_MAX_BUFFERED_BYTES',
  'GATEWAY_DEV',
  'GATEWAY_DRAIN_DELAY',
  'GATEWAY_DRAIN_WINDOW',
  'GATEWAY_OIDC_ISSUER',
  'GATEWAY_OIDC_AUDIENCE',
  'GATEWAY_OIDC_JWKS',
  ...SECRET_VARS.map((name) => `${name}_FILE`),
];

/**
 * What Kubernetes injects for a Service named "gateway" (service links): `GATEWAY_SERVICE_HOST`,
 * `GATEWAY_SERVICE_PORT[_NAME]`, `GATEWAY_PORT_<n>_<PROTO>[_PROTO|_PORT|_ADDR]`. Not ours, and
 * not a mistake. (`GATEWAY_PORT` itself, `tcp://...` there, is refused, saying so: see loadConfig.)
 */
const SERVICE_LINK = /^GATEWAY_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT_\d+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)$/;

/** Edit distance of `a` and `b` (insertions, deletions, substitutions), or `max + 1` once it exceeds `max`. */
function editDistance(a: string, b: string, max: number): number {
  if (Math.abs(a.length - b.length) > max) return max + 1;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    if (Math.min(...row) > max) return max + 1;
    prev = row;
  }
  return prev[b.length]!;
}

/**
 * The `GATEWAY_*` variables of `env` that are not read, in name order, each with the closest
 * known name within two edits. Not refused (Kubernetes service links share the prefix), but
 * warned about: a misspelt `GATEWAY_SESION_TTL` would otherwise run on the default unnoticed.
 */
export function unknownVariables(env: Source): UnknownVariable[] {
  const known = new Set(KNOWN_VARIABLES);
  return Object.keys(env)
    .filter((name) => name.startsWith('GATEWAY_') && env[name] !== undefined && !known.has(name) && !SERVICE_LINK.test(name))
    .sort()
    .map((name) => {
      let closest: string | undefined;
      let best = 3;
      for (const k of KNOWN_VARIABLES) {
        const d = editDistance(name, k, 2);
        if (d < best) [best, closest] = [d, k];
      }
      return closest === undefined ? { name } : { name, closest };
    });
}

/**
 * Refuses a variable of `names` that is set but empty (or only whitespace) rather than read it
 * as unset: it is most often one that failed to expand, and the default it would give (a
 * memory store, no service key) is not what was meant.
 */
export function refuseEmpty(src: Source, names: readonly string[] = KNOWN_VARIABLES): void {
  for (const name of names) {
    const value = src[name];
    if (value === undefined || value.trim() !== '') continue;
    // A key made per process would make every node refuse the others' tokens.
    const advice = /^GATEWAY_JWT_SECRETS?$/.test(name)
      ? 'give a key (`openssl rand -base64 32`), or unset it for a random key per process'
      : 'unset it to use the default';
    throw new ConfigError(`${name} is set but empty: ${advice}`);
  }
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
/**
 * Said instead of the value of a setting that may hold a credential (a URL with a password):
 * such a value is never quoted in an error, as no mask finds every password in a malformed URL.
 */
export const NOT_REPEATED = 'the value is not repeated: it may hold a password';

/**
 * A bad value as quoted in an error: JSON-escaped and cut short, so the message stays one line,
 * and whatever stands before an `@` masked (a mistyped origin or address may still carry a
 * `user:password@`), as is a `password=` option.
 */
function shown(value: string): string {
  const masked = value.replace(/[^\s,/@]*@/g, '***@').replace(/(password=)[^&#\s,]*/gi, '$1***');
  return JSON.stringify(masked.length > 80 ? `${masked.slice(0, 80)}...` : masked);
}

function int(src: Source, name: string, def: number, min: number, max: number, what: string): number {
  const raw = src[name];
  if (raw === undefined || raw === '') return def;
  if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(`${name} must be ${what} (got ${shown(raw)})`);
  const n = Number(raw.trim());
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new ConfigError(`${name} must be ${what} (got ${shown(raw)})`);
  return n;
}

/** A boolean switch: 1/true/0/false (or unset); anything else is refused rather than read as off. */
function flag(src: Source, name: string): boolean {
  const raw = (src[name] ?? '').trim().toLowerCase();
  if (raw === '' || raw === '0' || raw === 'false') return false;
  if (raw === '1' || raw === 'true') return true;
  throw new ConfigError(`${name} must be 1, true, 0 or false (got ${shown(src[name]!)})`);
}

/** Seconds, decimals allowed (`2.5`), as milliseconds. */
function seconds(src: Source, name: string, def: number, max: number): number {
  const raw = src[name];
  if (raw === undefined || raw === '') return def * 1000;
  const n = Number(raw.trim());
  if (!/^\d+(\.\d+)?$/.test(raw.trim()) || n > max) throw new ConfigError(`${name} must be a number of seconds from 0 to ${max} (got ${shown(raw)})`);
  return Math.round(n * 1000);
}

function str(src: Source, name: string, def: string): string {
  const raw = src[name];
  return raw === undefined || raw === '' ? def : raw;
}

/**
 * `GATEWAY_INTROSPECTION_KEYS`: comma-separated keys, each as strong as the service key and
 * distinct from it and from each other (a key shared by two roles could not be revoked from one).
 */
function introspectionKeys(raw: string | undefined, serviceKey: string | undefined): string[] {
  if (raw === undefined || raw.trim() === '') return [];
  const name = 'GATEWAY_INTROSPECTION_KEYS';
  const keys = raw.split(',').map((k) => k.trim());
  keys.forEach((key, i) => {
    if (key === '') throw new ConfigError(`${name} must be a comma-separated list of keys (key ${i + 1} is empty)`);
    checkSecret(`${name} (key ${i + 1})`, key);
    if (key === serviceKey) throw new ConfigError(`${name} (key ${i + 1}) is GATEWAY_SERVICE_KEY: give resource servers keys of their own`);
    if (keys.indexOf(key) !== i) throw new ConfigError(`${name} (key ${i + 1}) repeats key ${keys.indexOf(key) + 1}`);
  });
  return keys;
}

/**
 * A URL option whose value may be a secret, by its name: a password (`password`, libpq's
 * `sslpassword`), a token, a key, a signature or credentials (`?access_token=`, `?api_key=`,
 * `?sig=`: an identity provider may put one in its key set's URL).
 */
const SECRET_NAME = /pass|pwd|secret|token|key|sig|auth|credential/i;
/** An option of a URL given whole (a value runs to the next `&`), and of a URL quoted in a text (to a space or quote too). */
const URL_OPTION = /([?&;])([^=&#?;]*)=([^&#]*)/g;
const TEXT_OPTION = /([?&;])([^=&#?;\s"'<>]*)=([^&#\s"'<>]*)/g;

/** `text` with the value of every option whose name says it may be a secret masked. */
function maskSecretOptions(text: string, option: RegExp): string {
  return text.replace(option, (all: string, sep: string, name: string) => (SECRET_NAME.test(name) ? `${sep}${name}=***` : all));
}

/** A store URL fit for a log line: credentials masked. */
export function redactUrl(url: string): string {
  // The userinfo runs to the authority's last `@` (a password may hold an unescaped one, as
  // drivers accept); a secret given as an option is hidden too.
  return maskSecretOptions(url.replace(/\/\/[^/?#]*@/g, '//***@'), URL_OPTION);
}

/**
 * A text that may quote URLs (an error's message or stack) fit for a log line: the user and
 * password of every `scheme://` URL in it masked, and a password given as an option.
 */
export function redactUrlsIn(text: string): string {
  return maskSecretOptions(text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#"'<>]*@/gi, '$1***@'), TEXT_OPTION);
}

/**
 * Refuses key material that is not plausibly random (see key-material.ts) or that was
 * published; names the variable, never the value. The text itself is the key.
 */
export function checkSecret(name: string, secret: string): Buffer {
  const weakness = keyWeakness(secret);
  if (weakness !== undefined) throw new ConfigError(`${name} ${weakness}`);
  if (isPublishedKey(secret)) throw new ConfigError(`${name} is a published example key; make one with \`openssl rand -base64 32\``);
  return Buffer.from(secret, 'utf8');
}

function jwtKeys(src: Source): { keys: Config['jwtKeys']; generated: boolean } {
  const list = src.GATEWAY_JWT_SECRETS;
  const single = src.GATEWAY_JWT_SECRET;
  if (list && single) throw new ConfigError('GATEWAY_JWT_SECRET and GATEWAY_JWT_SECRETS: set either one, not both');
  if (list) {
    const keys: Config['jwtKeys'] = [];
    for (const part of list.split(',')) {
      const at = part.indexOf(':');
      const kid = part.slice(0, at).trim();
      if (at <= 0 || !/^[A-Za-z0-9._-]{1,64}$/.test(kid)) {
        throw new ConfigError('GATEWAY_JWT_SECRETS must be a comma-separated list of kid:secret pairs (kid: 1-64 of A-Z a-z 0-9 . _ -)');
      }
      if (keys.some((k) => k.kid === kid)) throw new ConfigError(`GATEWAY_JWT_SECRETS names kid "${kid}" twice`);
      keys.push({ kid, secret: checkSecret(`GATEWAY_JWT_SECRETS (kid "${kid}")`, part.slice(at + 1)) });
    }
    return { keys, generated: false };
  }
  if (single !== undefined) return { keys: [{ secret: checkSecret('GATEWAY_JWT_SECRET', single) }], generated: false };
  return { keys: [{ secret: randomBytes(32) }], generated: true };
}

/**
 * Refuses a key given for two roles, naming both (never the key): the service key travels in
 * every backend's Authorization header, an introspection key is a resource server's, and a
 * signing secret that is also one of them lets whoever holds that key mint tokens offline;
 * nor could either be replaced without the other. Two kids of one secret stay allowed
 * (renaming a kid keeps its key). `roles`: [what names the key, the key], in reading order.
 */
function distinctRoles(roles: readonly (readonly [name: string, key: Buffer])[]): void {
  const jwt = (name: string) => name.startsWith('GATEWAY_JWT_SECRET');
  roles.forEach(([name, key], i) => {
    const first = roles.slice(0, i).find(([other, k]) => !(jwt(other) && jwt(name)) && k.equals(key));
    if (first !== undefined) throw new ConfigError(`${name} is the same key as ${first[0]}: give each role a key of its own (\`openssl rand -base64 32\`)`);
  });
}

/**
 * The items of a comma-separated list, an empty item left out (a stray comma); undefined when
 * unset. A list of nothing but commas is refused as an empty variable is: `${A},${B}` with
 * neither set, whose default (or empty list) is not what was meant.
 */
function listOf(name: string, raw: string | undefined): string[] | undefined {
  if (raw === undefined || raw.trim() === '') return undefined;
  const list = raw
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean);
  if (list.length === 0) throw new ConfigError(`${name} is set but lists nothing (only commas): unset it to use the default`);
  return list;
}

function origins(raw: string | undefined): string[] | undefined {
  const list = listOf('GATEWAY_ALLOWED_ORIGINS', raw);
  if (list === undefined) return undefined;
  for (const o of list) {
    if (o === '*') continue;
    let url: URL;
    try {
      url = new URL(o);
    } catch {
      throw new ConfigError(`GATEWAY_ALLOWED_ORIGINS must list origins like https://app.example.com (got ${shown(o)})`);
    }
    if (url.origin !== o) throw new ConfigError(`GATEWAY_ALLOWED_ORIGINS must list bare origins, no path (got ${shown(o)})`);
  }
  return list;
}

/** `GATEWAY_TRUSTED_PROXIES`: addresses and CIDR ranges, IPv4 or IPv6, comma-separated. */
function trustedProxies(raw: string | undefined): BlockList | undefined {
  const items = listOf('GATEWAY_TRUSTED_PROXIES', raw);
  if (items === undefined) return undefined;
  const list = new BlockList();
  for (const item of items) {
    const [addr, bits, extra] = item.split('/');
    const family = isIP(addr ?? '');
    const max = family === 6 ? 128 : 32;
    if (family === 0 || extra !== undefined || (bits !== undefined && !(/^\d{1,3}$/.test(bits) && Number(bits) <= max))) {
      throw new ConfigError(`GATEWAY_TRUSTED_PROXIES must list addresses or CIDR ranges like 10.0.0.0/8 or ::1 (got ${shown(item)})`);
    }
    const type = family === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(addr!, type);
    else list.addSubnet(addr!, Number(bits), type);
  }
  return list;
}

/** `GATEWAY_HOST`: an IPv4 or IPv6 address, or a host name (RFC 1123) that resolves when listening. */
function listenHost(raw: string): string {
  const bracketed = /^\[([0-9A-Fa-f:.]+)\]$/.exec(raw.trim())?.[1];
  const host = bracketed !== undefined && isIP(bracketed) === 6 ? bracketed : raw.trim();
  const label = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/;
  if (isIP(host) !== 0 || (host.length <= 253 && host.split('.').every((l) => label.test(l)))) return host;
  throw new ConfigError(`GATEWAY_HOST must be an IP address or a host name, e.g. 127.0.0.1, :: or localhost (got ${shown(raw)})`);
}

/** `GATEWAY_METRICS_ADDR`: `host:port` (IPv6 in brackets). */
function listenAddr(name: string, raw: string | undefined): { host: string; port: number } | undefined {
  if (raw === undefined || raw.trim() === '') return undefined;
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(raw.trim());
  const port = Number(m?.[3]);
  if (m === null || port > 65_535) throw new ConfigError(`${name} must be host:port, e.g. 127.0.0.1:9464 (got ${shown(raw)})`);
  return { host: m[1] ?? m[2]!, port };
}

const OIDC_VARS = ['GATEWAY_OIDC_ISSUER', 'GATEWAY_OIDC_AUDIENCE', 'GATEWAY_OIDC_JWKS'] as const;

/** `GATEWAY_OIDC_*`: all three or none; a half-configured receiver would refuse every IdP call. */
function oidc(src: Source): OidcConfig | undefined {
  const [issuer, audience, jwks] = OIDC_VARS.map((name) => src[name]?.trim() || undefined);
  const missing = OIDC_VARS.filter((name) => !src[name]?.trim());
  if (missing.length === OIDC_VARS.length) return undefined;
  if (missing.length > 0) throw new ConfigError(`${missing.join(', ')}: back-channel logout needs ${OIDC_VARS.join(', ')} together`);
  // Anything that starts like a URL (a scheme of two letters or more) is one, `//` or not: a
  // malformed URL is refused as such rather than read as a file path.
  if (/^[a-z][a-z0-9+.-]+:/i.test(jwks!)) {
    const url = /^[a-z][a-z0-9+.-]*:\/\//i.test(jwks!) && URL.canParse(jwks!) ? new URL(jwks!) : undefined;
    if (url === undefined || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
      throw new ConfigError(`GATEWAY_OIDC_JWKS must be an https or http URL, or a file path (${NOT_REPEATED})`);
    }
    // fetch() refuses it, quoting the whole URL in its error.
    if (url.username !== '' || url.password !== '') {
      throw new ConfigError('GATEWAY_OIDC_JWKS must not hold a user name or password: a JWK Set is public, and fetch() refuses such a URL');
    }
    return { issuer: issuer!, audience: audience!, jwks: { url: jwks! } };
  }
  return { issuer: issuer!, audience: audience!, jwks: { file: jwks!, set: readKeySetFile(jwks!) } };
}

/**
 * Reads the configuration from `GATEWAY_*` variables (flags already merged in by the CLI);
 * each secret may come from a file instead (`GATEWAY_JWT_SECRET_FILE`..., see config-files.ts).
 * Throws ConfigError with one line naming the variable on the first bad value; a variable set
 * but empty is one.
 */
/**
 * A refusal of a value the caller gave as a flag or an option names that first, then the
 * variable it sets (`--session-ttl (GATEWAY_SESSION_TTL) must be ...`): whoever typed
 * `--session-ttl abc` set no GATEWAY_SESSION_TTL, and a line naming only that sends them
 * looking in the environment. `given`: [what the caller wrote, the variable it sets].
 */
export function namingGiven(message: string, given: Iterable<readonly [label: string, variable: string]>): string {
  for (const [label, variable] of given) {
    if (message.startsWith(variable) && /^[\s:,]/.test(message.slice(variable.length))) return `${label} (${variable})${message.slice(variable.length)}`;
  }
  return message;
}

export function loadConfig(env: Source): Config {
  refuseEmpty(env);
  const src = resolveFileVars(env);
  const { keys, generated } = jwtKeys(src);
  const jwtAlg = str(src, 'GATEWAY_JWT_ALG', 'HS256');
  if (jwtAlg !== 'HS256' && jwtAlg !== 'EdDSA') throw new ConfigError(`GATEWAY_JWT_ALG must be HS256 or EdDSA (got ${shown(jwtAlg)})`);
  const edFiles = listOf('GATEWAY_JWT_ED25519_KEY', src.GATEWAY_JWT_ED25519_KEY) ?? [];
  if (edFiles.length > 0 && jwtAlg !== 'EdDSA') throw new ConfigError('GATEWAY_JWT_ED25519_KEY is set but GATEWAY_JWT_ALG is not EdDSA');
  const store = str(src, 'GATEWAY_STORE', 'memory://');
  if (!/^(memory:\/\/|rediss?:\/\/.+|postgres(ql)?:\/\/.+)$/.test(store)) {
    throw new ConfigError(`GATEWAY_STORE must be a memory://, redis://, rediss://, postgres:// or postgresql:// URL (${NOT_REPEATED})`);
  }
  // The URL's own options, checked now rather than when the store opens.
  if (/^postgres/.test(store)) parsePostgresUrl(store);
  else if (/^redis/.test(store)) parseRedisUrl(store);
  // Nodes sharing a store must agree on the signing keys: a key made for one process cannot be
  // shared. What signs is what counts: with EdDSA the key files, whatever HS256 secret is set for
  // the migration window; with HS256 the secret, whatever the (then unused) key list holds.
  if (store !== 'memory://' && jwtAlg === 'EdDSA' && edFiles.length === 0) {
    throw new ConfigError('GATEWAY_STORE is a shared store: with GATEWAY_JWT_ALG=EdDSA set GATEWAY_JWT_ED25519_KEY, the same key files on every node');
  }
  if (store !== 'memory://' && jwtAlg === 'HS256' && generated) {
    throw new ConfigError('GATEWAY_STORE is a shared store: set GATEWAY_JWT_SECRET or GATEWAY_JWT_SECRETS, the same on every node');
  }
  const logLevel = str(src, 'GATEWAY_LOG_LEVEL', 'info');
  if (!LOG_LEVELS.includes(logLevel)) throw new ConfigError(`GATEWAY_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')} (got ${shown(logLevel)})`);
  const nodeId = str(src, 'GATEWAY_NODE_ID', 'gateway');
  if (!/^[\w.:-]{1,128}$/.test(nodeId)) throw new ConfigError(`GATEWAY_NODE_ID must be 1-128 of A-Z a-z 0-9 _ . : - (got ${shown(nodeId)})`);
  const cookie = str(src, 'GATEWAY_SESSION_COOKIE', 'sid');
  if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}$/.test(cookie)) throw new ConfigError(`GATEWAY_SESSION_COOKIE must be a cookie name (got ${shown(cookie)})`);
  const serviceKey = src.GATEWAY_SERVICE_KEY || undefined;
  if (serviceKey !== undefined) checkSecret('GATEWAY_SERVICE_KEY', serviceKey);
  // The salt keys the HMAC that stands for ids in logs: a guessable one lets whoever reads the
  // logs recompute the reference of a guessed user id.
  const logSalt = src.GATEWAY_LOG_SALT || undefined;
  if (logSalt !== undefined) checkSecret('GATEWAY_LOG_SALT', logSalt);
  // Kubernetes sets GATEWAY_PORT=tcp://<cluster ip>:<port> (Docker links' form) in the pods of the
  // namespace of a Service named "gateway": the operator did not set it, so the line says where it
  // comes from and how to replace it.
  if (/^(tcp|udp|sctp):\/\//i.test(src.GATEWAY_PORT?.trim() ?? '')) {
    throw new ConfigError(
      'GATEWAY_PORT holds a Kubernetes service link (a Service named "gateway" sets it to tcp://...), not a port: set GATEWAY_PORT in the container\'s env (it wins over the link), or enableServiceLinks: false in the pod spec',
    );
  }
  const introspection = introspectionKeys(src.GATEWAY_INTROSPECTION_KEYS, serviceKey);
  distinctRoles([
    ...(generated ? [] : keys.map((k) => [k.kid === undefined ? 'GATEWAY_JWT_SECRET' : `GATEWAY_JWT_SECRETS (kid "${k.kid}")`, k.secret] as const)),
    ...(serviceKey === undefined ? [] : [['GATEWAY_SERVICE_KEY', Buffer.from(serviceKey)] as const]),
    ...introspection.map((k, i) => [`GATEWAY_INTROSPECTION_KEYS (key ${i + 1})`, Buffer.from(k)] as const),
    ...(logSalt === undefined ? [] : [['GATEWAY_LOG_SALT', Buffer.from(logSalt)] as const]),
  ]);
  const secs = 'a whole number of seconds';
  return {
    nodeId,
    jwtKeys: keys,
    jwtSecretGenerated: generated,
    jwtAlg,
    jwtEd25519KeyFiles: edFiles,
    sessionTtl: int(src, 'GATEWAY_SESSION_TTL', 3600, 1, 31_536_000, `${secs} from 1 to 31536000`),
    sessionIdleTimeout: int(src, 'GATEWAY_SESSION_IDLE_TIMEOUT', 0, 0, 31_536_000, `${secs} from 0 (off) to 31536000`),
    sessionMaxLifetime: int(src, 'GATEWAY_SESSION_MAX_LIFETIME', 86_400, 0, 31_536_000, `${secs} from 0 (no cap) to 31536000`),
    accessTokenTtl: int(src, 'GATEWAY_ACCESS_TOKEN_TTL', 900, 1, 86_400, `${secs} from 1 to 86400`),
    refreshTokenTtl: int(src, 'GATEWAY_REFRESH_TOKEN_TTL', 1_209_600, 1, 31_536_000, `${secs} from 1 to 31536000`),
    clockTolerance: int(src, 'GATEWAY_CLOCK_TOLERANCE', 30, 0, 300, `${secs} from 0 to 300`),
    jwtIssuer: src.GATEWAY_JWT_ISSUER || undefined,
    jwtAudience: src.GATEWAY_JWT_AUDIENCE || undefined,
    logSalt,
    fixtures: src.GATEWAY_FIXTURES || undefined,
    maxMessageBytes: int(src, 'GATEWAY_MAX_MESSAGE_BYTES', 65_536, 256, 16_777_216, 'a number of bytes from 256 to 16777216'),
    logLevel,
    host: listenHost(str(src, 'GATEWAY_HOST', '127.0.0.1')),
    port: int(src, 'GATEWAY_PORT', 8080, 0, 65_535, 'a TCP port from 0 to 65535'),
    serviceKey,
    introspectionKeys: introspection,
    allowedOrigins: origins(src.GATEWAY_ALLOWED_ORIGINS),
    store,
    sessionCookie: cookie,
    sessionCookieHostPrefix: !src.GATEWAY_SESSION_COOKIE,
    // --dev: 10 s, so that the demo's 30 s session is warned 20 s in, not at login.
    expiryWarning: int(src, 'GATEWAY_EXPIRY_WARNING', flag(src, 'GATEWAY_DEV') ? 10 : 60, 0, 86_400, `${secs} from 0 (no warning) to 86400`),
    rateLimit: int(src, 'GATEWAY_RATE_LIMIT', 100, 1, 1_000_000, 'a number of messages per second from 1 to 1000000'),
    rateLimitBytes: int(src, 'GATEWAY_RATE_LIMIT_BYTES', 262_144, 1024, 1_073_741_824, 'a number of bytes per second from 1024 to 1073741824'),
    malformedLimit: int(src, 'GATEWAY_MALFORMED_LIMIT', 30, 1, 1_000_000, 'a number of malformed messages per minute from 1 to 1000000'),
    maxSubscribersPerSession: int(src, 'GATEWAY_MAX_SUBSCRIBERS_PER_SESSION', 1000, 1, 10_000_000, 'a number of subscribers from 1 to 10000000'),
    maxConnectionsPerAddress: int(src, 'GATEWAY_MAX_CONNECTIONS_PER_ADDRESS', 256, 1, 10_000_000, 'a number of connections from 1 to 10000000'),
    trustedProxies: trustedProxies(src.GATEWAY_TRUSTED_PROXIES),
    metricsAddr: listenAddr('GATEWAY_METRICS_ADDR', src.GATEWAY_METRICS_ADDR),
    failedAuthLimit: int(src, 'GATEWAY_FAILED_AUTH_LIMIT', 30, 1, 1_000_000, 'a number of failed answers per minute from 1 to 1000000'),
    exchangeLimit: int(src, 'GATEWAY_EXCHANGE_LIMIT', 60, 1, 1_000_000, 'a number of exchange_session requests per minute from 1 to 1000000'),
    maxBufferedBytes: int(src, 'GATEWAY_MAX_BUFFERED_BYTES', 4_194_304, 1024, 1_073_741_824, 'a number of bytes from 1024 to 1073741824'),
    maxInFlight: int(src, 'GATEWAY_MAX_IN_FLIGHT', 1024, 1, 1_000_000, 'a number of messages from 1 to 1000000'),
    maxSubscriptions: int(src, 'GATEWAY_MAX_SUBSCRIPTIONS', 10_000, 1, 10_000_000, 'a number of sessions per connection from 1 to 10000000'),
    storeTimeoutMs: int(src, 'GATEWAY_STORE_TIMEOUT_MS', 800, 10, 60_000, 'a number of milliseconds from 10 to 60000'),
    heartbeatInterval: int(src, 'GATEWAY_HEARTBEAT_INTERVAL', 30, 1, 3600, 'a number of seconds from 1 to 3600'),
    drainDelayMs: seconds(src, 'GATEWAY_DRAIN_DELAY', 5, 600),
    drainWindowMs: seconds(src, 'GATEWAY_DRAIN_WINDOW', 10, 600),
    dev: flag(src, 'GATEWAY_DEV'),
    oidc: oidc(src),
    unknownVariables: unknownVariables(env),
  };
}
