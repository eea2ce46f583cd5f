import { redactUrl, type Config } from './config.js';
import { VERSION } from './version.js';

/** `kid` of each HS256 key, `(no kid)` for a single unnamed key: names, never the keys. */
function keyIds(config: Config): string[] {
  return config.jwtKeys.map((k) => k.kid ?? '(no kid)');
}

/**
 * The effective configuration with every secret redacted (keys by kid, the service key and
 * log salt as set or not, the store URL without its password): `auth-gateway config`.
 */
export function effectiveConfig(config: Config): Record<string, unknown> {
  return {
    version: VERSION,
    node_id: config.nodeId,
    store: redactUrl(config.store),
    store_timeout_ms: config.storeTimeoutMs,
    listen: { host: config.host, port: config.port },
    metrics_addr:
      config.metricsAddr === undefined
        ? null
        : `${config.metricsAddr.host.includes(':') ? `[${config.metricsAddr.host}]` : config.metricsAddr.host}:${config.metricsAddr.port}`,
    jwt: {
      alg: config.jwtAlg,
      hs256_key_ids: config.jwtSecretGenerated ? [] : keyIds(config),
      hs256_secret: config.jwtSecretGenerated ? 'random per process (not set)' : 'set',
      ed25519_key_files: config.jwtEd25519KeyFiles,
      issuer: config.jwtIssuer ?? null,
      audience: config.jwtAudience ?? null,
    },
    lifetimes: {
      session_ttl: config.sessionTtl,
      session_idle_timeout: config.sessionIdleTimeout,
      session_max_lifetime: config.sessionMaxLifetime,
      access_token_ttl: config.accessTokenTtl,
      refresh_token_ttl: config.refreshTokenTtl,
      clock_tolerance: config.clockTolerance,
      expiry_warning: config.expiryWarning,
    },
    limits: {
      max_message_bytes: config.maxMessageBytes,
      max_in_flight: config.maxInFlight,
      max_subscriptions: config.maxSubscriptions,
      max_subscribers_per_session: config.maxSubscribersPerSession,
      max_connections_per_address: config.maxConnectionsPerAddress,
      max_buffered_bytes: config.maxBufferedBytes,
      rate_limit: config.rateLimit,
      rate_limit_bytes: config.rateLimitBytes,
      malformed_limit: config.malformedLimit,
      failed_auth_limit: config.failedAuthLimit,
      exchange_limit: config.exchangeLimit,
    },
    heartbeat_interval: config.heartbeatInterval,
    drain: { delay_ms: config.drainDelayMs, window_ms: config.drainWindowMs },
    log_level: config.logLevel,
    log_salt: config.logSalt === undefined ? 'random per process (not set)' : 'set',
    service_key: config.serviceKey === undefined ? 'not set' : 'set',
    introspection_keys: config.introspectionKeys.length,
    allowed_origins: config.allowedOrigins ?? null,
    trusted_proxies: config.trustedProxies === undefined ? null : config.trustedProxies.rules,
    session_cookie: config.sessionCookie,
    fixtures: config.fixtures ?? null,
    backchannel_logout:
      config.oidc === undefined
        ? null
        : {
            issuer: config.oidc.issuer,
            audience: config.oidc.audience,
            jwks: 'url' in config.oidc.jwks ? redactUrl(config.oidc.jwks.url) : config.oidc.jwks.file,
          },
    dev: config.dev,
  };
}

/** The fields of the start-up line: what an operator checks first after a deploy. */
export function startupSummary(config: Config): Record<string, unknown> {
  const c = effectiveConfig(config);
  return {
    version: c.version,
    node_id: c.node_id,
    store: c.store,
    jwt: c.jwt,
    lifetimes: c.lifetimes,
    limits: c.limits,
    log_level: c.log_level,
    service_key: config.serviceKey !== undefined,
    introspection_keys: config.introspectionKeys.length,
    dev: config.dev,
  };
}
