import express from 'express';
import { fileURLToPath } from 'node:url';
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { privateCacheControl } from '../../middleware/src/cookies.js';
import { GatewaySessions, GatewaySessionError, type SessionRequest } from '../../middleware/src/index.js';
import { browser, createSession, eventually, SERVICE_KEY, service, start, startWithStoreDouble, stopAll } from '../ws/helpers.js';
import { closeAll, get, listen, post, sessionsFor, setCookieOf } from './app.js';

/**
 * login, logout and regenerate in an Express application: the cookie's attributes, the
 * gateway's view of the session, and the browser WebSocket the same cookie binds.
 */

afterEach(async () => {
  await closeAll();
  await stopAll();
});

const wsUrl = (http: string) => http.replace(/^http/, 'ws');

/** An Express application over `sessions`. */
async function expressApp(sessions: GatewaySessions): Promise<string> {
  const app = express();
  app.post('/login', async (_req, res) => {
    res.json(await sessions.login(res, { user_id: 'user-1', data: { role: 'reader' }, ttl: 600, idp_sid: 'idp-session-1' }));
  });
  app.get('/me', sessions.middleware(), (req, res) => {
    res.json((req as SessionRequest).session);
  });
  // Routes that say how caches may keep their answer, after the middleware ran.
  app.get('/public', sessions.middleware(), (_req, res) => {
    res.set('cache-control', 'public, max-age=60, s-maxage=600').send('public');
  });
  app.get('/no-store', sessions.middleware(), (_req, res) => {
    res.set('cache-control', 'no-store').send('no-store');
  });
  app.use('/files', sessions.middleware(), express.static(fileURLToPath(new URL('.', import.meta.url)), { index: false })); // sets `public, max-age=0`
  app.post('/logout', async (req, res) => {
    await sessions.logout(req, res);
    res.json({});
  });
  app.post('/regenerate', sessions.middleware(), async (req, res) => {
    res.json(await sessions.regenerate(req, res, { data: { role: 'admin' } }));
  });
  app.post('/logout-others', sessions.middleware(), async (req, res) => {
    res.json({ count: await sessions.revokeUser((req as SessionRequest).session!.user_id, { exceptCurrent: req }) });
  });
  app.use((err: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    res.status(err instanceof GatewaySessionError && err.code === 'UNAVAILABLE' ? 503 : 500).json({ error: String(err) });
  });
  return listen(app);
}

const ID = /^[A-Za-z0-9_-]{43}$/;

