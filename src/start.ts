import { loadConfig, namingGiven, redactUrl } from './config.js';
import { ConfigError } from './errors.js';
import type { Logger } from './log.js';
import { startServer, type GatewayServer } from './server.js';

/**
 * Options of `startGateway`: each stands for a `GATEWAY_*` variable of the README's
 * configuration table (camelCase of the name after `GATEWAY_`) and is checked as the
 * variable would be. Options win over `env`.
 */
export interface StartOptions {
  /** Listen address (default 127.0.0.1 and 8080; port 0 picks a free one). */
  host?: string;
  port?: number;
  /** `memory://` (default), `redis://host:port[/db]` or `postgres://user[:pass]@host:port/db`. */
  store?: string;
  /** Bearer key of service connections; without one, no service role over WebSocket. */
  serviceKey?: string;
  /** HS256 secret (at least 32 bytes, base64 or hex); random per process when unset. */
  jwtSecret?: string;
  /** `kid:secret` pairs for rotation, comma-separated; the first signs. */
  jwtSecrets?: string;
  jwtAlg?: 'HS256' | 'EdDSA';
  jwtEd25519Key?: string;
  jwtIssuer?: string;
  jwtAudience?: string;
  nodeId?: string;
  /** Seconds. */
  sessionTtl?: number;
  sessionIdleTimeout?: number;
  sessionMaxLifetime?: number;
  accessTokenTtl?: number;
  refreshTokenTtl?: number;
  clockTolerance?: number;
  expiryWarning?: number;
  sessionCookie?: string;
  allowedOrigins?: string | readonly string[];
  trustedProxies?: string | readonly string[];
  metricsAddr?: string;
  maxMessageBytes?: number;
  rateLimit?: number;
  rateLimitBytes?: number;
  malformedLimit?: number;
  maxSubscribersPerSession?: number;
  maxConnectionsPerAddress?: number;
  failedAuthLimit?: number;
  exchangeLimit?: number;
  maxBufferedBytes?: number;
  maxInFlight?: number;
  maxSubscriptions?: number;
  storeTimeoutMs?: number;
  /** Seconds between two pings of a WebSocket connection. */
  heartbeatInterval?: number;
  /** Bearer keys that may call the OAuth introspection and revocation routes only. */
  introspectionKeys?: string | readonly string[];
  /**
   * What `close()` does, in seconds: `/readyz` answers 503 for `drainDelay` while everything
   * is still served, then WebSockets close with 1012 over `drainWindow`. Both 0 here unless
   * given (here or in `env`): `serve`'s defaults (5 and 10) are for a process manager's stop.
   */
  drainDelay?: number;
  drainWindow?: number;
  /** Back-channel logout: all three or none. */
  oidcIssuer?: string;
  oidcAudience?: string;
  /** An `https://` URL of the IdP's JWK Set, or a file of its public keys. */
  oidcJwks?: string;
  logLevel?: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  logSalt?: string;
  fixtures?: string;
  /** POST /autosession (dev login). Never in production. */
  dev?: boolean;
  /** The `GATEWAY_*` variables the options complete (default `process.env`; `{}` to ignore the environment). */
  env?: Record<string, string | undefined>;
  /** A pino logger of your own (default: JSON lines on stderr at `logLevel`). */
  log?: Logger;
}

/** A gateway running in this process. */
export interface RunningGateway {
  /** `ws://host:port/`: where clients connect. */
  readonly url: string;
  /** `http://host:port`: probes (/healthz, /readyz), /metrics, the demo page, `POST /v1/rpc`, `GET /openapi.json`. */
  readonly httpUrl: string;
  readonly host: string;
  readonly port: number;
  /**
   * Drains, then closes the store: `/readyz` 503 over `drainDelay`, then it stops accepting,
   * answers what was read and closes every socket with 1012 over `drainWindow` (both 0 by default).
   */
  close(): Promise<void>;
}

/** `jwtEd25519Key` -> `GATEWAY_JWT_ED25519_KEY`. */
function variableOf(option: string): string {
  return `GATEWAY_${option.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()}`;
}

/** Every option, by name; a test holds it to the variables `loadConfig` reads. */
export const START_OPTIONS: ReadonlySet<string> = new Set([
  'host',
  'port',
  'store',
  'serviceKey',
  'jwtSecret',
  'jwtSecrets',
  'jwtAlg',
  'jwtEd25519Key',
  'jwtIssuer',
  'jwtAudience',
  'nodeId',
  'sessionTtl',
  'sessionIdleTimeout',
  'sessionMaxLifetime',
  'accessTokenTtl',
  'refreshTokenTtl',
  'clockTolerance',
  'expiryWarning',
  'sessionCookie',
  'allowedOrigins',
  'trustedProxies',
  'metricsAddr',
  'maxMessageBytes',
  'rateLimit',
  'rateLimitBytes',
  'malformedLimit',
  'maxSubscribersPerSession',
  'maxConnectionsPerAddress',
  'failedAuthLimit',
  'exchangeLimit',
  'maxBufferedBytes',
  'maxInFlight',
  'maxSubscriptions',
  'storeTimeoutMs',
  'heartbeatInterval',
  'introspectionKeys',
  'drainDelay',
  'drainWindow',
  'oidcIssuer',
  'oidcAudience',
  'oidcJwks',
  'logLevel',
  'logSalt',
  'fixtures',
  'dev',
] satisfies (keyof StartOptions)[]);

/**
 * Starts the WebSocket gateway inside this process, as `auth-gateway serve` does, and
 * resolves once it listens. A bad option rejects with a ConfigError naming it.
 */
export async function startGateway(options: StartOptions = {}): Promise<RunningGateway> {
  const { env = process.env, log, ...rest } = options;
  const vars: Record<string, string | undefined> = { ...env };
  for (const [name, value] of Object.entries(rest)) {
    if (!START_OPTIONS.has(name)) throw new ConfigError(`Unknown option "${name}" of startGateway`);
    if (value === undefined) continue;
    if (name === 'dev') vars.GATEWAY_DEV = value === true ? '1' : '0';
    else vars[variableOf(name)] = Array.isArray(value) ? value.join(',') : String(value);
    // The option wins over its variable in either form, as a flag does: a `*_FILE` of the
    // environment (a mounted secret) would otherwise be refused as set beside it.
    delete vars[`${variableOf(name)}_FILE`];
  }
  vars.GATEWAY_DRAIN_DELAY ??= '0';
  vars.GATEWAY_DRAIN_WINDOW ??= '0';
  let config;
  try {
    config = loadConfig(vars);
  } catch (err) {
    throw err instanceof ConfigError
      ? new ConfigError(
          namingGiven(
            err.message,
            Object.keys(rest)
              .filter((name) => name !== 'dev')
              .map((name) => [name, variableOf(name)] as const),
          ),
        )
      : err;
  }
  const server: GatewayServer = await startServer(config, { log });
  const host = config.host.includes(':') && !config.host.startsWith('[') ? `[${config.host}]` : config.host;
  const gatewayLog = server.gateway.log;
  if (config.dev) gatewayLog.warn('dev: POST /autosession (dev login) is ON; never use it in production');
  gatewayLog.info({ url: server.url, store: redactUrl(config.store) }, 'listening');
  return {
    url: server.url,
    httpUrl: `http://${host}:${server.port}`,
    host: config.host,
    port: server.port,
    close: () => server.drain({ delayMs: config.drainDelayMs, windowMs: config.drainWindowMs }),
  };
}
