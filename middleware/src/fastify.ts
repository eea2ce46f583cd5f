import type { IncomingMessage, ServerResponse } from 'node:http';
import { keepFromSharedCaches } from './cookies.js';
import { GatewaySessionError } from './errors.js';
import type { GatewaySessions } from './gateway-sessions.js';
import type { GatewaySession } from './session-cache.js';

/*
 * The Fastify plugin is typed structurally: the middleware needs no Fastify at run time, and
 * its types do not import Fastify's.
 */

/** What the plugin uses of a Fastify request. */
export interface FastifyLikeRequest {
  raw: IncomingMessage;
  session?: GatewaySession | null;
}

/** What the plugin uses of a Fastify reply. */
export interface FastifyLikeReply {
  raw: ServerResponse;
  code(statusCode: number): FastifyLikeReply;
  header(name: string, value: string): FastifyLikeReply;
  send(payload?: string): FastifyLikeReply;
}

/** What the plugin uses of a Fastify instance. */
export interface FastifyLikeInstance {
  hasRequestDecorator(name: string): boolean;
  decorateRequest(name: string, value: null): unknown;
  addHook(name: 'preHandler', hook: (request: FastifyLikeRequest, reply: FastifyLikeReply) => Promise<unknown>): unknown;
}

export interface FastifySessionsOptions {
  /** Routes without a live session go on with `request.session = null` instead of 401. */
  optional?: boolean;
}

/** A Fastify plugin (callback style), registered without encapsulation: it applies to the scope it is registered in. */
export type FastifySessionsPlugin = (instance: FastifyLikeInstance, opts: FastifySessionsOptions, done: (err?: Error) => void) => void;

/**
 * A Fastify plugin over `sessions`: decorates the request with `session` and adds a
 * preHandler hook that sets it, or answers 401 (no live session; with `optional: true` it
 * goes on with null) or 503 with `Retry-After: 1` (the gateway cannot be asked).
 *
 * @example
 * await app.register(fastifySessions(sessions)); // every route of this scope needs a session
 */
export function fastifySessions(sessions: GatewaySessions): FastifySessionsPlugin {
  const plugin: FastifySessionsPlugin = (instance, opts, done) => {
    const optional = opts?.optional === true;
    if (!instance.hasRequestDecorator('session')) instance.decorateRequest('session', null);
    instance.addHook('preHandler', async (request, reply) => {
      let session: GatewaySession | null;
      try {
        session = await sessions.authenticate(request.raw);
      } catch (err) {
        if (!(err instanceof GatewaySessionError)) throw err;
        return reply.code(503).header('cache-control', 'no-store').header('retry-after', '1').send('Session service unavailable');
      }
      request.session = session;
      if (session === null && !optional) return reply.code(401).header('cache-control', 'no-store').send('Not signed in');
      const cookie = session === null ? undefined : sessions.cookieRefresh(request.raw);
      if (cookie !== undefined) {
        // On the raw response, as the Express middleware does, not among Fastify's own headers:
        // Fastify passes those to writeHead, where they would win over the cookie a helper sets
        // on `reply.raw` later in the route (regenerate, logout, login), and a hijacked reply
        // never sends them.
        reply.raw.appendHeader('set-cookie', cookie);
        keepFromSharedCaches(reply.raw);
      }
      return undefined;
    });
    done();
  };
  // fastify-plugin's marks: the hook and decorator belong to the registering scope, not a child of it.
  return Object.assign(plugin, { [Symbol.for('skip-override')]: true, [Symbol.for('fastify.display-name')]: 'auth-gateway-sessions' });
}
