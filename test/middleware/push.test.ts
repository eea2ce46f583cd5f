import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasRedisServer, RedisServer } from '../helpers/redis-server.js';
import { waitForCount } from '../helpers/wait-for.js';
import { JWT_SECRET, SERVICE_KEY, service, type Peer } from '../ws/helpers.js';
import { ensureBuilt, killAll, spawnServer, type ServerProcess } from '../ws/process.js';
import { closeAll, get, startApp } from './app.js';
import type { GatewaySessions } from '../../middleware/src/index.js';

/**
 * Two gateway processes on one real redis-server. The middleware follows node A; the
 * sessions are ended, updated or extended through node B. Each check first shows the entry
 * cached (a hit, no validate_session), then waits for the push to arrive (a count), then
 * shows the next request answered from what the push said: without push invalidation the
 * cache would still answer the old way.
 */

describe.skipIf(!hasRedisServer())('the middleware on node A, the change on node B', () => {
  let redis: RedisServer;
  let a: ServerProcess;
  let b: ServerProcess;
  let app: string;
  let sessions: GatewaySessions;
  let admin: Peer;

  beforeAll(async () => {
    ensureBuilt();
    redis = await RedisServer.start();
    const env = { GATEWAY_STORE: redis.url, GATEWAY_SERVICE_KEY: SERVICE_KEY, GATEWAY_JWT_SECRET: JWT_SECRET };
    [a, b] = await Promise.all([spawnServer({ ...env, GATEWAY_NODE_ID: 'node-a' }), spawnServer({ ...env, GATEWAY_NODE_ID: 'node-b' })]);
    ({ app, sessions } = await startApp(a.url));
    admin = service(b.url);
    await admin.opened;
  }, 60_000);

  afterAll(async () => {
    await admin?.terminate();
    await closeAll();
    await killAll();
    await redis?.stop();
  });

  /** A session created on node B, then requested twice through the app: the second a hit. */
  async function cached(user: string, o: { ttl?: number; data?: Record<string, unknown> } = {}): Promise<string> {
    const created = await admin.call('create_session', { user_id: user, ttl: o.ttl ?? 600, ...(o.data ? { data: o.data } : {}) });
    const id = created.session_id as string;
    expect((await get(app, '/me', `sid=${id}`)).status).toBe(200);
    const { hits, validations } = sessions.stats;
    expect((await get(app, '/me', `sid=${id}`)).status).toBe(200);
    expect(sessions.stats.hits, 'served from the cache').toBe(hits + 1);
    expect(sessions.stats.validations).toBe(validations);
    return id;
  }

  it('destroy_session on node B: the next request on A is refused (401)', async () => {
    const id = await cached('u-destroy');
    const pushes = sessions.stats.expiredPushes;
    expect(await admin.call('destroy_session', { session_id: id })).toMatchObject({ type: 'session_destroyed' });
    await waitForCount(() => sessions.stats.expiredPushes, pushes + 1, 15_000, 'session_expired pushes');
    expect((await get(app, '/me', `sid=${id}`)).status).toBe(401);
  });

  it('regenerate_session on node B: the old cookie is refused, the new one accepted', async () => {
    const id = await cached('u-regen');
    const pushes = sessions.stats.expiredPushes;
    const r = await admin.call('regenerate_session', { old_session_id: id });
    expect(r.type).toBe('session_regenerated');
    await waitForCount(() => sessions.stats.expiredPushes, pushes + 1, 15_000, 'session_expired pushes');
    expect((await get(app, '/me', `sid=${id}`)).status).toBe(401);
    expect(JSON.parse((await get(app, '/me', `sid=${r.new_session_id as string}`)).body)).toMatchObject({ user_id: 'u-regen' });
  });

  it('revoke_user_sessions on node B: every cached session of the user is refused, another user’s is not', async () => {
    const ids = [await cached('u-revoke'), await cached('u-revoke')];
    const other = await cached('u-keep');
    const pushes = sessions.stats.expiredPushes;
    expect(await admin.call('revoke_user_sessions', { user_id: 'u-revoke' })).toMatchObject({ type: 'sessions_revoked', count: 2 });
    await waitForCount(() => sessions.stats.expiredPushes, pushes + 2, 15_000, 'session_expired pushes');
    for (const id of ids) expect((await get(app, '/me', `sid=${id}`)).status).toBe(401);
    const hits = sessions.stats.hits;
    expect((await get(app, '/me', `sid=${other}`)).status).toBe(200);
    expect(sessions.stats.hits).toBe(hits + 1);
  });

  it('update_session on node B: the next request on A carries the new data, still from the cache', async () => {
    const id = await cached('u-update', { data: { role: 'reader' } });
    const pushes = sessions.stats.updatedPushes;
    expect(await admin.call('update_session', { session_id: id, data: { role: 'admin', teams: ['a'] } })).toMatchObject({ type: 'session_updated' });
    await waitForCount(() => sessions.stats.updatedPushes, pushes + 1, 15_000, 'session_updated pushes');
    const { hits, validations } = sessions.stats;
    const r = await get(app, '/me', `sid=${id}`);
    expect(JSON.parse(r.body)).toMatchObject({ user_id: 'u-update', data: { role: 'admin', teams: ['a'] } });
    expect(sessions.stats).toMatchObject({ hits: hits + 1, validations });
  });

  it('extend_session on node B: the next request on A sees the later end, still from the cache', async () => {
    const id = await cached('u-extend', { ttl: 20 });
    expect(JSON.parse((await get(app, '/me', `sid=${id}`)).body).expires_in).toBeLessThanOrEqual(20);
    const pushes = sessions.stats.extendedPushes;
    expect(await admin.call('extend_session', { session_id: id, ttl: 3000 })).toMatchObject({ type: 'session_extended' });
    await waitForCount(() => sessions.stats.extendedPushes, pushes + 1, 15_000, 'session_extended pushes');
    const { hits, validations } = sessions.stats;
    const after = JSON.parse((await get(app, '/me', `sid=${id}`)).body) as { expires_in: number };
    expect(after.expires_in).toBeGreaterThan(2990);
    expect(after.expires_in).toBeLessThanOrEqual(3000);
    expect(sessions.stats).toMatchObject({ hits: hits + 1, validations });
  });
});
