import type { Server } from 'node:http';
import type { Logger } from '../../log.js';
import type { Heartbeat } from './heartbeat.js';
import type { SocketLink } from './socket-link.js';

export interface DrainTargets {
  http: Server;
  metricsHttp?: Server;
  links: ReadonlySet<SocketLink>;
  heartbeat: Heartbeat<SocketLink>;
  log: Logger;
  /** Resolves once the other transports on the port have answered what they read. */
  othersIdle?: () => Promise<void>;
}

/** Closes a server and every connection it still holds. */
function closeServer(server: Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  return closed;
}

/**
 * Drain: accepts nothing new (the caller refuses upgrades from now on), answers every request
 * already read on each link, closes each with 1001, then the HTTP listeners.
 */
export async function drainServer(t: DrainTargets): Promise<void> {
  t.log.info({ connections: t.links.size }, 'draining: no new connections; answering what was read, then closing with 1001');
  const closedHttp = new Promise<void>((resolve) => t.http.close(() => resolve()));
  t.http.closeIdleConnections();
  await Promise.all([...t.links].map((l) => l.drain()));
  t.heartbeat.stop();
  await t.othersIdle?.();
  t.http.closeAllConnections();
  await closedHttp;
  if (t.metricsHttp !== undefined) await closeServer(t.metricsHttp);
}
