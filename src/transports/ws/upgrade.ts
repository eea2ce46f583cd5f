import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocket, WebSocketServer } from 'ws';
import type { Clock } from '../../clock.js';
import type { Config } from '../../config.js';
import type { Gateway } from '../../gateway.js';
import type { Logger } from '../../log.js';
import type { Metrics } from '../../metrics.js';
import { bindSession, checkCookie, type CookieSession } from '../../pipeline/bound-session.js';
import type { ConnectionOptions } from '../../pipeline/connection.js';
import { AddressBudget } from './address-budget.js';
import { FailedAuthThrottle } from '../auth-throttle.js';
import { clientOf, type Client } from '../client-address.js';
import { BrowserPolicy, type BrowserLimits } from './browser-policy.js';
import type { FrameBudgets } from './frame-budget.js';
import { answerRawAndClose } from '../http/http-util.js';
import { brokenHandshake, classifyUpgrade, refuseUpgrade, type Handshake } from './handshake.js';
import type { Heartbeat } from './heartbeat.js';
import { quietSocket } from './quiet-end.js';
import { CloseCodes, SocketLink } from './socket-link.js';

type Accepted = Extract<Handshake, { ok: true }>;

export interface UpgradeContext {
  config: Config;
  gateway: Gateway;
  clock: Clock;
  metrics: Metrics;
  log: Logger;
  wss: WebSocketServer;
  heartbeat: Heartbeat<SocketLink>;
  links: Set<SocketLink>;
  slowReaderMs: number;
  isAllowedOrigin: (origin: string) => boolean;
  isDraining: () => boolean;
  /** The session cookie's name over https or not. */
  cookieName: (https: boolean) => string;
  /** Failed authentications per address (shared with the HTTP API routes). */
  throttle: FailedAuthThrottle;
  /** The frame budgets of browser connections (a row each). */
  frames: FrameBudgets;
}

/**
 * A module-level listener, not a closure: one made inside the upgrade handler would live as
 * long as the socket and keep that handler's whole scope (the request and its headers, the
 * handshake, the bound session's record) for the life of every connection.
 */
function destroyOnError(this: Duplex): void {
  this.destroy();
}

/**
 * The `upgrade` listener: authenticates before ws sees the request (service key, origin,
 * the cookie's session), enforces the per-address limits, and maps each accepted socket
 * onto a SocketLink. `sweep` clears the per-address tables' stale entries.
 */
