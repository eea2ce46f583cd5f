import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type ServerOptions } from 'ws';
import { systemClock, type Clock } from '../../clock.js';
import type { Config } from '../../config.js';
import type { Gateway } from '../../gateway.js';
import type { Logger } from '../../log.js';
import { ConfigError } from '../../errors.js';
import { DrainState, type Metrics } from '../../metrics.js';
import { clientOf } from '../client-address.js';
import { responseWithHeadHook } from './answer-head.js';
import { drainServer, type DrainPlan } from './drain.js';
import { FrameBudgets } from './frame-budget.js';
import { MAX_MESSAGE_BYTES_HEADER, originCheck, ownOrigins } from './handshake.js';
import { FailedAuthThrottle } from '../auth-throttle.js';
import { Heartbeat } from './heartbeat.js';
import { quietReceivers } from './quiet-end.js';
import { connectNotImplemented, expectationFailed, onClientError, requireReadableHead, upgradeRequiringReadableHead } from '../http/client-error.js';
import { createContinueHandler, createHttpHandler, createMetricsHandler, type RouteHandler } from './http-routes.js';
import { PendingHeads } from './pending-heads.js';
import type { SocketLink } from './socket-link.js';
import { loadStaticFiles } from './static-files.js';
import { createUpgradeHandler } from './upgrade.js';

/** What the entry point hands the WebSocket transport: the assembled gateway and its companions. */
export interface WsContext {
  config: Config;
  gateway: Gateway;
  metrics: Metrics;
  log: Logger;
}

export interface WsOptions {
  /** Time for rate limits, throttles and the heartbeat (tests pass a ManualClock). */
  clock?: Clock;
  /** Ping every this many ms; a peer that has not answered by the next ping is cut. */
  heartbeatMs?: number;
  /** How long a close handshake (1012, 1008, 4001...) may take before the socket is cut. */
  closeGraceMs?: number;
  /** How long a peer whose unsent output is over GATEWAY_MAX_BUFFERED_BYTES may read none of it before it is closed (default 5 s). */
  slowReaderMs?: number;
  /** HTTP routes of other transports served on the same port, by path. */
  routes?: ReadonlyMap<string, RouteHandler>;
  /** Drain of those routes: called before the connections are cut; resolves once they have answered what they read. */
  drainRoutes?: () => Promise<void>;
  /** The failed-auth throttle, when those routes count failures against the same addresses. */
  throttle?: FailedAuthThrottle;
}

/** A running WebSocket transport. */
export interface WsServer {
  /** ws://host:port/ */
  readonly url: string;
  readonly port: number;
  readonly links: ReadonlySet<SocketLink>;
  /** The frame budgets of the browser connections open now (a row each, from their first frame). */
  readonly frameBudgets: FrameBudgets;
  /** Connections per address still sending their request head (capped at GATEWAY_MAX_CONNECTIONS_PER_ADDRESS). */
  readonly pendingHeads: PendingHeads;
  /** The origins browser upgrades may come from. */
  readonly allowedOrigins: readonly string[];
  /** http://host:port/metrics when GATEWAY_METRICS_ADDR moved it off the main port. */
  readonly metricsUrl?: string;
  /**
   * Drains (see drainServer): /readyz 503 at once, still serving for `plan.delayMs`; then new
   * connections refused and every socket closed with 1012 over `plan.windowMs`; then the
   * listeners (not the gateway).
   */
  drain(plan?: DrainPlan): Promise<void>;
}

/** Why a listen failed, as the one line of a bad setting: the variables to change, and the cause's code. */
function listenError(err: unknown, where: string, host: string, port: number): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  const why: Record<string, string> = {
    EADDRINUSE: 'the port is in use',
    EACCES: 'not permitted (a port under 1024 needs privileges)',
    EADDRNOTAVAIL: 'no such address on this machine',
    ENOTFOUND: 'the host name does not resolve',
    EAI_AGAIN: 'the host name did not resolve in time',
  };
  if (code === undefined || why[code] === undefined) return err;
  const at = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  return new ConfigError(`${where}: cannot listen on ${at}: ${why[code]} (${code})`);
}

