import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { fastifySessions, type GatewaySession, type GatewaySessions } from '../../middleware/src/index.js';
import { createSession, start, stopAll } from '../ws/helpers.js';
import { closeAll, get, post, sessionsFor, setCookieOf } from './app.js';

/** The Fastify plugin: `request.session`, 401 and 503 from a preHandler, scoped to where it is registered. */

declare module 'fastify' {
  interface FastifyRequest {
    session: GatewaySession | null;
  }
}

const apps: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
  await closeAll();
  await stopAll();
});

const wsUrl = (http: string) => http.replace(/^http/, 'ws');

async function fastifyApp(sessions: GatewaySessions): Promise<string> {
  const app = Fastify();
  apps.push(app);
  app.get('/public', async () => ({ public: true }));
  app.post('/login', async (_request, reply) => sessions.login(reply.raw, { user_id: 'fast-user', ttl: 600 }));
  // Routes that set a cookie of their own through Fastify (which passes its headers to writeHead).
  app.post('/login-themed', async (_request, reply) => {
    const created = await sessions.login(reply.raw, { user_id: 'fast-user', ttl: 600 });
    reply.header('set-cookie', 'theme=dark; Path=/');
    return created;
  });
  await app.register(async (scope) => {
    await scope.register(fastifySessions(sessions));
    scope.get('/me', async (request) => request.session);
    scope.get('/me-themed', async (request, reply) => {
      reply.header('set-cookie', 'theme=dark; Path=/').header('set-cookie', 'lang=en; Path=/');
      return request.session;
    });
    scope.post('/promote-themed', async (request, reply) => {
      reply.header('set-cookie', 'theme=dark; Path=/');
      return sessions.regenerate(request.raw, reply.raw, { data: { role: 'admin' } });
    });
    scope.post('/logout-themed', async (request, reply) => {
      await sessions.logout(request.raw, reply.raw);
      reply.header('set-cookie', 'theme=; Max-Age=0; Path=/');
      return { ok: true };
    });
    scope.post('/promote', async (request, reply) => sessions.regenerate(request.raw, reply.raw, { data: { role: 'admin' } }));
    scope.post('/logout', async (request, reply) => {
      await sessions.logout(request.raw, reply.raw);
      return { ok: true };
    });
    scope.get('/hijacked', (_request, reply) => {
      reply.hijack();
      reply.raw.end('raw');
    });
  });
  await app.register(async (scope) => {
    await scope.register(fastifySessions(sessions), { optional: true });
    scope.get('/maybe', async (request) => ({ session: request.session }));
    scope.post('/relogin', async (_request, reply) => sessions.login(reply.raw, { user_id: 'new-user', ttl: 600 }));
  });
  return app.listen({ port: 0, host: '127.0.0.1' });
}

