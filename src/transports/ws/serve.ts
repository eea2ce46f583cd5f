import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { createApp } from '../../app.js';
import { systemClock, type Clock, type TimerHandle } from '../../clock.js';
import { redactUrl, type Config } from '../../config.js';
import { GatewayError } from '../../errors.js';
import type { Gateway } from '../../gateway.js';
import type { Logger } from '../../log.js';
import { Metrics } from '../../metrics.js';
import type { ConnectionOptions } from '../../pipeline/connection.js';
import { BROWSER_TYPES } from '../../protocol/messages.js';
import type { Validation } from '../../sessions/session-service.js';
import type { Store } from '../../store/types.js';
import { AddressBudget } from './address-budget.js';
import { FailedAuthThrottle } from './auth-throttle.js';
import { clientOf } from './client-address.js';
import { FrameBudget } from './frame-budget.js';
import { classifyUpgrade, originCheck, ownOrigins, refuseUpgrade, type Handshake } from './handshake.js';
import { createHttpHandler, createMetricsHandler } from './http-routes.js';
import { CloseCodes, SocketLink } from './socket-link.js';
import { loadStaticFiles } from './static-files.js';

/** Into how many groups the heartbeat splits the links (one group per 100 ms at 30 s). */
const HEARTBEAT_SLICES = 300;

export interface ServerOptions {
  /** Time for sessions, rate limits, throttles and the heartbeat (tests pass a ManualClock). */
  clock?: Clock;
  log?: Logger;
  /** Ping every this many ms; a peer that has not answered by the next ping is cut. */
  heartbeatMs?: number;
  /** How long a close handshake (1001, 1008, 4001...) may take before the socket is cut. */
  closeGraceMs?: number;
  /** Add prom-client's process metrics (CPU, memory, event loop) to /metrics. */
  processMetrics?: boolean;
  /** A store to use instead of the one the configuration names (embedding, tests). */
  store?: Store;
}

/** A running gateway server. */
export interface GatewayServer {
  /** ws://host:port/ */
  readonly url: string;
  readonly port: number;
  readonly gateway: Gateway;
  readonly metrics: Metrics;
  readonly links: ReadonlySet<SocketLink>;
  /** The origins browser upgrades may come from. */
  readonly allowedOrigins: readonly string[];
  /** http://host:port/metrics when GATEWAY_METRICS_ADDR moved it off the main port. */
  readonly metricsUrl?: string;
  /** Stops accepting, answers what was read, closes every socket with 1001, closes the store. */
  drain(): Promise<void>;
}

type Accepted = Extract<Handshake, { ok: true }>;

/**
 * A module-level listener, not a closure: one made inside the upgrade handler would live as
 * long as the socket and keep that handler's whole scope (the request and its headers, the
 * handshake, the bound session's record) for the life of every connection.
 */
function destroyOnError(this: Duplex): void {
  this.destroy();
}

/**
 * Starts the WebSocket gateway: one `node:http` server for the probes, metrics, demo page
 * and the WebSocket upgrades (ws in `noServer` mode, so the upgrade is authenticated before
 * ws sees it). Resolves once the port is open.
 */
