import { createApp } from './app.js';
import { systemClock, type Clock } from './clock.js';
import { redactUrl, type Config } from './config.js';
import type { Gateway } from './gateway.js';
import type { Logger } from './log.js';
import { Metrics } from './metrics.js';
import { stopTracing } from './tracing.js';
import type { Store } from './store/types.js';
import { startWs, type WsOptions, type WsServer } from './transports/ws/serve.js';

export interface ServerOptions extends WsOptions {
  /** Time for sessions, rate limits, throttles and the heartbeat (tests pass a ManualClock). */
  clock?: Clock;
  log?: Logger;
  /** Add prom-client's process metrics (CPU, memory, event loop) to /metrics. */
  processMetrics?: boolean;
  /** A store to use instead of the one the configuration names (embedding, tests). */
  store?: Store;
}

/** A running gateway server. */
export interface GatewayServer extends Omit<WsServer, 'drain'> {
  readonly gateway: Gateway;
  readonly metrics: Metrics;
  /** Stops accepting, answers what was read, closes every socket with 1001, closes the store. */
  drain(): Promise<void>;
}

/**
 * Assembles the gateway (`createApp`), its metrics, and hands them to the transports on the
 * port: WebSocket and the HTTP routes. Resolves once the port is open.
 */
export async function startServer(config: Config, o: ServerOptions = {}): Promise<GatewayServer> {
  const clock = o.clock ?? systemClock;
  const metrics = new Metrics({ processMetrics: o.processMetrics });
  const { gateway, log } = await createApp(config, { clock, log: o.log, observer: metrics.observer, store: o.store });
  metrics.watch(gateway);
  let ws: WsServer;
  try {
    ws = await startWs({ config, gateway, metrics, log }, { clock, heartbeatMs: o.heartbeatMs, closeGraceMs: o.closeGraceMs });
  } catch (err) {
    await gateway.close();
    throw err;
  }
  let drained: Promise<void> | undefined;
  const drain = () =>
    (drained ??= (async () => {
      await ws.drain();
      await gateway.close();
      log.info('drained');
    })());
  return {
    url: ws.url,
    port: ws.port,
    links: ws.links,
    allowedOrigins: ws.allowedOrigins,
    metricsUrl: ws.metricsUrl,
    gateway,
    metrics,
    drain,
  };
}

/** `auth-gateway serve`: runs until SIGTERM or SIGINT, then drains and exits 0. */
export async function serve(config: Config): Promise<void> {
  const server = await startServer(config);
  const log = server.gateway.log;
  if (config.dev) log.warn('--dev: POST /autosession (dev login) is ON; never use --dev in production');
  if (config.serviceKey === undefined) log.warn('no service key (GATEWAY_SERVICE_KEY or GATEWAY_SERVICE_KEY_FILE): backends cannot connect as services; only browser connections are served');
  log.info({ url: server.url, http: server.url.replace(/^ws/, 'http'), metrics: server.metricsUrl, origins: server.allowedOrigins, store: redactUrl(config.store) }, 'listening');
  let signals = 0;
  const stop = (signal: string) => {
    if (++signals > 1) {
      log.warn({ signal }, 'second signal: exiting without finishing the drain');
      process.exit(1);
    }
    log.info({ signal }, 'shutting down');
    server.drain().then(
      () => stopTracing().then(() => process.exit(0)),
      (err: unknown) => {
        log.error({ err }, 'drain failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
