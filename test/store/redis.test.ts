import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from 'redis';
import { GatewayError } from '../../src/errors.js';
import { parseRedisUrl } from '../../src/store/redis.js';
import { hasRedisServer, RedisServer } from '../helpers/redis-server.js';
import { storeContract } from './contract.js';
import { freshNamespace, redisHarness, redisStore } from './redis-harness.js';

const server = hasRedisServer() ? await RedisServer.start() : undefined;
afterAll(async () => server?.stop());

describe.skipIf(!server)('redis store', () => {
  // The contract, with a stalled server (SIGSTOP) as the outage: operations must time out.
  storeContract(
    'redis',
    redisHarness(server?.url ?? '', {
      begin: async () => server!.pause(),
      end: async () => server!.resume(),
    }),
  );

  describe('keys in Redis', () => {
    let raw: ReturnType<typeof createClient>;
    beforeAll(async () => {
      raw = createClient({ url: server!.url });
      raw.on('error', () => {});
      await raw.connect();
    });
    afterAll(async () => raw.close());

    it('are namespaced, carry a real TTL, and are shared by Keyv and the atomics', async () => {
      const ns = freshNamespace();
      const store = await redisStore(server!.url, ns);
      try {
        await store.set('s:abc', { u: 'user1' }, 5000);
        await store.indexAdd('u:user1', 'abc', Date.now() + 5000);
        const keys = (await raw.keys(`${ns}::*`)).sort();
        expect(keys).toEqual([`${ns}::s:abc`, `${ns}::u:user1`]);
        // No key without an expiry: none can outlive its session.
        for (const k of keys) {
          const pttl = await raw.pTTL(k);
          expect(pttl).toBeGreaterThan(4000);
          expect(pttl).toBeLessThanOrEqual(5000);
        }
        // Keyv's format on the wire; the swap keeps Keyv's expires beside Redis' TTL.
        const before = JSON.parse((await raw.get(`${ns}::s:abc`))!);
        await store.swap('s:abc', { u: 'user1', x: 1 });
        const after = JSON.parse((await raw.get(`${ns}::s:abc`))!);
        expect(after).toEqual({ value: { u: 'user1', x: 1 }, expires: before.expires });
        expect(await raw.pTTL(`${ns}::s:abc`)).toBeGreaterThan(4000);
        // take (GETDEL) removes the very key Keyv wrote.
        expect(await store.take('s:abc')).toEqual({ u: 'user1', x: 1 });
        expect(await raw.exists(`${ns}::s:abc`)).toBe(0);
      } finally {
        await store.close();
      }
    });

    it('the index key expires with its last member and disappears when emptied', async () => {
      const ns = freshNamespace();
      const store = await redisStore(server!.url, ns);
      try {
        const now = Date.now();
        await store.indexAdd('u:x', 'a', now + 3000);
        await store.indexAdd('u:x', 'b', now + 9000);
        expect(await raw.pTTL(`${ns}::u:x`)).toBeGreaterThan(8000);
        await store.indexRemove('u:x', 'b');
        expect(await raw.pTTL(`${ns}::u:x`)).toBeLessThanOrEqual(3000);
        await store.indexRemove('u:x', 'a');
        expect(await raw.exists(`${ns}::u:x`)).toBe(0);
      } finally {
        await store.close();
      }
    });

    it('two namespaces on one server see nothing of each other', async () => {
      const a = await redisStore(server!.url, freshNamespace());
      const b = await redisStore(server!.url, freshNamespace());
      try {
        await a.set('k', 'from-a', 5000);
        expect(await b.get('k')).toBeUndefined();
        const heard: unknown[] = [];
        b.events.subscribe((e) => heard.push(e));
        await a.events.publish({ kind: 'ended', hash: 'h', reason: 'destroyed', origin: 'a' });
        await new Promise((r) => setTimeout(r, 100));
        expect(heard).toEqual([]);
      } finally {
        await a.close();
        await b.close();
      }
    });

    it('ignores malformed messages on the event channel', async () => {
      const ns = freshNamespace();
      const store = await redisStore(server!.url, ns);
      try {
        const heard: unknown[] = [];
        store.events.subscribe((e) => heard.push(e));
        for (const bad of [
          'not json',
          '{}',
          '{"kind":"ended","hash":"h","reason":"nope","origin":"o"}',
          '{"kind":"ended","hash":"a b","reason":"ttl","origin":"o"}',
          'null',
        ]) {
          await raw.publish(`${ns}::events@0`, bad);
        }
        await raw.publish(`${ns}::events@0`, '{"kind":"ended","hash":"h1","reason":"ttl","origin":"o"}');
        const t0 = Date.now();
        while (heard.length === 0 && Date.now() - t0 < 1000) await new Promise((r) => setTimeout(r, 5));
        expect(heard).toEqual([{ kind: 'ended', hash: 'h1', reason: 'ttl', origin: 'o' }]);
      } finally {
        await store.close();
      }
    });
  });

  describe('a crashed server (kill -9, AOF on)', () => {
    it('fails fast with UNAVAILABLE, keeps acknowledged writes, resyncs events and resumes within 2 s', async () => {
      const own = await RedisServer.start({ persist: true });
      const ns = freshNamespace();
      const store = await redisStore(own.url, ns);
      try {
        let resyncs = 0;
        store.events.onResync(() => resyncs++);
        await store.set('s:kept', { u: 'u1' }, 60_000);
        await own.crash();
        const t0 = Date.now();
        for (const op of [store.get('s:kept'), store.take('s:kept'), store.swap('s:kept', 1), store.indexMembers('u:u1', Date.now())]) {
          const err = await op.then(
            () => undefined,
            (e: unknown) => e,
          );
          expect((err as GatewayError).wireCode).toBe(11);
        }
        // Disconnected: no waiting on the time limit (1 s) at all; slack for a busy machine.
        expect(Date.now() - t0).toBeLessThan(600);
        expect(store.isReady()).toBe(false);
        const before = resyncs;
        await own.restart();
        const back = Date.now();
        let value: unknown;
        while (Date.now() - back < 5000) {
          value = await store.get('s:kept').catch(() => 'unavailable');
          if (value !== 'unavailable') break;
          await new Promise((r) => setTimeout(r, 20));
        }
        expect(Date.now() - back).toBeLessThan(2000);
        expect(value).toEqual({ u: 'u1' });
        while (!store.isReady() && Date.now() - back < 3000) await new Promise((r) => setTimeout(r, 20));
        expect(store.isReady()).toBe(true);
        while (resyncs === before && Date.now() - back < 3000) await new Promise((r) => setTimeout(r, 20));
        expect(resyncs).toBeGreaterThan(before);
      } finally {
        await store.close();
        await own.stop();
      }
    });

    it('starts while Redis is down, answering UNAVAILABLE, and connects when it appears', async () => {
      const own = await RedisServer.start();
      await own.crash();
      const target = { ...parseRedisUrl(own.url), namespace: freshNamespace() };
      const { openRedisStore } = await import('../../src/store/redis.js');
      const t0 = Date.now();
      const store = await openRedisStore({ target, timeoutMs: 1000, connectWaitMs: 300, probeMs: 100 });
      try {
        expect(Date.now() - t0).toBeLessThan(1000);
        expect(store.isReady()).toBe(false);
        const err = await store.get('k').then(
          () => undefined,
          (e: unknown) => e,
        );
        expect((err as GatewayError).wireCode).toBe(11);
        await own.restart();
        const back = Date.now();
        while (!store.isReady() && Date.now() - back < 3000) await new Promise((r) => setTimeout(r, 20));
        expect(store.isReady()).toBe(true);
        await store.set('k', 'v', 5000);
        expect(await store.get('k')).toBe('v');
      } finally {
        await store.close();
        await own.stop();
      }
    });
  });
});