function listen(server: Server, port: number, host: string, where: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const failed = (err: Error) => reject(listenError(err, where, host, port));
    server.once('error', failed);
    // A deep accept queue: a reconnect storm waits for a busy loop instead of losing SYNs (retried after 1 s).
    server.listen({ port, host, backlog: 4096 }, () => {
      server.off('error', failed);
      resolve();
    });
  });
}

/**
 * Starts the WebSocket transport: one `node:http` server for the probes, metrics, demo page
 * and the WebSocket upgrades (ws in `noServer` mode, so the upgrade is authenticated before
 * ws sees it). Resolves once the port is open.
 */
export async function startWs(ctx: WsContext, o: WsOptions = {}): Promise<WsServer> {
  const { config, gateway, metrics, log } = ctx;
  const clock = o.clock ?? systemClock;
  for (const name of ['heartbeatMs', 'closeGraceMs', 'slowReaderMs'] as const) {
    const v = o[name];
    if (v !== undefined && !(Number.isFinite(v) && v > 0)) throw new RangeError(`The ${name} option must be a finite, positive number.`);
  }
  const links = new Set<SocketLink>();
  /** /readyz answers 503 (the drain began). */
  let draining = false;
  /** New upgrades are refused (the drain's delay is over). */
  let closing = false;
  let isAllowedOrigin: (origin: string) => boolean = () => false;
  /** The session cookie's name: `__Host-` prefixed over https unless GATEWAY_SESSION_COOKIE names it. */
  const cookieName = (https: boolean) => (https && config.sessionCookieHostPrefix ? `__Host-${config.sessionCookie}` : config.sessionCookie);

  const files = loadStaticFiles();
  if (!files.has('/client/src/index.js')) log.warn('client module not built (dist/client): the demo page will not load; run `npm run build`');
  // From the drain's start every answer, on either listener, closes its connection once sent, so
  // that its client opens the next one elsewhere instead of reusing a connection the drain will
  // close under it.
  const closeWhileDraining = (res: ServerResponse) => {
    if (draining) res.setHeader('Connection', 'close');
  };
  // On the main port, a connection kept after its answer counts again among those owing a head.
  const beforeHead = (res: ServerResponse) => {
    closeWhileDraining(res);
    pendingHeads.beforeHead(res);
  };
  // Host is checked by requireReadableHead (Node would answer a missing one bare, and not at all on an upgrade).
  const http: Server = createServer(
    { ServerResponse: responseWithHeadHook(beforeHead), requireHostHeader: false },
    requireReadableHead(
      createHttpHandler({
        gateway,
        metrics,
        log,
        files,
        isAllowedOrigin: (origin) => isAllowedOrigin(origin),
        isDraining: () => draining,
        serveMetrics: config.metricsAddr === undefined,
        routes: o.routes,
        devLogin: config.dev ? { cookieName, isHttps: (req) => clientOf(req, config.trustedProxies).https, defaultTtl: config.sessionTtl } : undefined,
      }),
    ),
  );
  // Every field line of a head is kept (its 16 KB size bounds them): past Node's default of 2000,
  // the rest would be dropped unseen, and with them a second Host or a Transfer-Encoding that
  // makes the request one the gateway cannot read (headUnreadable).
  http.maxHeadersCount = 0;
  // Connections owing a request head, per address (a slowloris holds them).
  const pendingHeads = new PendingHeads(http, { max: config.maxConnectionsPerAddress, trusted: config.trustedProxies });
  // Answers Node would otherwise write itself, bare: requests it cannot read, Expect headers.
  http.on('clientError', onClientError);
  http.on('checkExpectation', expectationFailed);
  http.on('connect', connectNotImplemented);
  http.on('checkContinue', requireReadableHead(createContinueHandler(o.routes, (req, res) => http.emit('request', req, res))));
  quietReceivers();
  const closeGraceMs = o.closeGraceMs ?? 5_000;
  // autoPong off: the link answers pings itself, and closes a ping flood with 1008 (ws would cut it).
  // closeTimeout: ws's own timer of a closing connection cuts a peer that does not end its half
  // within the grace (one timer per close, where a second of the link's own would double them).
  // (closeTimeout is an option of ws 8.23 that @types/ws 8.18 does not declare.)
  const wsOptions: ServerOptions & { closeTimeout: number } = {
    noServer: true,
    maxPayload: 16 * config.maxMessageBytes,
    perMessageDeflate: false,
    // The gateway speaks no subprotocol: an offered one is not taken up (ws would agree to the
    // first offered, claiming a protocol the gateway does not speak).
    handleProtocols: () => false,
    clientTracking: false,
    autoPong: false,
    closeTimeout: closeGraceMs,
  };
  const wss = new WebSocketServer(wsOptions);
  // The largest frame served, said in the 101: a bridge (`connect`) answers a longer line itself,
  // with the error 12 a frame over it gets here, rather than send one past 16 times it (1009).
  wss.on('headers', (headers) => headers.push(`${MAX_MESSAGE_BYTES_HEADER}: ${config.maxMessageBytes}`));
  const frames = new FrameBudgets({
    messagesPerSecond: config.rateLimit,
    bytesPerSecond: config.rateLimitBytes,
    malformedPerMinute: config.malformedLimit,
    clock,
  });
  let sweep = () => {};
  const heartbeat = new Heartbeat<SocketLink>(clock, o.heartbeatMs ?? 30_000, () => sweep());
  const upgrades = createUpgradeHandler({
    config,
    gateway,
    clock,
    metrics,
    log,
    wss,
    heartbeat,
    links,
    slowReaderMs: o.slowReaderMs ?? 5_000,
    isAllowedOrigin: (origin) => isAllowedOrigin(origin),
    isDraining: () => closing,
    cookieName,
    throttle: o.throttle ?? new FailedAuthThrottle({ limit: config.failedAuthLimit, clock }),
    frames,
  });
  sweep = upgrades.sweep;
  http.on('upgrade', upgradeRequiringReadableHead(upgrades.onUpgrade));

  try {
    await listen(http, config.port, config.host, 'GATEWAY_HOST, GATEWAY_PORT');
  } catch (err) {
    heartbeat.stop();
    throw err;
  }
  const port = (http.address() as AddressInfo).port;
  let metricsHttp: Server | undefined;
  let metricsUrl: string | undefined;
  if (config.metricsAddr !== undefined) {
    const { host: mHost, port: mPort } = config.metricsAddr;
    const m = createServer(
      { ServerResponse: responseWithHeadHook(closeWhileDraining), requireHostHeader: false },
      requireReadableHead(createMetricsHandler(metrics, log)),
    );
    m.maxHeadersCount = 0;
    m.on('clientError', onClientError);
    m.on('checkExpectation', expectationFailed);
    m.on('connect', connectNotImplemented);
    try {
      await listen(m, mPort, mHost, 'GATEWAY_METRICS_ADDR');
    } catch (err) {
      heartbeat.stop();
      http.close();
      throw err;
    }
    metricsHttp = m;
    const at = (m.address() as AddressInfo).port;
    metricsUrl = `http://${mHost.includes(':') ? `[${mHost}]` : mHost}:${at}/metrics`;
  }
  const allowedOrigins = config.allowedOrigins ?? ownOrigins(config.host, port);
  isAllowedOrigin = originCheck(config.allowedOrigins, ownOrigins(config.host, port));
  if (allowedOrigins.length === 0) log.warn('listening on a wildcard address with no GATEWAY_ALLOWED_ORIGINS: every browser page will be refused (403)');
  if (allowedOrigins.includes('*')) log.warn('GATEWAY_ALLOWED_ORIGINS=*: pages of any site may open browser connections');

  let drained: Promise<void> | undefined;
  const drain = (plan: DrainPlan = {}) => {
    draining = true;
    metrics.drainState.set(DrainState.deregistering);
    return (drained ??= drainServer({ http, metricsHttp, links, heartbeat, log, clock, othersIdle: o.drainRoutes }, plan, () => {
      closing = true;
      metrics.drainState.set(DrainState.closing);
    }));
  };
  const host = config.host.includes(':') && !config.host.startsWith('[') ? `[${config.host}]` : config.host;
  return { url: `ws://${host}:${port}/`, port, links, frameBudgets: frames, pendingHeads, allowedOrigins, metricsUrl, drain };
}