export async function startServer(config: Config, o: ServerOptions = {}): Promise<GatewayServer> {
  const clock = o.clock ?? systemClock;
  for (const name of ['heartbeatMs', 'closeGraceMs'] as const) {
    const v = o[name];
    if (v !== undefined && !(Number.isFinite(v) && v > 0)) throw new RangeError(`The ${name} option must be a finite, positive number.`);
  }
  const metrics = new Metrics({ processMetrics: o.processMetrics });
  const { gateway, log } = await createApp(config, { clock, log: o.log, observer: metrics.observer, store: o.store });
  const heartbeatMs = o.heartbeatMs ?? 30_000;
  const closeGraceMs = o.closeGraceMs ?? 5_000;
  const throttle = new FailedAuthThrottle({ limit: config.failedAuthLimit, clock });
  const exchanges = new AddressBudget({ perMinute: config.exchangeLimit, clock });
  const links = new Set<SocketLink>();
  /**
   * The heartbeat pings every link once per interval, but a slice of them at a time: links
   * are dealt round robin into HEARTBEAT_SLICES groups, and one group is pinged every
   * 1/HEARTBEAT_SLICES of the interval, so each link is still pinged once per interval (and
   * cut after a whole interval without a pong). Pinging thousands of links in one tick stalls
   * the event loop, and every request waits behind it.
   */
  const heartbeatSlices = Array.from({ length: HEARTBEAT_SLICES }, () => new Set<SocketLink>());
  let nextSlice = 0;
  let draining = false;
  let isAllowedOrigin: (origin: string) => boolean = () => false;

  const files = loadStaticFiles();
  if (!files.has('/client/src/index.js')) log.warn('client module not built (dist/client): the demo page will not load; run `npm run build`');
  const http: Server = createServer(
    createHttpHandler({
      gateway,
      metrics,
      log,
      files,
      isAllowedOrigin: (origin) => isAllowedOrigin(origin),
      isDraining: () => draining,
      serveMetrics: config.metricsAddr === undefined,
      devLogin: config.dev ? { cookieName: (https) => cookieName(https), isHttps: (req) => clientOf(req, config.trustedProxies).https, defaultTtl: config.sessionTtl } : undefined,
    }),
  );
  const wss = new WebSocketServer({ noServer: true, maxPayload: 16 * config.maxMessageBytes, perMessageDeflate: false, clientTracking: false });

  /** The session cookie's name: `__Host-` prefixed over https unless GATEWAY_SESSION_COOKIE names it. */
  const cookieName = (https: boolean) => (https && config.sessionCookieHostPrefix ? `__Host-${config.sessionCookie}` : config.sessionCookie);
  /** Open browser connections by client address (GATEWAY_MAX_CONNECTIONS_PER_ADDRESS). */
  const perAddress = new Map<string, number>();

  const browserOptions = (address: string): ConnectionOptions => {
    const guard = throttle.guard(address);
    let limited = false;
    // The message rate is charged by the link, before parsing (FrameBudget).
    return {
      allowed: BROWSER_TYPES,
      untrusted: true,
      admit: (type) => {
        if (type === 'exchange_session' && !exchanges.take(address)) {
          limited = true;
          return new GatewayError('RATE_LIMITED', `Rate limited: at most ${config.exchangeLimit} exchange_session a minute from one address`);
        }
        return guard.admit(type);
      },
      onReply: (requestType, replyType) => {
        // The refusal above is answered at once (synchronously): it is not an auth answer.
        if (limited) limited = false;
        else guard.onReply(requestType, replyType);
      },
    };
  };

  const accept = (ws: WebSocket, address: string, h: Accepted, bound: Validation | undefined) => {
    const browser = h.role === 'browser';
    const link = new SocketLink({
      gateway,
      ws,
      role: h.role,
      connection: browser ? browserOptions(address) : {},
      budget: browser
        ? new FrameBudget({ messagesPerSecond: config.rateLimit, bytesPerSecond: config.rateLimitBytes, malformedPerMinute: config.malformedLimit, clock })
        : undefined,
      maxMessageBytes: config.maxMessageBytes,
      maxBufferedBytes: config.maxBufferedBytes,
      highWaterMark: 4 * config.maxInFlight,
      closeGraceMs,
      metrics,
      log,
    });
    links.add(link);
    const slice = heartbeatSlices[nextSlice++ % HEARTBEAT_SLICES]!;
    slice.add(link);
    metrics.connections.inc({ role: h.role });
    metrics.connectionsOpened.inc({ role: h.role, bound: String(bound !== undefined) });
    if (browser) perAddress.set(address, (perAddress.get(address) ?? 0) + 1);
    void link.closed.then(() => {
      links.delete(link);
      slice.delete(link);
      metrics.connections.dec({ role: h.role });
      if (!browser) return;
      const n = (perAddress.get(address) ?? 1) - 1;
      if (n > 0) perAddress.set(address, n);
      else perAddress.delete(address);
    });
    if (bound === undefined) return;
    if (bound.valid) {
      // The id stays out of the link: bound pushes never echo it (see BOUND_DEST).
      link.bind(bound.hash, '(cookie)', bound.end, bound.endReason, config.expiryWarning * 1000);
    } else {
      // A dead cookie is a failed guess at a session id: it counts against the address.
      throttle.fail(address);
      link.close(CloseCodes.SESSION_ENDED, 'Session not found or expired', 'session_ended');
    }
  };

  const refuse = (socket: Duplex, status: number, why: string, address: string, extra: Record<string, string> = {}) => {
    metrics.upgradesRefused.inc({ status: String(status) });
    log.warn({ status, why, remote: address }, 'websocket upgrade refused');
    refuseUpgrade(socket, status, extra);
  };

  const onUpgrade = async (req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> => {
    socket.on('error', destroyOnError);
    if (draining) return refuseUpgrade(socket, 503);
    const client = clientOf(req, config.trustedProxies);
    // An address out of failed attempts gets nothing more to guess with until the window clears.
    if (throttle.blocked(client.address)) return refuse(socket, 429, 'too many failed authentications from this address', client.address, { 'Retry-After': '60' });
    const h = classifyUpgrade(req, { serviceKey: config.serviceKey, isAllowedOrigin, sessionCookie: cookieName(client.https) });
    if (!h.ok) {
      if (h.status === 401) throttle.fail(client.address);
      return refuse(socket, h.status, h.why, client.address, h.status === 401 ? { 'WWW-Authenticate': 'Bearer' } : {});
    }
    const full = () => h.role === 'browser' && (perAddress.get(client.address) ?? 0) >= config.maxConnectionsPerAddress;
    if (full()) return refuse(socket, 429, 'too many connections from this address', client.address, { 'Retry-After': '1' });
    let bound: Validation | undefined;
    if (h.role === 'browser' && h.sessionId !== undefined) {
      try {
        bound = await gateway.sessions.validate(h.sessionId);
      } catch (err) {
        // The store is away: the session can be neither trusted nor refused. Try again later.
        metrics.upgradesRefused.inc({ status: '503' });
        log.error({ err }, 'could not check the session of a bound upgrade');
        return refuseUpgrade(socket, 503, { 'Retry-After': '1' });
      }
    }
    if (draining) return refuseUpgrade(socket, 503);
    // Checked again: others from the address may have been accepted while the store answered.
    if (full()) return refuse(socket, 429, 'too many connections from this address', client.address, { 'Retry-After': '1' });
    wss.handleUpgrade(req, socket, head, (ws) => accept(ws, client.address, h, bound));
  };
  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    onUpgrade(req, socket, head).catch((err: unknown) => {
      log.error({ err }, 'websocket upgrade failed');
      socket.destroy();
    });
  });

  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(config.port, config.host, () => {
      http.off('error', reject);
      resolve();
    });
  });
  const port = (http.address() as AddressInfo).port;
  let metricsHttp: Server | undefined;
  let metricsUrl: string | undefined;
  if (config.metricsAddr !== undefined) {
    const { host: mHost, port: mPort } = config.metricsAddr;
    const m = createServer(createMetricsHandler(metrics, log));
    try {
      await new Promise<void>((resolve, reject) => {
        m.once('error', reject);
        m.listen(mPort, mHost, () => {
          m.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      http.close();
      await gateway.close();
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

  let beat: TimerHandle | undefined;
  let turn = 0;
  const tick = () => {
    for (const link of heartbeatSlices[turn]!) link.beat();
    turn = (turn + 1) % HEARTBEAT_SLICES;
    if (turn === 0) {
      throttle.sweep();
      exchanges.sweep();
    }
    beat = clock.setTimer(tick, heartbeatMs / HEARTBEAT_SLICES);
  };
  beat = clock.setTimer(tick, heartbeatMs / HEARTBEAT_SLICES);

  let drained: Promise<void> | undefined;
  const drain = () =>
    (drained ??= (async () => {
      draining = true;
      log.info({ connections: links.size }, 'draining: no new connections; answering what was read, then closing with 1001');
      const closedHttp = new Promise<void>((resolve) => http.close(() => resolve()));
      http.closeIdleConnections();
      await Promise.all([...links].map((l) => l.drain()));
      beat?.cancel();
      http.closeAllConnections();
      await closedHttp;
      if (metricsHttp !== undefined) {
        const closedMetrics = new Promise<void>((resolve) => metricsHttp!.close(() => resolve()));
        metricsHttp.closeAllConnections();
        await closedMetrics;
      }
      await gateway.close();
      log.info('drained');
    })());

  const host = config.host.includes(':') && !config.host.startsWith('[') ? `[${config.host}]` : config.host;
  return { url: `ws://${host}:${port}/`, port, gateway, metrics, links, allowedOrigins, metricsUrl, drain };
}

/** `auth-gateway serve`: runs until SIGTERM or SIGINT, then drains and exits 0. */
export async function serve(config: Config): Promise<void> {
  const server = await startServer(config);
  const log = server.gateway.log;
  if (config.dev) log.warn('--dev: POST /autosession (dev login) is ON; never use --dev in production');
  log.info({ url: server.url, http: server.url.replace(/^ws/, 'http'), metrics: server.metricsUrl, origins: server.allowedOrigins, store: redactUrl(config.store) }, 'listening');
  let signals = 0;
  const stop = (signal: string) => {
    if (++signals > 1) {
      log.warn({ signal }, 'second signal: exiting without finishing the drain');
      process.exit(1);
    }
    log.info({ signal }, 'shutting down');
    server.drain().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'drain failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
