import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { createStore } from '../../src/store/index.js';
import { STORE_BACKENDS, type StoreServer } from '../helpers/store-servers.js';
import { browser, createSession, service, start, stopAll, type Msg } from '../ws/helpers.js';

/**
 * Two gateway servers in this process on one real Redis, on one ManualClock: a browser bound
 * to its session on node B, the session extended on node A. B's follower learns the new end
 * through the store's events, and its expiry warning moves to it.
 */
const redis = STORE_BACKENDS.find((b) => b.name === 'Redis')!;
const isPush = (m: Msg) => m.body.in_reply_to === undefined;

describe.skipIf(!redis.available)('extend_session across two nodes on Redis: the bound follower on the other node', () => {
  let server: StoreServer;

  beforeAll(async () => {
    server = await redis.start();
  }, 30_000);

  afterEach(stopAll);

  afterAll(async () => {
    await server?.stop();
  });

  it('gets session_extended with the new end, and its warning comes 60 s before the new end, not the old one', async () => {
    const clock = new ManualClock(Date.now());
    const url = server.freshStore().url;
    const env = { GATEWAY_EXPIRY_WARNING: '60', GATEWAY_SESSION_MAX_LIFETIME: '86400' };
    const a = await start(env, { clock, store: await createStore({ url, clock, timeoutMs: 2000 }) });
    const b = await start(env, { clock, store: await createStore({ url, clock, timeoutMs: 2000 }) });
    const sid = await createSession(a.server.url, 120);
    const bound = browser(b.server.url, { cookie: `sid=${sid}` });
    await bound.opened;
    const svc = service(a.server.url);
    await svc.opened;
    expect(await svc.call('extend_session', { session_id: sid, ttl: 600 })).toMatchObject({ type: 'session_extended', expires_in: 600 });
    expect((await bound.next(isPush)).body).toMatchObject({ type: 'session_extended', bound: true, expires_in: 600 });
    // Past the old warning time (59 s left then), to 55 s before the new end.
    clock.advance(61_000);
    clock.advance(484_000);
    expect((await bound.next(isPush)).body).toMatchObject({ type: 'session_expiring', bound: true, expires_in: 55 });
    expect(bound.messages.filter(isPush)).toEqual([]);
  });
});
