import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, hasRedisServer, RedisServer } from '../helpers/redis-server.js';
import { waitForCount } from '../helpers/wait-for.js';
import { JWT_SECRET, SERVICE_KEY, service } from '../ws/helpers.js';
import { ensureBuilt, killAll, spawnServer, type ServerProcess } from '../ws/process.js';
import { closeAll, get, startApp } from './app.js';

/**
 * The gateway process killed with SIGKILL under the middleware: it fails closed (503, never a
 * 200 from the cache) until the gateway is back, then serves again, having re-checked.
 */

describe.skipIf(!hasRedisServer())('the gateway killed (kill -9) under the middleware', () => {
  let redis: RedisServer;
  let env: Record<string, string>;

  beforeAll(async () => {
    ensureBuilt();
    redis = await RedisServer.start();
    env = { GATEWAY_STORE: redis.url, GATEWAY_SERVICE_KEY: SERVICE_KEY, GATEWAY_JWT_SECRET: JWT_SECRET, GATEWAY_PORT: String(await freePort()) };
  }, 60_000);

  afterAll(async () => {
    await closeAll();
    await killAll();
    await redis?.stop();
  });

  it('503 with Retry-After while it is down, for cached and new cookies alike; 200 again once it is back', async () => {
    const gateway: ServerProcess = await spawnServer(env);
    const { app, sessions } = await startApp(gateway.url, { reconnect: { initialDelayMs: 50, maxDelayMs: 200 } });
    const svc = service(gateway.url);
    await svc.opened;
    const id = (await svc.call('create_session', { user_id: 'u-outage', ttl: 600 })).session_id as string;
    const other = (await svc.call('create_session', { user_id: 'u-other', ttl: 600 })).session_id as string;
    await svc.terminate();
    expect((await get(app, '/me', `sid=${id}`)).status).toBe(200);
    expect((await get(app, '/me', `sid=${id}`)).status).toBe(200);
    expect(sessions.stats).toMatchObject({ hits: 1, cached: 1 });

    gateway.child.kill('SIGKILL');
    await gateway.exited;
    await waitForCount(() => sessions.stats.disconnects, 1, 5000, 'disconnects');
    expect(sessions.stats.cached).toBe(0);
    const hits = sessions.stats.hits;
    for (const cookie of [`sid=${id}`, `sid=${other}`, `sid=${id}`]) {
      const t0 = performance.now();
      const r = await get(app, '/me', cookie);
      expect(r.status).toBe(503);
      expect(r.headers['retry-after']).toBe('1');
      expect(performance.now() - t0, 'fails fast, not after a timeout').toBeLessThan(1000);
    }
    // The optional route fails closed too: a cookie it cannot check is not "signed out".
    expect((await get(app, '/maybe', `sid=${id}`)).status).toBe(503);
    expect(sessions.stats.hits).toBe(hits);

    await spawnServer(env); // the same port, the same store
    await sessions.ready();
    const validations = sessions.stats.validations;
    const back = await get(app, '/me', `sid=${id}`);
    expect(back.status).toBe(200);
    expect(JSON.parse(back.body)).toMatchObject({ user_id: 'u-outage' });
    expect(sessions.stats.validations, 'checked again, not served from before the outage').toBe(validations + 1);
    expect((await get(app, '/me', `sid=${other}`)).status).toBe(200);
    expect((await get(app, '/me', `sid=${id}`)).status).toBe(200);
    expect(sessions.stats.hits).toBe(hits + 1);
  }, 60_000);
});

describe('the gateway frozen (SIGSTOP) under the middleware', () => {
  afterAll(async () => {
    await closeAll();
    await killAll();
  });

  it('an unanswered request pings at once: the silent link is closed within the heartbeat timeout, and cached sessions get 503, not 200; back once it resumes', async () => {
    ensureBuilt();
    const gateway = await spawnServer({ GATEWAY_SERVICE_KEY: SERVICE_KEY, GATEWAY_JWT_SECRET: JWT_SECRET, GATEWAY_PORT: String(await freePort()) });
    // The heartbeat's interval (20 s) is far off: only the ping the unanswered request sends can close the link in time.
    const { app, sessions } = await startApp(gateway.url, {
      timeoutMs: 300,
      heartbeat: { intervalMs: 20_000, timeoutMs: 1000 },
      reconnect: { initialDelayMs: 50, maxDelayMs: 200 },
    });
    const svc = service(gateway.url);
    await svc.opened;
    const id = (await svc.call('create_session', { user_id: 'u-frozen', ttl: 600 })).session_id as string;
    const other = (await svc.call('create_session', { user_id: 'u-other', ttl: 600 })).session_id as string;
    await svc.terminate();
    expect((await get(app, '/me', `sid=${id}`)).status).toBe(200);
    expect(sessions.stats.cached).toBe(1);

    gateway.child.kill('SIGSTOP');
    try {
      expect((await get(app, '/me', `sid=${other}`)).status).toBe(503); // unanswered within timeoutMs
      await waitForCount(() => sessions.stats.disconnects, 1, 5000, 'disconnects');
      expect(sessions.stats.cached).toBe(0);
      const hits = sessions.stats.hits;
      const r = await get(app, '/me', `sid=${id}`);
      expect(r.status).toBe(503);
      expect(sessions.stats.hits).toBe(hits);
    } finally {
      gateway.child.kill('SIGCONT');
    }
    await sessions.ready();
    expect((await get(app, '/me', `sid=${id}`)).status).toBe(200);
  }, 60_000);
});
