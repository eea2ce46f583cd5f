import type { Server } from 'node:http';
import type { Clock } from '../../clock.js';
import type { Logger } from '../../log.js';
import type { Heartbeat } from './heartbeat.js';
import type { SocketLink } from './socket-link.js';
import { closeLingering } from '../http/lingering-close.js';

export interface DrainTargets {
  http: Server;
  metricsHttp?: Server;
  links: ReadonlySet<SocketLink>;
  heartbeat: Heartbeat<SocketLink>;
  log: Logger;
  /** Resolves once the other transports on the port have answered what they read. */
  othersIdle?: () => Promise<void>;
  clock: Clock;
}

/** How a drain unfolds in time (GATEWAY_DRAIN_DELAY, GATEWAY_DRAIN_WINDOW); both 0 by default. */
export interface DrainPlan {
  /** While /readyz answers 503, everything is still served, so the load balancer can stop sending. */
  delayMs?: number;
  /** Connections are then closed one after another over this window, not all at once. */
  windowMs?: number;
}

/** Closes a server and every connection it still holds. */
function closeServer(server: Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  closeLingering(server);
  return closed;
}

const after = (clock: Clock, ms: number) => new Promise<void>((resolve) => void clock.setTimer(resolve, ms));

/**
 * Drain, in two phases. The caller has made /readyz answer 503 and every HTTP answer say
 * `Connection: close`; for `delayMs` everything is still served (a load balancer takes a few
 * probes to de-register a node, and whatever it sends meanwhile must not be refused), and each
 * kept-alive HTTP connection is closed after its next answer, which its client is told of. Then
 * `onClosing` (upgrades refused from now on), the listener closes, and the WebSocket links are
 * drained one after another, spread evenly over `windowMs`: each answers what it had read and
 * closes with 1012, and its client reconnects, to another node. Closing them all at once would
 * send every client to the remaining nodes in the same instant. Last, the HTTP requests in flight
 * are answered and the connections left are closed.
 */
export async function drainServer(t: DrainTargets, plan: DrainPlan, onClosing: () => void): Promise<void> {
  const delayMs = plan.delayMs ?? 0;
  const windowMs = plan.windowMs ?? 0;
  t.log.info(
    { event: 'drain', phase: 'deregistering', connections: t.links.size, delay_ms: delayMs },
    'draining: /readyz answers 503; still serving until the delay is over',
  );
  if (delayMs > 0) await after(t.clock, delayMs);
  onClosing();
  const links = [...t.links];
  t.log.info(
    { event: 'drain', phase: 'closing', connections: links.length, window_ms: windowMs },
    'draining: new connections refused; closing connections with 1012 over the window',
  );
  // Node's close also closes the connections idle now: kept-alive ones that sent no request over
  // the delay, and new ones that have sent nothing yet. A request their client sends at that
  // moment meets the close: the race RFC 9112 section 9.6 has clients retry on a new connection.
  // The delay shrinks it: a client that sends during the delay is answered and told to close.
  const closedHttp = new Promise<void>((resolve) => t.http.close(() => resolve()));
  const step = links.length > 1 ? windowMs / (links.length - 1) : 0;
  await Promise.all(links.map((l, i) => (i === 0 || step === 0 ? l.drain() : after(t.clock, i * step).then(() => l.drain()))));
  t.heartbeat.stop();
  await t.othersIdle?.();
  t.http.closeAllConnections();
  // Those Node's server handed over (a CONNECT, a refused upgrade) and that linger after their answer.
  closeLingering(t.http);
  await closedHttp;
  if (t.metricsHttp !== undefined) await closeServer(t.metricsHttp);
}
