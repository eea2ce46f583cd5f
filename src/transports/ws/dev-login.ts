import type { IncomingMessage, ServerResponse } from 'node:http';
import { GatewayError } from '../../errors.js';
import type { Gateway } from '../../gateway.js';
import { lookupCookie } from '../../pipeline/bound-session.js';
import { serveOne } from '../../pipeline/serve-one.js';
import type { AnyRequest } from '../../protocol/messages.js';
import type { Body } from '../../protocol/replies.js';
import { plain } from '../client-address.js';
import { readCookie, sessionCookie } from './cookies.js';
import { BASE_HEADERS, readLimited, sendJson, sendJsonAndClose } from '../http/http-util.js';

export interface DevLoginOptions {
  gateway: Gateway;
  /** The cookie's name for a request over https or not (`__Host-` prefixed over https by default). */
  cookieName: (https: boolean) => string;
  /** Over https (TLS, or a trusted proxy that says so): the cookie gets `Secure`. */
  isHttps: (req: IncomingMessage) => boolean;
  defaultTtl: number;
  isAllowedOrigin: (origin: string) => boolean;
}

const MAX_DEMO_TTL = 86_400;
/** Largest body of a dev login, and how long it may take to arrive. */
const MAX_BODY_BYTES = 4096;
const BODY_TIMEOUT_MS = 10_000;
/** The answer to a body refused unread to its end (the connection is closed after it). */
const BODY_REFUSED = {
  too_large: [413, 'Body too large (4 KB at most)'],
  not_utf8: [400, 'Body is not UTF-8'],
  timeout: [408, `The body did not arrive within ${BODY_TIMEOUT_MS} ms`],
} as const;
const USER_RE = /^[\w.@-]{1,64}$/;

function noContent(res: ServerResponse): void {
  res.writeHead(204, BASE_HEADERS);
  res.end();
}

/** One request through the pipeline, as a service connection would send it; an error reply throws (the route answers 503). */
async function ask(gateway: Gateway, req: IncomingMessage, body: AnyRequest): Promise<Body> {
  const conn = gateway.connect({ logFields: { transport: 'http', role: 'dev-login', remote: plain(req.socket.remoteAddress ?? '') } });
  const reply = await serveOne(conn, { ok: true, src: 'dev-login', dest: gateway.nodeId, body });
  if (reply.body.type === 'error') throw new GatewayError('UNAVAILABLE', `dev login: ${body.type} failed with error ${reply.body.code}`);
  return reply.body;
}

/**
 * `/autosession`, the dev login (only with `--dev`): POST creates a session for a demo user
 * and sets the session cookie; GET tells who the cookie's session belongs to (204: nobody) (the page cannot
 * read an HttpOnly cookie) and sets the cookie again to last as long as the session; DELETE ends it. Requests from a page of another origin are
 * refused, like WebSocket upgrades, so another site cannot log the browser in or out.
 */
export async function devLogin(req: IncomingMessage, res: ServerResponse, url: URL, o: DevLoginOptions): Promise<void> {
  const origin = req.headers.origin;
  if (origin !== undefined && !o.isAllowedOrigin(origin)) return sendJson(res, 403, { error: 'Origin not allowed' });
  const https = o.isHttps(req);
  const name = o.cookieName(https);
  const current = readCookie(req.headers.cookie, name);
  switch (req.method) {
    case 'POST': {
      let params: Record<string, unknown> = Object.fromEntries(url.searchParams);
      const read = await readLimited(req, MAX_BODY_BYTES, BODY_TIMEOUT_MS);
      if ('refused' in read) {
        if (read.refused === 'aborted') return void res.destroy();
        // Closed after the answer: the rest of the body is never read.
        const [status, error] = BODY_REFUSED[read.refused];
        return sendJsonAndClose(res, status, { error });
      }
      const body = read.text;
      if (body.trim() !== '') {
        try {
          params = { ...params, ...(JSON.parse(body) as Record<string, unknown>) };
        } catch {
          return sendJson(res, 400, { error: 'Body must be JSON' });
        }
      }
      const ttl = params.ttl === undefined ? o.defaultTtl : Number(params.ttl);
      if (!Number.isSafeInteger(ttl) || ttl < 1 || ttl > MAX_DEMO_TTL)
        return sendJson(res, 400, { error: `ttl must be a whole number of seconds from 1 to ${MAX_DEMO_TTL}` });
      const user = String(params.user_id ?? 'demo-user');
      if (!USER_RE.test(user)) return sendJson(res, 400, { error: 'user_id must be 1-64 of A-Z a-z 0-9 _ . @ -' });
      // A new login replaces the browser's previous session rather than orphaning it.
      if (current !== undefined) await ask(o.gateway, req, { type: 'destroy_session', msg_id: 0, session_id: current });
      const s = await ask(o.gateway, req, { type: 'create_session', msg_id: 0, user_id: user, data: { demo: true }, ttl });
      if (s.type !== 'session_created') throw new GatewayError('INTERNAL', `dev login: create_session answered ${s.type}`);
      res.setHeader('Set-Cookie', sessionCookie(name, s.session_id, { maxAgeSeconds: s.expires_in, secure: https }));
      return sendJson(res, 201, { user_id: user, expires_at: s.expires_at, expires_in: s.expires_in, expires_in_ms: ttl * 1000 });
    }
    case 'GET':
    case 'HEAD': {
      // Not logged in is an answer, not a failure: 204, so the page's console stays clean.
      if (current === undefined) return noContent(res);
      const v = await lookupCookie(o.gateway, current);
      if (v === undefined) return noContent(res);
      // The end may have moved since the cookie was set ("Stay signed in": extend_session): the
      // cookie follows it, or the browser would drop it at the old end while the session lives.
      res.setHeader('Set-Cookie', sessionCookie(name, current, { maxAgeSeconds: v.expiresIn, secure: https }));
      return sendJson(res, 200, { user_id: v.userId, expires_at: v.expiresAt, expires_in: v.expiresIn, expires_in_ms: v.expiresInMs });
    }
    case 'DELETE': {
      if (current !== undefined) await ask(o.gateway, req, { type: 'destroy_session', msg_id: 0, session_id: current });
      res.setHeader('Set-Cookie', sessionCookie(name, '', { maxAgeSeconds: 0, secure: https }));
      return sendJson(res, 200, { message: 'Session destroyed' });
    }
    default:
      res.setHeader('Allow', 'GET, POST, DELETE');
      return sendJson(res, 405, { error: 'Method not allowed' });
  }
}
