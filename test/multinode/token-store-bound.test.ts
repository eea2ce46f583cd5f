import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisServer } from '../helpers/redis-server.js';
import { freshNamespace, redisStore } from '../store/redis-harness.js';
import { waitForItem } from '../helpers/wait-for.js';
import { Driver, makeGateway } from '../unit/harness.js';

/**
 * What `exchange_session` leaves in Redis: a bounded number of long-lived keys per session,
 * and once the session ended, nothing that outlives its access tokens (access TTL plus
 * tolerance), where each exchange used to leave ~1.5 KB for the 14-day refresh TTL.
 */
describe('token state of one session on Redis', () => {
  let redis: RedisServer;
  let raw: ReturnType<typeof createClient>;

  beforeAll(async () => {
    redis = await RedisServer.start();
    raw = createClient({ url: redis.url });
    raw.on('error', () => {});
    await raw.connect();
  });

  afterAll(async () => {
    await raw?.close();
    await redis?.stop();
  });

  /** The namespace's keys with their remaining lifetime, ms. */
  async function keysWithTtl(ns: string): Promise<{ key: string; ttl: number }[]> {
    const keys = await raw.keys(`${ns}::*`);
    // The store's own marker (`epoch`, StoreEpoch) is not the session's.
    const mine = keys.filter((key) => key !== `${ns}::epoch`);
    return Promise.all(mine.map(async (key) => ({ key: key.slice(ns.length + 2), ttl: await raw.pTTL(key) })));
  }

  it('200 exchanges: at most 16 families live long; after the end, no key outlives the access tokens', async () => {
    const ns = freshNamespace();
    const store = await redisStore(redis.url, ns);
    // Redis expires on real time: the manual clock starts now and is not moved.
    const { gateway } = makeGateway({ store, start: Date.now() });
    const d = new Driver(gateway);
    const call = async (body: Record<string, unknown> & { type: string }) => {
      const id = d.send(body);
      await waitForItem(d.out, (m) => m.body.in_reply_to === id, 5000, 'reply');
      return d.reply(id);
    };
    try {
      const sid = (await call({ type: 'create_session', user_id: 'alice' })).session_id as string;
      for (let i = 0; i < 200; i++) expect((await call({ type: 'exchange_session', session_id: sid })).type).toBe('token_generated');
      const accessLife = (900 + 30) * 1000;
      const longLived = (await keysWithTtl(ns)).filter((k) => k.ttl > accessLife);
      // The session, its user index, its binding marker and family index, the user's index of
      // families; per live family its record, its refresh token and its index of refresh tokens.
      expect(longLived.length).toBeLessThanOrEqual(5 + 3 * 16);
      expect(await call({ type: 'destroy_session', session_id: sid })).toMatchObject({ type: 'session_destroyed' });
      // The end revokes the families in the background: wait for the last long-lived key to go.
      let left: { key: string; ttl: number }[] = [];
      for (let i = 0; i < 100; i++) {
        left = (await keysWithTtl(ns)).filter((k) => k.ttl > accessLife || k.ttl === -1);
        if (left.length === 0) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(left).toEqual([]);
    } finally {
      await gateway.close();
    }
  });
});
