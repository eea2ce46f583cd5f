import type { IncomingMessage, ServerResponse } from 'node:http';
import { createApp } from './app.js';
import { systemClock, type Clock } from './clock.js';
import { redactUrl, type Config } from './config.js';
import type { Gateway } from './gateway.js';
import type { Logger } from './log.js';
import { Metrics } from './metrics.js';
import type { takeStopSignals } from './stop-signals.js';
import { stopTracing } from './tracing.js';
import type { Store } from './store/types.js';
import { openApiDocument } from './protocol/openapi.js';
import { closeIfBody, send, sendJson } from './transports/http/http-util.js';
import { ApiFront } from './transports/http/api-front.js';
import { createOAuthRoutes } from './transports/http/oauth.js';
import { createRpcHandler } from './transports/http/rpc.js';
import { backchannelLogoutRoute } from './transports/http/backchannel-logout.js';
import { FailedAuthThrottle } from './transports/auth-throttle.js';
import type { RouteHandler } from './transports/ws/http-routes.js';
import type { DrainPlan } from './transports/ws/drain.js';
import { startWs, type WsOptions, type WsServer } from './transports/ws/serve.js';

export interface ServerOptions extends Omit<WsOptions, 'routes' | 'drainRoutes'> {
  /** A `POST /v1/rpc` body not received in full within this many ms is answered 408 (default 10 s). */
  httpBodyTimeoutMs?: number;
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
  /** Drains the transport (WsServer.drain: 503, delay, sockets closed with 1012 over the window), then closes the store. */
  drain(plan?: DrainPlan): Promise<void>;
}

/**
 * Assembles the gateway (`createApp`), its metrics, and hands them to the transports on the
 * port: WebSocket and the HTTP routes. Resolves once the port is open.
 */
export async function startServer(config: Config, o: ServerOptions = {}): Promise<GatewayServer> {
  const clock = o.clock ?? systemClock;
  const bodyTimeoutMs = o.httpBodyTimeoutMs ?? 10_000;
  if (!(Number.isFinite(bodyTimeoutMs) && bodyTimeoutMs > 0)) throw new RangeError('The httpBodyTimeoutMs option must be a finite, positive number.');
  // One tally of failed authentications per address, whether the guess came by upgrade or by HTTP.
  const throttle = new FailedAuthThrottle({ limit: config.failedAuthLimit, clock });
  const metrics = new Metrics({ processMetrics: o.processMetrics });
  const { gateway, log } = await createApp(config, { clock, log: o.log, observer: metrics.observer, store: o.store });
  metrics.watch(gateway);
  // A server's first token waits for no module load.
  gateway.tokens.prepare();
  const openApi = JSON.stringify(openApiDocument());
  const front = new ApiFront({
    serviceKey: config.serviceKey,
    introspectionKeys: config.introspectionKeys,
    throttle,
    trustedProxies: config.trustedProxies,
    maxMessageBytes: config.maxMessageBytes,
    bodyTimeoutMs,
    log,
    sampledLog: gateway.sampledLog,
  });
  const oauth = createOAuthRoutes({ gateway, front });
  const routes = new Map<string, RouteHandler>([
    ['/v1/rpc', createRpcHandler({ gateway, front, undecodable: (code) => metrics.undecodable(code) })],
    ['/oauth2/introspect', oauth.introspect],
    ['/oauth2/revoke', oauth.revoke],
    ['/oidc/backchannel-logout', backchannelLogoutRoute(config, { gateway, log, front, metrics })],
    [
      '/openapi.json',
      (req: IncomingMessage, res: ServerResponse) => {
        closeIfBody(req, res);
        if (req.method !== 'GET' && req.method !== 'HEAD') {
          res.setHeader('Allow', 'GET, HEAD');
          return sendJson(res, 405, { error: 'Method not allowed' });
        }
        // Public: it describes the protocol, which docs/protocol.md publishes anyway.
        send(res, 200, 'application/json; charset=utf-8', openApi, req.method === 'HEAD');
      },
    ],
  ]);
  let ws: WsServer;
  try {
    ws = await startWs(
      { config, gateway, metrics, log },
      {
        clock,
        heartbeatMs: o.heartbeatMs ?? config.heartbeatInterval * 1000,
        closeGraceMs: o.closeGraceMs,
        slowReaderMs: o.slowReaderMs,
        routes,
        drainRoutes: () => front.drain(),
        throttle,
      },
    );
  } catch (err) {
    await gateway.close();
    throw err;
  }
  let drained: Promise<void> | undefined;
  const drain = (plan?: DrainPlan) =>
    (drained ??= (async () => {
      await ws.drain(plan);
      await gateway.close();
      log.info('drained');
    })());
  return {
    url: ws.url,
    port: ws.port,
    links: ws.links,
    frameBudgets: ws.frameBudgets,
    pendingHeads: ws.pendingHeads,
    allowedOrigins: ws.allowedOrigins,
    metricsUrl: ws.metricsUrl,
    gateway,
    metrics,
    drain,
  };
}

/**
 * `auth-gateway serve`: runs until SIGTERM or SIGINT, then drains and exits 0. `log` and
 * `signals` are the CLI's, taken before start-up so that a signal during it is logged.
 */
export async function serve(config: Config, { log, signals }: { log: Logger; signals: ReturnType<typeof takeStopSignals> }): Promise<void> {
  const server = await startServer(config, { log });
  if (config.dev) log.warn('--dev: POST /autosession (dev login) is ON; never use --dev in production');
  if (config.serviceKey === undefined)
    log.warn('no service key (GATEWAY_SERVICE_KEY or GATEWAY_SERVICE_KEY_FILE): backends cannot connect as services; only browser connections are served');
  log.info(
    { url: server.url, http: server.url.replace(/^ws/, 'http'), metrics: server.metricsUrl, origins: server.allowedOrigins, store: redactUrl(config.store) },
    'listening',
  );
  signals.running({
    secondSignal: 'second signal: exiting without finishing the drain',
    onStop: (signal) => {
      log.info({ signal, drain_delay_ms: config.drainDelayMs, drain_window_ms: config.drainWindowMs }, 'shutting down');
      server.drain({ delayMs: config.drainDelayMs, windowMs: config.drainWindowMs }).then(
        () => stopTracing().then(() => process.exit(0)),
        (err: unknown) => {
          log.error({ err }, 'drain failed');
          process.exit(1);
        },
      );
    },
  });
}
