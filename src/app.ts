import { systemClock, type Clock } from './clock.js';
import type { Config } from './config.js';
import { startupSummary } from './config-view.js';
import { Gateway, type GatewayObserver } from './gateway.js';
import { createLogger, type Logger } from './log.js';
import { createStore } from './store/index.js';
import type { Store } from './store/types.js';
import { generateEd25519Key, loadEd25519Keys } from './tokens/ed25519-keys.js';

export interface App {
  gateway: Gateway;
  config: Config;
  log: Logger;
}

/** Builds the gateway a CLI command runs: logger, store, services, fixtures. */
/** `extra.store`, when given, is used instead of the one `config.store` names (embedding, tests). */
export async function createApp(config: Config, extra: { clock?: Clock; log?: Logger; observer?: GatewayObserver; store?: Store } = {}): Promise<App> {
  const log = extra.log ?? createLogger(config.logLevel, undefined, { node: config.nodeId });
  const clock = extra.clock ?? systemClock;
  // What can still refuse the configuration is read first: a bad file is the only line.
  let ed25519Keys = config.jwtAlg === 'EdDSA' ? loadEd25519Keys(config.jwtEd25519KeyFiles) : undefined;
  const fixtures = config.fixtures === undefined ? undefined : await import('./fixtures.js');
  const seeds = fixtures === undefined || config.fixtures === undefined ? undefined : await fixtures.readFixtures(config.fixtures);
  // The first line: what this process runs with, before anything it says about it.
  log.info({ event: 'starting', ...startupSummary(config) }, 'auth-gateway starting');
  if (config.unknownVariables.length > 0) {
    // Names only: a value may be a secret.
    const named = config.unknownVariables.map((v) => (v.closest === undefined ? v.name : `${v.name} (did you mean ${v.closest}?)`));
    log.warn(
      { event: 'unknown variables', variables: config.unknownVariables.map((v) => v.name) },
      `GATEWAY_* variables this gateway does not read, ignored: ${named.join(', ')}`,
    );
  }
  // With EdDSA, HS256 tokens verify only when a secret was configured (a migration window).
  if (config.jwtSecretGenerated && config.jwtAlg === 'HS256') {
    log.warn('GATEWAY_JWT_SECRET is not set: using a random secret for this process only; tokens will not verify after a restart or on other nodes');
  }
  if (ed25519Keys?.length === 0) {
    log.warn('GATEWAY_JWT_ED25519_KEY is not set: using an Ed25519 key made for this process only; tokens will not verify after a restart or on other nodes');
    ed25519Keys = [generateEd25519Key()];
  }
  const store = extra.store ?? (await createStore({ url: config.store, clock, timeoutMs: config.storeTimeoutMs, log }));
  const gateway = new Gateway({
    store,
    clock,
    log,
    nodeId: config.nodeId,
    sessionTtl: config.sessionTtl,
    sessionIdleTimeout: config.sessionIdleTimeout,
    sessionMaxLifetime: config.sessionMaxLifetime,
    accessTokenTtl: config.accessTokenTtl,
    refreshTokenTtl: config.refreshTokenTtl,
    clockTolerance: config.clockTolerance,
    jwtKeys: config.jwtSecretGenerated && config.jwtAlg === 'EdDSA' ? [] : config.jwtKeys,
    jwtAlg: config.jwtAlg,
    jwtEd25519Keys: ed25519Keys,
    jwtIssuer: config.jwtIssuer,
    jwtAudience: config.jwtAudience,
    maxInFlight: config.maxInFlight,
    maxSubscriptions: config.maxSubscriptions,
    maxSubscribersPerSession: config.maxSubscribersPerSession,
    logSalt: config.logSalt,
    observer: extra.observer,
  });
  if (config.fixtures !== undefined && fixtures !== undefined) {
    try {
      await fixtures.loadFixtures(gateway, config.fixtures, seeds);
    } catch (err) {
      // Nothing is served: the store's connections and timers must not outlive the refusal
      // (an embedding process would be kept alive, reconnecting, by a gateway it never got).
      // The seeding error is the one to report, whatever closing says.
      await gateway.close().catch(() => undefined);
      throw err;
    }
  }
  return { gateway, config, log };
}
