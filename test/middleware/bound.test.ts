import { afterEach, describe, expect, it } from 'vitest';
import { waitForCount } from '../helpers/wait-for.js';
import { fetchRaw, service, start, stopAll } from '../ws/helpers.js';
import { closeAll, get, startApp } from './app.js';

/**
 * The cache is bounded, and so is what it costs the gateway: an evicted session is
 * unsubscribed, and the middleware never asks for more subscriptions than the gateway's
 * GATEWAY_MAX_SUBSCRIPTIONS when its cacheSize is at most that.
 */

afterEach(async () => {
  await closeAll();
  await stopAll();
});

const wsUrl = (http: string) => http.replace(/^http/, 'ws');

/** The gateway's `gateway_subscriptions` gauge. */
async function subscriptionsOn(http: string): Promise<number> {
  const m = /^gateway_subscriptions (\d+)$/m.exec((await fetchRaw(`${http}/metrics`)).body);
  expect(m, 'gateway_subscriptions in /metrics').not.toBeNull();
  return Number(m![1]);
}

describe('the cache bound', () => {
  it('more sessions than cacheSize: evicted ones are unsubscribed; the gateway never follows more than the limit; every request is answered', async () => {
    const { http } = await start({ GATEWAY_MAX_SUBSCRIPTIONS: '4' });
    const { app, sessions } = await startApp(wsUrl(http), { cacheSize: 4 });
    const svc = service(wsUrl(http));
    await svc.opened;
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) ids.push((await svc.call('create_session', { user_id: `u-${i}`, ttl: 600 })).session_id as string);

    for (const [i, id] of ids.entries()) {
      expect(JSON.parse((await get(app, '/me', `sid=${id}`)).body)).toMatchObject({ user_id: `u-${i}` });
      expect(sessions.stats.cached).toBeLessThanOrEqual(4);
      expect(await subscriptionsOn(http)).toBeLessThanOrEqual(4);
    }
    // Each was cached (subscribed), none refused by the gateway's limit. Past the first four the
    // cache was full: each was asked once alone (is it live?) before it evicted an entry.
    expect(sessions.stats).toMatchObject({ uncached: 0, cached: 4, validations: 4 + 8 * 2 });
    expect(await subscriptionsOn(http)).toBe(4);
    expect(sessions.client.subscriptions.size).toBe(4);

    // The first ones were evicted: asked again, and still answered.
    expect((await get(app, '/me', `sid=${ids[0]!}`)).status).toBe(200);
    expect(sessions.stats.validations).toBe(22);
    expect(await subscriptionsOn(http)).toBeLessThanOrEqual(4);

    // An evicted session that ends is no longer followed: no push reaches the middleware for it.
    const ended: string[] = [];
    sessions.client.on('session_expired', (e) => ended.push(e.sessionId ?? ''));
    await svc.call('destroy_session', { session_id: ids[1]! });
    await svc.call('destroy_session', { session_id: ids[11]! }); // cached: its push arrives
    await waitForCount(() => ended.length, 1, 5000, 'session_expired pushes');
    expect(ended).toEqual([ids[11]]);
  });

  it('with the cache full, cookies naming no session evict nothing: the cached sessions stay hits', async () => {
    const { http } = await start({ GATEWAY_MAX_SUBSCRIPTIONS: '4' });
    const { app, sessions } = await startApp(wsUrl(http), { cacheSize: 4 });
    const svc = service(wsUrl(http));
    await svc.opened;
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await svc.call('create_session', { user_id: `w-${i}`, ttl: 600 })).session_id as string);
    for (const id of ids.slice(0, 4)) expect((await get(app, '/me', `sid=${id}`)).status).toBe(200);
    expect(sessions.stats).toMatchObject({ cached: 4, validations: 4 });

    // Well-formed ids of no session, at once and one after another: each is asked (401), none is cached or subscribed.
    const bogus = (i: number) => `sid=${String(i).padStart(43, 'B')}`;
    const together = await Promise.all(Array.from({ length: 20 }, (_, i) => get(app, '/me', bogus(i))));
    expect(together.map((r) => r.status)).toEqual(Array.from({ length: 20 }, () => 401));
    for (let i = 20; i < 30; i++) expect((await get(app, '/me', bogus(i))).status).toBe(401);
    expect(sessions.stats.cached).toBe(4);
    expect(await subscriptionsOn(http)).toBe(4);

    // The sessions cached before are still answered from the cache.
    const validations = sessions.stats.validations;
    for (const id of ids.slice(0, 4)) expect((await get(app, '/me', `sid=${id}`)).status).toBe(200);
    expect(sessions.stats.validations).toBe(validations);

    // A live session still gets room: the least recently used entry is evicted for it.
    expect((await get(app, '/me', `sid=${ids[4]!}`)).status).toBe(200);
    expect(sessions.stats).toMatchObject({ cached: 4, uncached: 0 });
    expect(await subscriptionsOn(http)).toBeLessThanOrEqual(4);
    const hits = sessions.stats.hits;
    expect((await get(app, '/me', `sid=${ids[4]!}`)).status).toBe(200);
    expect(sessions.stats.hits).toBe(hits + 1);
  });

  it('a cacheSize above the gateway’s limit: the sessions past it are answered from validate_session, uncached', async () => {
    const { http } = await start({ GATEWAY_MAX_SUBSCRIPTIONS: '2' });
    const { app, sessions } = await startApp(wsUrl(http), { cacheSize: 10 });
    const svc = service(wsUrl(http));
    await svc.opened;
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push((await svc.call('create_session', { user_id: `v-${i}`, ttl: 600 })).session_id as string);
    for (const id of ids) expect((await get(app, '/me', `sid=${id}`)).status).toBe(200);
    expect(sessions.stats).toMatchObject({ cached: 2, uncached: 2 });
    expect(await subscriptionsOn(http)).toBe(2);
    // Uncached means asked each time: never answered from a copy no push keeps true.
    const validations = sessions.stats.validations;
    expect((await get(app, '/me', `sid=${ids[3]!}`)).status).toBe(200);
    expect(sessions.stats.validations).toBe(validations + 1);
  });
});