describe('the Fastify plugin', () => {
  it('sets request.session on the routes of its scope, answers 401 without a session, and leaves other scopes alone', async () => {
    const { http } = await start();
    const sessions = await sessionsFor(wsUrl(http));
    const app = await fastifyApp(sessions);
    const id = await createSession(wsUrl(http), 600, 'fast-user');

    const me = await get(app, '/me', `sid=${id}`);
    expect(me.status).toBe(200);
    // The cookie, set elsewhere, is sent once from here, on a response no shared cache may store.
    expect(setCookieOf(me.headers, 'sid')).toMatch(new RegExp(`^sid=${id}; Max-Age=\\d+;`));
    expect(me.headers['cache-control']).toBe('private');
    expect(JSON.parse(me.body)).toEqual({ user_id: 'fast-user', expires_in: expect.any(Number) });
    expect((await get(app, '/me')).status).toBe(401);
    expect((await get(app, '/me', 'sid=garbage')).status).toBe(401);
    expect((await get(app, '/public')).status).toBe(200);
    expect(JSON.parse((await get(app, '/maybe')).body)).toEqual({ session: null });
    expect(JSON.parse((await get(app, '/maybe', `sid=${id}`)).body)).toMatchObject({ session: { user_id: 'fast-user' } });
    // The second request of the cookie was a hit.
    expect(sessions.stats).toMatchObject({ validations: 1, hits: 1 });
  });

  it('login through reply.raw sets the cookie, which the plugin accepts', async () => {
    const { http } = await start();
    const app = await fastifyApp(await sessionsFor(wsUrl(http)));
    const login = await post(app, '/login');
    expect(login.status).toBe(200);
    const cookie = setCookieOf(login.headers, 'sid')!.split(';')[0]!;
    expect(JSON.parse((await get(app, '/me', cookie)).body)).toMatchObject({ user_id: 'fast-user' });
  });

  it('503 with Retry-After when the gateway link is down, on required and optional routes', async () => {
    const { http } = await start();
    const sessions = await sessionsFor(wsUrl(http));
    const app = await fastifyApp(sessions);
    const id = await createSession(wsUrl(http), 600, 'fast-user');
    expect((await get(app, '/me', `sid=${id}`)).status).toBe(200);
    sessions.close();
    for (const path of ['/me', '/maybe']) {
      const r = await get(app, path, `sid=${id}`);
      expect(r.status).toBe(503);
      expect(r.headers['retry-after']).toBe('1');
    }
  });

  // The plugin sends a cookie set elsewhere once (a refresh); a helper in the same route that
  // sets the cookie itself must win, as in Express.
  it('regenerate, logout and login in a route send their own cookie, not the refresh of the one presented', async () => {
    const { http } = await start();
    const sessions = await sessionsFor(wsUrl(http));
    const app = await fastifyApp(sessions);
    for (const [path, cookiePath] of [
      ['/promote', 'promote'],
      ['/logout', 'logout'],
      ['/relogin', 'relogin'],
    ] as const) {
      const id = await createSession(wsUrl(http), 600, 'fast-user');
      const r = await post(app, path, `sid=${id}`);
      expect(r.status, cookiePath).toBe(200);
      const lines = (r.headers['set-cookie'] as string[] | undefined) ?? [];
      expect(
        lines.filter((l) => l.startsWith('sid=')),
        cookiePath,
      ).toHaveLength(1);
      const line = setCookieOf(r.headers, 'sid')!;
      expect(line.startsWith(`sid=${id};`), cookiePath).toBe(false);
      if (cookiePath === 'logout') expect(line).toMatch(/^sid=; Max-Age=0;/);
      else {
        const fresh = line.split(';')[0]!;
        const me = JSON.parse((await get(app, '/me', fresh)).body) as { user_id: string };
        expect(me.user_id).toBe(cookiePath === 'promote' ? 'fast-user' : 'new-user');
      }
      expect(r.headers['cache-control'], cookiePath).toMatch(/^private/);
    }
  });

  it('a route that sets cookies of its own through reply.header keeps the session cookie too', async () => {
    const { http } = await start();
    const sessions = await sessionsFor(wsUrl(http));
    const app = await fastifyApp(sessions);
    const names = (h: Record<string, string | string[] | undefined>) => ((h['set-cookie'] as string[] | undefined) ?? []).map((l) => l.split('=')[0]).sort();

    const login = await post(app, '/login-themed');
    expect(login.status).toBe(200);
    expect(names(login.headers)).toEqual(['sid', 'theme']);
    const fresh = setCookieOf(login.headers, 'sid')!.split(';')[0]!;
    expect(JSON.parse((await get(app, '/me', fresh)).body)).toMatchObject({ user_id: 'fast-user' });

    // The plugin's refresh of a cookie set elsewhere, beside two of the route's own.
    const id = await createSession(wsUrl(http), 600, 'fast-user');
    const me = await get(app, '/me-themed', `sid=${id}`);
    expect(names(me.headers)).toEqual(['lang', 'sid', 'theme']);
    expect(setCookieOf(me.headers, 'sid')).toMatch(new RegExp(`^sid=${id}; Max-Age=\\d+;`));
    expect(me.headers['cache-control']).toBe('private');

    const promoted = await post(app, '/promote-themed', `sid=${id}`);
    expect(promoted.status).toBe(200);
    expect(names(promoted.headers)).toEqual(['sid', 'theme']);
    const promotedId = setCookieOf(promoted.headers, 'sid')!.split(';')[0]!;
    expect(promotedId).not.toBe(`sid=${id}`);
    expect(JSON.parse((await get(app, '/me', promotedId)).body)).toMatchObject({ user_id: 'fast-user' });

    const out = await post(app, '/logout-themed', promotedId);
    expect(out.status).toBe(200);
    expect(names(out.headers)).toEqual(['sid', 'theme']);
    expect(setCookieOf(out.headers, 'sid')).toMatch(/^sid=; Max-Age=0;/);
    expect((await get(app, '/me', promotedId)).status).toBe(401);
  });

  it('a hijacked route still sends the refresh of a cookie set elsewhere', async () => {
    const { http } = await start();
    const sessions = await sessionsFor(wsUrl(http));
    const app = await fastifyApp(sessions);
    const id = await createSession(wsUrl(http), 600, 'fast-user');
    const r = await get(app, '/hijacked', `sid=${id}`);
    expect(r.status).toBe(200);
    expect(setCookieOf(r.headers, 'sid')).toMatch(new RegExp(`^sid=${id}; Max-Age=\\d+;`));
  });
});
