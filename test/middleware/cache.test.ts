import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { waitForCount } from '../helpers/wait-for.js';
import { createSession, eventually, fetchRaw, SERVICE_KEY, service, start, startWithStoreDouble, stopAll } from '../ws/helpers.js';
import { ensureBuilt, spawnServer } from '../ws/process.js';
import { closeAll, get, post, setCookieOf, startApp } from './app.js';

/** The middleware's cache on one in-process gateway: hits, single flight, local expiry, idle honesty, malformed cookies. */

afterEach(async () => {
  await closeAll();
  await stopAll();
});

const wsUrl = (http: string) => http.replace(/^http/, 'ws');

describe('the session cache', () => {
  it('a valid cookie gets 200 with the session; the next request is a cache hit (no validate_session)', async () => {
    const { http } = await start();
    const { app, sessions } = await startApp(wsUrl(http));
    const id = await createSession(wsUrl(http), 600, 'alice');

    const first = await get(app, '/me', `sid=${id}`);
    expect(first.status).toBe(200);
    expect(JSON.parse(first.body)).toEqual({ user_id: 'alice', expires_in: expect.any(Number) });
    expect(sessions.stats).toMatchObject({ misses: 1, hits: 0, validations: 1, cached: 1 });

    // Another cookie first, and the value quoted (RFC 6265 allows it; the gateway's binding reads it so).
    const second = await get(app, '/me', `theme=dark; sid="${id}"; sid=ignored-second`);
    expect(second.status).toBe(200);
    expect(JSON.parse(second.body)).toMatchObject({ user_id: 'alice' });
    expect(sessions.stats).toMatchObject({ misses: 1, hits: 1, validations: 1 });
  });

  it('no cookie: 401 on a required route, session null on an optional one, and no gateway call', async () => {
    const { http } = await start();
    const { app, sessions } = await startApp(wsUrl(http));
    const refused = await get(app, '/me');
    expect(refused.status).toBe(401);
    expect(refused.headers['cache-control']).toBe('no-store');
    const optional = await get(app, '/maybe');
    expect(optional.status).toBe(200);
    expect(JSON.parse(optional.body)).toBeNull();
    expect(sessions.stats.validations).toBe(0);
  });

  it('garbage, oversized or wrongly shaped cookies get 401 without asking the gateway; an unknown well-formed id is asked once', async () => {
    const { http } = await start();
    const { app, sessions } = await startApp(wsUrl(http));
    const bad = [
      'sid=short',
      `sid=${'a'.repeat(42)}!`,
      `sid=${'a'.repeat(44)}`,
      `sid=${'é'.repeat(43)}`,
      'sid="unterminated',
      `sid=${'x'.repeat(6000)}`,
      `other=1; sid=${'%41'.repeat(43)}`,
      `sid=${'a'.repeat(43)}; ${'junk=1; '.repeat(1200)}`,
    ];
    for (const cookie of bad) {
      const r = await get(app, '/me', cookie);
      expect(r.status, cookie.slice(0, 40)).toBe(401);
    }
    expect(sessions.stats.validations).toBe(0);
    expect(sessions.stats.malformed).toBe(bad.length);

    const unknown = await get(app, '/me', `sid=${'A'.repeat(43)}`);
    expect(unknown.status).toBe(401);
    expect(sessions.stats.validations).toBe(1);
    expect(sessions.stats.cached).toBe(0);
  });

  it('concurrent requests with one uncached cookie share one validate_session', async () => {
    const { http } = await start();
    const { app, sessions } = await startApp(wsUrl(http));
    const id = await createSession(wsUrl(http), 600, 'bob');
    const replies = await Promise.all(Array.from({ length: 20 }, () => get(app, '/me', `sid=${id}`)));
    expect(replies.map((r) => r.status)).toEqual(Array.from({ length: 20 }, () => 200));
    expect(sessions.stats.validations).toBe(1);
    expect(sessions.stats.hits + sessions.stats.misses).toBe(20);
  });

  it('a cached session is not served past the end it was validated with: the next request asks the gateway again', async () => {
    const { http } = await start();
    const middlewareClock = new ManualClock(Date.now());
    const { app, sessions } = await startApp(wsUrl(http), { now: () => middlewareClock.now() });
    const id = await createSession(wsUrl(http), 60, 'carol');
    expect((await get(app, '/me', `sid=${id}`)).status).toBe(200);
    expect((await get(app, '/me', `sid=${id}`)).status).toBe(200);
    expect(sessions.stats).toMatchObject({ hits: 1, validations: 1 });

    // Only the middleware's time moves: the gateway (whose clock stands) still calls it valid,
    // so the 200 below comes from a new validate_session, not from the cache.
    middlewareClock.advance(60_000);
    const after = await get(app, '/me', `sid=${id}`);
    expect(after.status).toBe(200);
    expect(sessions.stats).toMatchObject({ hits: 1, validations: 2, misses: 2 });
  });

  it('on the gateway’s clock: a session past its ttl gets 401, never the cached 200', async () => {
    const { http, clock } = await start();
    const { app, sessions } = await startApp(wsUrl(http), { now: () => clock.now() });
    const id = await createSession(wsUrl(http), 30, 'dave');
    expect((await get(app, '/me', `sid=${id}`)).status).toBe(200);
    clock.advance(30_000);
    expect((await get(app, '/me', `sid=${id}`)).status).toBe(401);
    expect(sessions.stats.hits).toBe(0);
  });

  it('a hit after half the validated window validates again in the background (validate_session is idle activity)', async () => {
    const { http, clock } = await start({ GATEWAY_SESSION_IDLE_TIMEOUT: '60' });
    const { app, sessions } = await startApp(wsUrl(http), { now: () => clock.now() });
    const id = await createSession(wsUrl(http), 3600, 'erin');
    expect(JSON.parse((await get(app, '/me', `sid=${id}`)).body)).toMatchObject({ expires_in: 59 });
    // Active every 31 s (hits only, for the cache): the gateway must still hear of it, or the
    // idle timeout would end the session 60 s after the first request.
    for (let i = 1; i <= 4; i++) {
      clock.advance(31_000);
      expect((await get(app, '/me', `sid=${id}`)).status).toBe(200);
      await waitForCount(() => sessions.stats.refreshed, i, 5000, 'background validations answered');
    }
    expect(sessions.stats.hits).toBe(4);
    // 124 s after the first request, the session lives: each background check was activity.
    const svc = service(wsUrl(http));
    await svc.opened;
    expect(await svc.call('validate_session', { session_id: id })).toMatchObject({ type: 'session_valid' });
  });

  it("with an idle timeout, the cookie's Max-Age follows the session's end as validations move it: an active user keeps it", async () => {
    const { http, clock } = await start({ GATEWAY_SESSION_IDLE_TIMEOUT: '60' });
    const { app, sessions } = await startApp(wsUrl(http), { now: () => clock.now() });
    const id = await createSession(wsUrl(http), 3600, 'erin');
    // A browser's cookie jar: the cookie lives until the Max-Age of the last Set-Cookie runs out.
    let cookieUntil = Number.POSITIVE_INFINITY; // set by a login elsewhere, life unknown
    let refreshedCookies = 0;
    const request = async () => {
      expect(clock.now(), 'the browser still has the cookie').toBeLessThan(cookieUntil);
      const r = await get(app, '/me', `sid=${id}`);
      expect(r.status).toBe(200);
      const set = ([] as string[]).concat(r.headers['set-cookie'] ?? []).find((c) => c.startsWith(`sid=${id};`));
      if (set !== undefined) {
        cookieUntil = clock.now() + Number(/Max-Age=(\d+)/.exec(set)![1]) * 1000;
        refreshedCookies++;
      }
    };
    await request();
    expect(refreshedCookies).toBe(1); // sent once from here: the end is now known
    for (let i = 1; i <= 6; i++) {
      clock.advance(31_000);
      await request();
      await waitForCount(() => sessions.stats.refreshed, i, 5000, 'background validations answered');
    }
    // 186 s on, 3 idle timeouts: the cookie was sent again as the end moved, not on every request.
    expect(refreshedCookies).toBeGreaterThanOrEqual(4);
    expect(refreshedCookies).toBeLessThanOrEqual(7);
    clock.advance(31_000);
    await request();
  });

  it('with an idle timeout, the cookie set by login never runs out before the session, and is not sent again while its end does not move', async () => {
    const { http, clock } = await start({ GATEWAY_SESSION_IDLE_TIMEOUT: '4' });
    const { app, sessions } = await startApp(wsUrl(http), { now: () => clock.now() });
    const maxAgeOf = (line: string) => Number(/Max-Age=(\d+)/.exec(line)![1]);
    const login = setCookieOf((await post(app, '/login?user=idle')).headers, 'sid')!;
    const cookie = login.split(';')[0]!;
    // A browser's cookie jar: the cookie lives until the Max-Age of the last Set-Cookie runs out.
    let cookieUntil = clock.now() + maxAgeOf(login) * 1000;
    let sent = 0;
    const requests = 12;
    for (let i = 1; i <= requests; i++) {
      clock.advance(1500); // active: a request every 1.5 s, the idle timeout 4 s
      expect(clock.now(), `request ${i}: the browser still has the cookie`).toBeLessThan(cookieUntil);
      const r = await get(app, '/me', cookie);
      expect(r.status, `request ${i}`).toBe(200);
      const set = setCookieOf(r.headers, 'sid');
      if (set !== undefined) {
        cookieUntil = clock.now() + maxAgeOf(set) * 1000;
        sent++;
      }
      // The background validation this request may have sent is answered before the clock moves on.
      await waitForCount(() => sessions.stats.refreshed, sessions.stats.validations - sessions.stats.misses, 5000, 'background validations answered');
    }
    // 18 s on, over four idle timeouts: the cookie followed the end, but not on every response.
    expect(sent).toBeGreaterThanOrEqual(3);
    expect(sent).toBeLessThan(requests);
  });

  it('a gateway slower than timeoutMs: 503, nothing cached, and the subscription it made late is ended', async () => {
    const { http, store } = await startWithStoreDouble({ GATEWAY_STORE_TIMEOUT_MS: '30000' });
    store.down = false;
    const { app, sessions } = await startApp(wsUrl(http), { timeoutMs: 300 });
    const id = await createSession(wsUrl(http), 600, 'frank');
    const held = store.hold('get');
    const t0 = performance.now();
    expect((await get(app, '/me', `sid=${id}`)).status).toBe(503);
    expect(performance.now() - t0).toBeLessThan(3000);
    expect(sessions.stats.cached).toBe(0);

    held.release();
    const metric = async (re: RegExp) => Number(re.exec((await fetchRaw(`${http}/metrics`)).body)?.[1] ?? 0);
    const unsubscribed = /^gateway_messages_total\{type="unsubscribe_session",outcome="unsubscribed"\} (\d+)$/m;
    await eventually(async () => expect(await metric(unsubscribed), 'the late subscription was ended').toBe(1), 5000);
    expect(await metric(/^gateway_subscriptions (\d+)$/m)).toBe(0);
    // And the gateway, answering in time again, serves the cookie.
    expect((await get(app, '/me', `sid=${id}`)).status).toBe(200);
  });
  it('a stopped gateway: each request gets its 503 within timeoutMs, whatever unsubscribes are pending, the cache full or not', async () => {
    ensureBuilt();
    // A process, stopped with SIGSTOP: it answers nothing, not even unsubscribe_session.
    const gateway = await spawnServer({ GATEWAY_SERVICE_KEY: SERVICE_KEY });
    const timeoutMs = 2000;
    try {
      const roomy = await startApp(gateway.url, { timeoutMs });
      const full = await startApp(gateway.url, { timeoutMs, cacheSize: 1 });
      const ids: string[] = [];
      for (let i = 0; i < 6; i++) ids.push(await createSession(gateway.url, 600, `slow-${i}`));
      expect((await get(full.app, '/me', `sid=${ids[0]}`)).status).toBe(200);
      expect(full.sessions.stats.cached).toBe(1);

      gateway.child.kill('SIGSTOP');
      // Each timed-out subscription leaves an unsubscribe that is not answered either. With room
      // in the cache the next check does not wait for it; with the cache full it waits, but within
      // the same time limit, not one more.
      const asked: [string, string][] = [
        [roomy.app, ids[1]!],
        [roomy.app, ids[2]!],
        [roomy.app, ids[3]!],
        [full.app, ids[4]!],
        [full.app, ids[5]!],
      ];
      for (const [app, id] of asked) {
        const t0 = performance.now();
        const r = await get(app, '/me', `sid=${id}`);
        const took = performance.now() - t0;
        expect(r.status).toBe(503);
        expect(took, 'at most timeoutMs (and slack for a busy machine), not twice it').toBeLessThan(timeoutMs + 1000);
      }
    } finally {
      gateway.child.kill('SIGKILL');
      await gateway.exited;
    }
  }, 60_000);
});
