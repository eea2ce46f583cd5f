import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GatewaySessions, type GatewaySessionsOptions, type SessionRequest } from '../../middleware/src/index.js';
import { SERVICE_KEY, fetchRaw } from '../ws/helpers.js';

/** A small node:http application on the middleware: what the tests of `auth-gateway/middleware` request. */

const opened = new Set<{ close(): Promise<void> }>();

/** The middleware connected (and ready) to the gateway at `url`, over plain http (cookie `sid`) unless told otherwise. */
export async function sessionsFor(url: string, o: Partial<GatewaySessionsOptions> = {}): Promise<GatewaySessions> {
  const sessions = new GatewaySessions({ url, serviceKey: SERVICE_KEY, secure: false, ...o });
  opened.add({ close: async () => sessions.close() });
  await sessions.ready();
  return sessions;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.statusCode = status;
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify(body));
}

/**
 * GET /me (a session required): the session as JSON. GET /maybe (optional): it or null.
 * POST /login?user=U&ttl=S, POST /logout, POST /regenerate: the helpers.
 */
export function routes(sessions: GatewaySessions): (req: IncomingMessage, res: ServerResponse) => void {
  const required = sessions.middleware();
  const optional = sessions.middleware({ optional: true });
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://app');
    const fail = (err: unknown) => json(res, 500, { error: String(err) });
    if (req.method === 'GET' && (url.pathname === '/me' || url.pathname === '/maybe')) {
      (url.pathname === '/me' ? required : optional)(req, res, (err) => (err === undefined ? json(res, 200, (req as SessionRequest).session) : fail(err)));
    } else if (req.method === 'POST' && url.pathname === '/login') {
      const ttl = url.searchParams.get('ttl');
      sessions
        .login(res, { user_id: url.searchParams.get('user') ?? 'user-1', data: { role: 'reader' }, ...(ttl === null ? {} : { ttl: Number(ttl) }) })
        .then((s) => json(res, 200, s), fail);
    } else if (req.method === 'POST' && url.pathname === '/logout') {
      sessions.logout(req, res).then(() => json(res, 200, {}), fail);
    } else if (req.method === 'POST' && url.pathname === '/regenerate') {
      required(req, res, () => {
        sessions.regenerate(req, res, { data: { role: 'admin' } }).then((s) => json(res, 200, s), fail);
      });
    } else {
      json(res, 404, {});
    }
  };
}

/** Serves `handler` on a free port; closed by `closeAll`. */
export async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  opened.add({
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** The node:http application over a fresh middleware connected to `gatewayUrl`. */
export async function startApp(gatewayUrl: string, o: Partial<GatewaySessionsOptions> = {}): Promise<{ app: string; sessions: GatewaySessions }> {
  const sessions = await sessionsFor(gatewayUrl, o);
  return { app: await listen(routes(sessions)), sessions };
}

/** Closes every application and middleware opened here (afterEach / afterAll). */
export async function closeAll(): Promise<void> {
  await Promise.all([...opened].map((o) => o.close()));
  opened.clear();
}

/** GET `path` with the session cookie `sid` (or the given cookie header). */
export function get(app: string, path: string, cookie?: string): ReturnType<typeof fetchRaw> {
  return fetchRaw(`${app}${path}`, cookie === undefined ? {} : { headers: { cookie } });
}

/** POST `path` with the cookie header given. */
export function post(app: string, path: string, cookie?: string): ReturnType<typeof fetchRaw> {
  return fetchRaw(`${app}${path}`, { method: 'POST', ...(cookie === undefined ? {} : { headers: { cookie } }) });
}

/** The `name=value` of the session cookie a response set (the value may be empty: cleared). */
export function setCookieOf(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const lines = headers['set-cookie'];
  return (Array.isArray(lines) ? lines : lines === undefined ? [] : [lines]).find((l) => l.startsWith(`${name}=`));
}