export function createUpgradeHandler(ctx: UpgradeContext): { onUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void; sweep: () => void } {
  const { config, gateway, clock, metrics, log } = ctx;
  /** Wrong keys (upgrades and the HTTP API share it): past the limit, every key is refused, the right one included. */
  const throttle = ctx.throttle;
  /**
   * Guesses at session ids and tokens by browsers (dead cookies, `session_invalid` and
   * `token_invalid` answers): past the limit, browsers from the address are refused. A
   * request with a key is judged by the key tally alone: browsers that fail from an address
   * never lock out a backend behind it.
   */
  const guesses = new FailedAuthThrottle({ limit: config.failedAuthLimit, clock });
  const exchanges = new AddressBudget({ perMinute: config.exchangeLimit, clock });
  /** Open browser connections, and upgrades whose cookie is being checked, by client address (GATEWAY_MAX_CONNECTIONS_PER_ADDRESS). */
  const perAddress = new Map<string, number>();

  const limits: BrowserLimits = {
    throttle: guesses,
    exchanges,
    exchangeLimit: config.exchangeLimit,
    log,
    lines: gateway.abuseLog,
  };
  /** One browser connection (or upgrade being checked) of `address` is gone. */
  const leave = (address: string) => {
    const n = (perAddress.get(address) ?? 1) - 1;
    if (n > 0) perAddress.set(address, n);
    else perAddress.delete(address);
  };
  const serviceOptions = (address: string): ConnectionOptions => ({ logFields: { transport: 'ws', role: 'service', remote: address } });

  const accept = (ws: WebSocket, { address, key }: Client, role: Accepted['role'], bound: CookieSession | undefined) => {
    const browser = role === 'browser';
    const policy = browser ? new BrowserPolicy(limits, address, key) : undefined;
    const link = new SocketLink({
      gateway,
      ws,
      role,
      connection: policy ?? serviceOptions(address),
      budget: browser ? ctx.frames : undefined,
      maxMessageBytes: config.maxMessageBytes,
      maxBufferedBytes: config.maxBufferedBytes,
      highWaterMark: 4 * config.maxInFlight,
      slowReaderMs: ctx.slowReaderMs,
      metrics,
      log,
    });
    ctx.links.add(link);
    const stopBeating = ctx.heartbeat.add(link);
    metrics.connections.inc({ role });
    metrics.connectionsOpened.inc({ role, bound: String(bound !== undefined) });
    if (browser) perAddress.set(key, (perAddress.get(key) ?? 0) + 1);
    let boundCounted = false;
    void link.closed.then(() => {
      ctx.links.delete(link);
      stopBeating();
      metrics.connections.dec({ role });
      if (boundCounted) metrics.boundConnections.dec();
      if (browser) leave(key);
    });
    if (bound === undefined) return;
    if (!bound.valid) {
      // A dead cookie is a failed guess at a session id: it counts against the address.
      guesses.fail(key);
      link.close(CloseCodes.SESSION_ENDED, 'Session not found or expired', 'session_ended');
      return;
    }
    const refused = bindSession(link.conn, bound, config.expiryWarning * 1000, link);
    if (refused !== undefined) {
      link.close(CloseCodes.POLICY, 'Too many connections follow this session', 'session_full');
      return;
    }
    metrics.boundConnections.inc();
    boundCounted = true;
  };

  const refuse = (socket: Duplex, status: number, why: string, address: string, extra: Record<string, string> = {}) => {
    metrics.upgradesRefused.inc({ status: String(status) });
    // Sampled: a flood of refused upgrades is counted in gateway_upgrades_refused_total.
    gateway.sampledLog.hit(`upgrade refused ${status} ${why}`, () =>
      log.warn(
        { status, why, remote: address },
        status === 429 ? 'websocket upgrade refused (throttle tripped; sampled)' : 'websocket upgrade refused (sampled)',
      ),
    );
    refuseUpgrade(socket, status, extra);
  };

  const upgrade = async (req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> => {
    socket.on('error', destroyOnError);
    if (ctx.isDraining()) return refuseUpgrade(socket, 503);
    const broken = brokenHandshake(req);
    if (broken !== undefined) {
      // Not a handshake: answered as a request that cannot be read, before any key or cookie is looked at.
      metrics.upgradesRefused.inc({ status: String(broken.status) });
      return answerRawAndClose(socket, broken.status, { error: broken.text }, broken.headers);
    }
    const client = clientOf(req, config.trustedProxies);
    // An address out of failed attempts gets nothing more to guess with until the window clears.
    if (throttle.blocked(client.key) || (req.headers.authorization === undefined && guesses.blocked(client.key)))
      return refuse(socket, 429, 'too many failed authentications from this address', client.address, { 'Retry-After': '60' });
    const h = classifyUpgrade(req, {
      serviceKey: config.serviceKey,
      introspectionKeys: config.introspectionKeys,
      isAllowedOrigin: ctx.isAllowedOrigin,
      sessionCookie: ctx.cookieName(client.https),
    });
    if (!h.ok) {
      if (h.status === 401) throttle.fail(client.key);
      return refuse(socket, h.status, h.why, client.address, h.status === 401 ? { 'WWW-Authenticate': 'Bearer' } : {});
    }
    const full = () => h.role === 'browser' && (perAddress.get(client.key) ?? 0) >= config.maxConnectionsPerAddress;
    if (full()) return refuse(socket, 429, 'too many connections from this address', client.address, { 'Retry-After': '1' });
    let bound: CookieSession | undefined;
    if (h.role === 'browser' && h.sessionId !== undefined) {
      // Counted while its cookie is checked, as an open connection is: with a slow store, an
      // address could otherwise hold any number of half-done upgrades (each a socket, a request
      // and a store read) past the cap.
      const address = client.key;
      perAddress.set(address, (perAddress.get(address) ?? 0) + 1);
      try {
        bound = await checkCookie(gateway, h.sessionId);
      } catch (err) {
        // The store is away: the session can be neither trusted nor refused. Try again later.
        metrics.upgradesRefused.inc({ status: '503' });
        gateway.sampledLog.hit('bound upgrade store check', () => log.warn({ err }, 'could not check the session of a bound upgrade (sampled)'));
        return refuseUpgrade(socket, 503, { 'Retry-After': '1' });
      } finally {
        leave(address);
      }
    }
    if (ctx.isDraining()) return refuseUpgrade(socket, 503);
    // Checked again: others from the address may have been accepted while the store answered.
    if (full()) return refuse(socket, 429, 'too many connections from this address', client.address, { 'Retry-After': '1' });
    const role = h.role;
    quietSocket(socket);
    ctx.wss.handleUpgrade(req, socket, head, (ws) => accept(ws, client, role, bound));
  };

  return {
    onUpgrade: (req, socket, head) => {
      upgrade(req, socket, head).catch((err: unknown) => {
        log.error({ err }, 'websocket upgrade failed');
        socket.destroy();
      });
    },
    sweep: () => {
      throttle.sweep();
      guesses.sweep();
      exchanges.sweep();
    },
  };
}