describe('login, logout and regenerate (Express)', () => {
  it('login sets `__Host-sid` with HttpOnly, Secure, SameSite=Lax, Path=/ and Max-Age by default; the cookie authenticates', async () => {
    const { http } = await start();
    const sessions = await sessionsFor(wsUrl(http), { secure: true });
    const app = await expressApp(sessions);
    const login = await post(app, '/login');
    expect(login.status).toBe(200);
    expect(JSON.parse(login.body)).toEqual({ user_id: 'user-1', data: { role: 'reader' }, expires_in: 600 });
    const line = setCookieOf(login.headers, '__Host-sid')!;
    // expires_in 600, and the spare second (see docs/middleware.md, idle timeout).
    expect(line).toMatch(/^__Host-sid=[A-Za-z0-9_-]{43}; Max-Age=601; Path=\/; HttpOnly; Secure; SameSite=Lax$/);
    const cookie = line.split(';')[0]!;
    expect(JSON.parse((await get(app, '/me', cookie)).body)).toMatchObject({ user_id: 'user-1', data: { role: 'reader' } });
    // Not the name of the plain-http cookie.
    expect((await get(app, '/me', cookie.replace('__Host-sid', 'sid'))).status).toBe(401);
  });

  it('secure: false (plain-http development) and SameSite=Strict: cookie `sid` without Secure', async () => {
    const { http } = await start();
    const app = await expressApp(await sessionsFor(wsUrl(http), { secure: false, sameSite: 'Strict' }));
    const line = setCookieOf((await post(app, '/login')).headers, 'sid')!;
    expect(line).toMatch(/^sid=[A-Za-z0-9_-]{43}; Max-Age=601; Path=\/; HttpOnly; SameSite=Strict$/);
  });

  it('logout destroys the session (a bound browser WebSocket is told and closed with 4001) and clears the cookie', async () => {
    const { http } = await start();
    const sessions = await sessionsFor(wsUrl(http));
    const app = await expressApp(sessions);
    const cookie = setCookieOf((await post(app, '/login')).headers, 'sid')!.split(';')[0]!;
    expect((await get(app, '/me', cookie)).status).toBe(200);
    // The gateway binds a browser connection with the very cookie the helper set.
    const page = browser(wsUrl(http), { cookie });
    await page.opened;

    const out = await post(app, '/logout', cookie);
    expect(out.status).toBe(200);
    expect(setCookieOf(out.headers, 'sid')).toBe('sid=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax');
    expect((await page.next((m) => m.body.type === 'session_expired')).body).toMatchObject({ reason: 'destroyed', bound: true });
    expect((await page.closed).code).toBe(4001);
    expect((await get(app, '/me', cookie)).status).toBe(401);
    // Without a cookie, logout only clears it.
    const none = await post(app, '/logout');
    expect(setCookieOf(none.headers, 'sid')).toBe('sid=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax');
  });

  it('regenerate moves the session to a new cookie with the new data; the old id ends (a bound page gets 4002)', async () => {
    const { http } = await start();
    const sessions = await sessionsFor(wsUrl(http));
    const app = await expressApp(sessions);
    const old = setCookieOf((await post(app, '/login')).headers, 'sid')!.split(';')[0]!;
    const page = browser(wsUrl(http), { cookie: old });
    await page.opened;

    const r = await post(app, '/regenerate', old);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toEqual({ user_id: 'user-1', data: { role: 'admin' }, expires_in: expect.any(Number) });
    const line = setCookieOf(r.headers, 'sid')!;
    expect(line).toMatch(/^sid=[A-Za-z0-9_-]{43}; Max-Age=\d+; Path=\/; HttpOnly; SameSite=Lax$/);
    const fresh = line.split(';')[0]!;
    expect(fresh).not.toBe(old);
    expect(fresh.slice(4)).toMatch(ID);
    expect((await page.closed).code).toBe(4002);
    expect((await get(app, '/me', old)).status).toBe(401);
    // The new id was cached by regenerate: a hit.
    const hits = sessions.stats.hits;
    expect(JSON.parse((await get(app, '/me', fresh)).body)).toMatchObject({ user_id: 'user-1', data: { role: 'admin' } });
    expect(sessions.stats.hits).toBe(hits + 1);
  });

  it('regenerate without a live session: NO_SESSION; helpers fail with UNAVAILABLE (and leave the cookie) when the gateway link is down', async () => {
    const { http } = await start();
    const sessions = await sessionsFor(wsUrl(http));
    const req = new IncomingMessage(new Socket());
    const res = new ServerResponse(req);
    await expect(sessions.regenerate(req, res)).rejects.toMatchObject({ name: 'GatewaySessionError', code: 'NO_SESSION' });
    const svc = service(wsUrl(http));
    await svc.opened;
    const id = (await svc.call('create_session', { user_id: 'u', ttl: 60 })).session_id as string;
    req.headers.cookie = `sid=${id}`;
    sessions.close();
    await expect(sessions.logout(req, res)).rejects.toMatchObject({ code: 'UNAVAILABLE', message: 'The session service is unavailable' });
    await expect(sessions.login(res, { user_id: 'u' })).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    expect(res.getHeader('set-cookie')).toBeUndefined();
    expect(await svc.call('validate_session', { session_id: id })).toMatchObject({ type: 'session_valid' });
  });

  it('close() is final: a later ready() rejects saying so and reopens nothing; the middleware keeps answering 503', async () => {
    const { http } = await start();
    const sessions = await sessionsFor(wsUrl(http));
    const app = await expressApp(sessions);
    const cookie = setCookieOf((await post(app, '/login')).headers, 'sid')!.split(';')[0]!;
    expect((await get(app, '/me', cookie)).status).toBe(200);

    sessions.close();
    expect((await get(app, '/me', cookie)).status).toBe(503);
    const closed = { code: 'UNAVAILABLE', message: 'The session service was closed: close() is final; create a new GatewaySessions to connect again' };
    await expect(sessions.ready()).rejects.toMatchObject(closed);
    expect(sessions.connected).toBe(false);
    expect(sessions.client.connected).toBe(false);
    expect((await get(app, '/me', cookie)).status).toBe(503);
    expect((await post(app, '/login')).status).toBe(503);

    // A ready() still waiting when close() is called is told too.
    const other = new GatewaySessions({ url: 'ws://127.0.0.1:1', serviceKey: SERVICE_KEY, secure: false, reconnect: { initialDelayMs: 50, maxDelayMs: 50 } });
    const waiting = other.ready();
    other.close();
    await expect(waiting).rejects.toMatchObject(closed);
  });

  it('ready({ timeoutMs }) rejects with UNAVAILABLE once that long passed with the gateway unreachable; the link is still retried', async () => {
    // Nothing listens on port 1: every attempt is refused at once.
    const sessions = new GatewaySessions({
      url: 'ws://127.0.0.1:1',
      serviceKey: SERVICE_KEY,
      secure: false,
      reconnect: { initialDelayMs: 50, maxDelayMs: 50 },
    });
    try {
      const started = Date.now();
      const err = await sessions.ready({ timeoutMs: 300 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GatewaySessionError);
      expect(err).toMatchObject({
        code: 'UNAVAILABLE',
        message: expect.stringMatching(/^The session service is unavailable: The connection did not open within 300 ms/) as unknown,
      });
      expect(Date.now() - started).toBeGreaterThanOrEqual(290);
      // A bad value is a rejection, as the client's connect() gives it.
      await expect(sessions.ready({ timeoutMs: -1 })).rejects.toThrow(/timeoutMs/);
      expect(sessions.connected).toBe(false);
    } finally {
      sessions.close();
    }
  });

  /**
   * A session of a gateway on a store double whose next `take` (a destroy, a regeneration) is
   * held, with middleware waiting at most 300 ms and a request carrying the session's cookie.
   */
  async function sessionAwaitingItsTake() {
    const { http, store } = await startWithStoreDouble({ GATEWAY_STORE_TIMEOUT_MS: '30000' });
    const sessions = await sessionsFor(wsUrl(http), { timeoutMs: 300 });
    const svc = service(wsUrl(http));
    await svc.opened;
    const id = (await svc.call('create_session', { user_id: 'u', ttl: 600 })).session_id as string;
    const req = new IncomingMessage(new Socket());
    req.headers.cookie = `sid=${id}`;
    const res = new ServerResponse(req);
    return { sessions, svc, id, req, res, held: store.hold('take') };
  }

  it('a logout the gateway does not confirm in time: UNAVAILABLE saying the outcome is unknown, the cookie left; carried out late, the user is logged out; retried, it clears the cookie', async () => {
    const { sessions, svc, id, req, res, held } = await sessionAwaitingItsTake();
    await expect(sessions.logout(req, res)).rejects.toMatchObject({
      code: 'UNAVAILABLE',
      message:
        'The session service did not confirm the request: the session may have ended or may still live; logout can be retried (destroy_session is idempotent)',
    });
    expect(res.getHeader('set-cookie')).toBeUndefined();
    held.release();
    await eventually(async () => expect(await svc.call('validate_session', { session_id: id })).toMatchObject({ type: 'session_invalid' }), 5000);
    await sessions.logout(req, res);
    expect(res.getHeader('set-cookie')).toEqual(['sid=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax']);
  });

  it('a regeneration the gateway does not confirm in time: UNAVAILABLE saying what it may leave, no cookie set; carried out late, the old id ends (signed out)', async () => {
    const { sessions, svc, id, req, res, held } = await sessionAwaitingItsTake();
    await expect(sessions.regenerate(req, res)).rejects.toMatchObject({
      code: 'UNAVAILABLE',
      message:
        'The session service did not confirm the request: the session may still live under its old id, or have ended there (its new id is then never delivered: the user is signed out)',
    });
    held.release();
    await eventually(async () => expect(await svc.call('validate_session', { session_id: id })).toMatchObject({ type: 'session_invalid' }), 5000);
    expect(res.getHeader('set-cookie')).toBeUndefined();
  });

  it('a regeneration whose new data is not confirmed: the new id is destroyed and never delivered (signed out), never left live with the old data', async () => {
    const { http, store } = await startWithStoreDouble({ GATEWAY_STORE_TIMEOUT_MS: '30000' });
    const sessions = await sessionsFor(wsUrl(http), { timeoutMs: 300 });
    const svc = service(wsUrl(http));
    await svc.opened;
    const id = (await svc.call('create_session', { user_id: 'demoted', ttl: 600, data: { role: 'admin' } })).session_id as string;
    const req = new IncomingMessage(new Socket());
    req.headers.cookie = `sid=${id}`;
    const res = new ServerResponse(req);
    const held = store.hold('swapIf'); // update_session's write
    await expect(sessions.regenerate(req, res, { data: { role: 'reader' } })).rejects.toMatchObject({
      code: 'UNAVAILABLE',
      message:
        'The session service did not confirm the request: the session was regenerated but its new data may not be set, so its new id was ended and not delivered: the user is signed out',
    });
    expect(res.getHeader('set-cookie')).toBeUndefined();
    held.release();
    // The old id ended with the regeneration; the new one, once the late update is done, by the destroy sent after it.
    await eventually(async () => expect(await svc.call('list_sessions', { user_id: 'demoted' })).toMatchObject({ sessions: [] }), 5000);
    expect(await svc.call('validate_session', { session_id: id })).toMatchObject({ type: 'session_invalid' });
  });

  it('a login the gateway refuses as malformed is REFUSED with its text, not UNAVAILABLE, and sets no cookie', async () => {
    const { http } = await start();
    const sessions = await sessionsFor(wsUrl(http));
    const req = new IncomingMessage(new Socket());
    const res = new ServerResponse(req);
    const cases: [Parameters<typeof sessions.login>[1], string][] = [
      [{ user_id: '' }, 'The gateway refused the request: Field "user_id" must be a non-empty string of at most 256 characters'],
      [{ user_id: 'u'.repeat(300) }, 'The gateway refused the request: Field "user_id" must be a non-empty string of at most 256 characters'],
      [{ user_id: 'u', ttl: 0 }, 'The gateway refused the request: Field "ttl" must be'],
    ];
    for (const [login, message] of cases) {
      const err = await sessions.login(res, login).catch((e: unknown) => e);
      expect(err).toMatchObject({ name: 'GatewaySessionError', code: 'REFUSED' });
      expect((err as Error).message.startsWith(message)).toBe(true);
    }
    expect(res.getHeader('set-cookie')).toBeUndefined();
    expect(sessions.connected).toBe(true);
  });

  it('revokeUser ("log out everywhere else"): the other sessions are refused from its reply on; the current one lives', async () => {
    const { http } = await start();
    const sessions = await sessionsFor(wsUrl(http));
    const app = await expressApp(sessions);
    const cookies: string[] = [];
    for (let i = 0; i < 3; i++) cookies.push(setCookieOf((await post(app, '/login')).headers, 'sid')!.split(';')[0]!);
    for (const c of cookies) expect((await get(app, '/me', c)).status).toBe(200);
    expect(sessions.stats.cached).toBe(3);
    const r = await post(app, '/logout-others', cookies[0]);
    expect(JSON.parse(r.body)).toEqual({ count: 2 });
    // Forgotten when the reply came, whether or not the pushes are here yet.
    expect(sessions.stats.cached).toBe(1);
    for (const c of cookies.slice(1)) expect((await get(app, '/me', c)).status).toBe(401);
    expect((await get(app, '/me', cookies[0])).status).toBe(200);
  });

  it('the instance that set the cookie (login, regenerate) does not send it again while its end stands', async () => {
    const { http } = await start();
    const sessions = await sessionsFor(wsUrl(http));
    const app = await expressApp(sessions);
    const login = await post(app, '/login');
    const cookie = setCookieOf(login.headers, 'sid')!.split(';')[0]!;
    for (const path of ['/me', '/public', '/files/app.ts', '/me']) {
      const r = await get(app, path, cookie);
      expect(r.status, path).toBe(200);
      expect(r.headers['set-cookie'], path).toBeUndefined();
    }
    expect(login.headers['cache-control']).toBe('private');
    // No cookie on it: the route's own Cache-Control stands.
    expect((await get(app, '/public', cookie)).headers['cache-control']).toBe('public, max-age=60, s-maxage=600');

    const regenerated = await post(app, '/regenerate', cookie);
    expect(regenerated.headers['cache-control']).toBe('private');
    const fresh = setCookieOf(regenerated.headers, 'sid')!.split(';')[0]!;
    for (const path of ['/me', '/public']) expect((await get(app, path, fresh)).headers['set-cookie'], path).toBeUndefined();
  });

  it('a cookie set by another instance is sent once from here, on a response that shared caches may not store, whatever the route says', async () => {
    const { http } = await start();
    const app = await expressApp(await sessionsFor(wsUrl(http)));
    const cases: [string, string, string | undefined][] = [
      // path, Cache-Control with the cookie, Cache-Control without it (the route's)
      ['/public', 'private, max-age=60', 'public, max-age=60, s-maxage=600'],
      ['/files/app.ts', 'private, max-age=0', 'public, max-age=0'],
      ['/no-store', 'no-store', 'no-store'],
      ['/me', 'private', undefined],
    ];
    for (const [path, withCookie, without] of cases) {
      const id = await createSession(wsUrl(http), 600, 'elsewhere');
      const first = await get(app, path, `sid=${id}`);
      expect(first.status, path).toBe(200);
      expect(setCookieOf(first.headers, 'sid'), path).toMatch(new RegExp(`^sid=${id}; Max-Age=\\d+;`));
      expect(first.headers['cache-control'], path).toBe(withCookie);
      const second = await get(app, path, `sid=${id}`);
      expect(second.headers['set-cookie'], path).toBeUndefined();
      expect(second.headers['cache-control'], path).toBe(without);
    }
  });

  it('privateCacheControl: private added, or private or no-store kept; what speaks only to shared caches dropped', () => {
    const cases: [string | undefined, string][] = [
      [undefined, 'private'],
      ['', 'private'],
      ['public, max-age=0', 'private, max-age=0'],
      ['max-age=60, s-maxage=600, public', 'private, max-age=60'],
      ['must-revalidate, S-MaxAge = 10', 'private, must-revalidate'],
      ['no-cache', 'private, no-cache'],
      ['no-store', 'no-store'],
      ['Private, max-age=5', 'Private, max-age=5'],
      ['public, no-store', 'public, no-store'],
      ['private="set-cookie", max-age=5', 'private, private="set-cookie", max-age=5'],
    ];
    for (const [value, expected] of cases) expect(privateCacheControl(value), String(value)).toBe(expected);
  });

  it('a service key the gateway refuses: ready() rejects with REFUSED, saying so without the key', async () => {
    const { http } = await start();
    const wrong = 'W'.repeat(44);
    const sessions = new GatewaySessions({ url: wsUrl(http), serviceKey: wrong, secure: false, reconnect: { initialDelayMs: 50, maxDelayMs: 200 } });
    try {
      const err = await sessions.ready().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GatewaySessionError);
      expect(err).toMatchObject({
        code: 'REFUSED',
        message: "The gateway refused the service key (HTTP 401 to the WebSocket upgrade): the serviceKey option must be the gateway's GATEWAY_SERVICE_KEY",
      });
      expect(String((err as Error).stack)).not.toContain(wrong);
      expect(sessions.connected).toBe(false);
      // Asked again while the key is still refused: the same answer, at once.
      await expect(sessions.ready()).rejects.toMatchObject({ code: 'REFUSED' });
    } finally {
      sessions.close();
    }
  });

  it('checks its options once, with exact messages', () => {
    const ok = { url: 'ws://127.0.0.1:1', serviceKey: SERVICE_KEY };
    const cases: [Record<string, unknown>, string][] = [
      [{ url: 'http://x' }, 'The url option must be a ws:// or wss:// URL.'],
      [{ serviceKey: 'short' }, 'The serviceKey option must be a string of at least 32 bytes.'],
      [{ cookieName: 'a b' }, 'The cookieName option must be a cookie name (1 to 64 token characters).'],
      [{ secure: false, cookieName: '__Host-x' }, 'The cookieName option may start with __Host- only when secure is true.'],
      [{ sameSite: 'None' }, 'The sameSite option must be "Lax" or "Strict".'],
      [{ cacheSize: 0 }, 'The cacheSize option must be a positive integer.'],
      [{ revalidateFraction: 0 }, 'The revalidateFraction option must be a number above 0 and at most 1.'],
      [{ timeoutMs: -1 }, 'The timeoutMs option must be a positive number of ms, at most 2147483647.'],
      [{ timeoutMs: Infinity }, 'The timeoutMs option must be a positive number of ms, at most 2147483647.'],
      [{ reconnect: { initialDelayMs: -100 } }, 'The reconnect.initialDelayMs option must be a positive number of ms, at most 2147483647.'],
      [{ reconnect: { factor: 'x' } }, 'The reconnect.factor option must be a number from 1 to 100.'],
      [{ reconnect: 5 }, 'The reconnect option must be an object.'],
      [{ reconnect: null }, 'The reconnect option must be an object.'],
      [{ heartbeat: true }, 'The heartbeat option must be an object or false.'],
      [{ heartbeat: 'on' }, 'The heartbeat option must be an object or false.'],
      [{ now: 'x' }, 'The now option must be a function.'],
      [{ WebSocket: {} }, 'The WebSocket option must be a constructor.'],
    ];
    for (const [bad, message] of cases) expect(() => new GatewaySessions({ ...ok, ...bad } as never)).toThrow(message);
  });
});
