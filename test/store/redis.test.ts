import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from 'redis';
import { GatewayError } from '../../src/errors.js';
import { createLogger } from '../../src/log.js';
import { openRedisStore, parseRedisUrl } from '../../src/store/redis.js';
import type { Store, StoreEvent } from '../../src/store/types.js';
import { systemClock } from '../../src/clock.js';
import { hasRedisServer, RedisServer } from '../helpers/redis-server.js';
import { HOUR, realNow, skewed } from '../helpers/skewed-clock.js';
import { StallProxy, checkStalledEventLink } from '../helpers/stall-proxy.js';
import { waitForCount } from '../helpers/wait-for.js';
import { storeContract } from './contract.js';
import { storeWith } from '../helpers/store-with.js';
import { makeGateway } from '../unit/harness.js';
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
    { peers: true, outage: true },
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
      const nsB = freshNamespace();
      const a = await redisStore(server!.url, freshNamespace());
      const b = await redisStore(server!.url, nsB);
      const b2 = await redisStore(server!.url, nsB);
      try {
        await a.set('k', 'from-a', 5000);
        expect(await b.get('k')).toBeUndefined();
        const heard: StoreEvent[] = [];
        b.events.subscribe((e) => heard.push(e));
        await a.events.publish({ kind: 'ended', hash: 'h', reason: 'destroyed', origin: 'a' });
        // A barrier: Redis hands a subscriber its messages in the order they were published, so
        // once b hears this end of its own namespace, anything of a's would already be there.
        const own: StoreEvent = { kind: 'ended', hash: 'own', reason: 'destroyed', origin: 'b2' };
        await b2.events.publish(own);
        await waitForCount(() => heard.length, 1, 2000, "events of b's namespace");
        expect(heard).toEqual([own]);
      } finally {
        await a.close();
        await b.close();
        await b2.close();
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

  describe("one clock, Redis': a node whose clock is an hour off agrees with the others", () => {
    it('ahead: its index reads and adds prune no member the others hold live, and it takes, swaps and reads live values', async () => {
      const ns = freshNamespace();
      const honest = await redisStore(server!.url, ns);
      const ahead = await redisStore(server!.url, ns);
      try {
        await honest.indexAdd('u:a', 'h1', realNow() + 60_000);
        await honest.indexAdd('u:a', 'h2', realNow() + 60_000);
        for (const key of ['s:1', 's:2', 's:3']) await honest.set(key, { v: 1 }, 60_000);
        await skewed(HOUR, async () => {
          expect((await ahead.indexMembers('u:a', Date.now())).sort()).toEqual(['h1', 'h2']);
          await ahead.indexAdd('u:b', 'h3', Date.now() + 60_000);
          await ahead.indexAdd('u:a', 'h3', realNow() + 60_000);
          expect(await ahead.get('s:1')).toEqual({ v: 1 });
          expect(await ahead.swap('s:2', { v: 2 })).toEqual({ v: 1 });
          // A take deletes: what it took is answered, so the end is announced.
          expect(await ahead.take('s:3')).toEqual({ v: 1 });
        });
        expect((await honest.indexMembers('u:a', realNow())).sort()).toEqual(['h1', 'h2', 'h3']);
        expect(await honest.get('s:2')).toEqual({ v: 2 });
      } finally {
        await ahead.close();
        await honest.close();
      }
    });

    it('behind: its index reads list no member the others hold expired', async () => {
      const ns = freshNamespace();
      const behind = await redisStore(server!.url, ns);
      try {
        await skewed(-HOUR, async () => {
          await behind.indexAdd('u:a', 'live', realNow() + 60_000);
          // Ended a second ago by Redis' clock; an hour ahead of this node's.
          await behind.indexAdd('u:a', 'ended', realNow() - 1000);
          expect(await behind.indexMembers('u:a', Date.now())).toEqual(['live']);
        });
      } finally {
        await behind.close();
      }
    });
  });

  describe('ends on the event channel', () => {
    /** Waits until `what()` is true, for up to 2 s. */
    const until = async (what: () => boolean) => {
      const t0 = Date.now();
      while (!what() && Date.now() - t0 < 2000) await new Promise((r) => setTimeout(r, 5));
    };
    const ends = (n: number, origin: string): StoreEvent[] =>
      Array.from({ length: n }, (_, i) => ({ kind: 'ended', hash: `h${i}`, reason: 'revoked', origin }));

    it('a burst of ends reaches another node as one message when every node reads groups, one per end when an older node listens', async () => {
      const ns = freshNamespace();
      const a = await redisStore(server!.url, ns);
      const b = await redisStore(server!.url, ns);
      // What goes over the wire, seen by a plain subscriber of the channel (as a node that
      // predates ended_many subscribes: to the channel alone).
      const wire = createClient({ url: server!.url });
      wire.on('error', () => {});
      try {
        const heard: StoreEvent[] = [];
        b.events.subscribe((e) => heard.push(e));
        await a.events.publish({ kind: 'ended', hash: 'warm', reason: 'destroyed', origin: 'node-a' });
        await until(() => heard.length === 1);
        heard.length = 0;

        // Two nodes, both on the groups channel: one message, five ends heard.
        const seen: string[] = [];
        const spy = createClient({ url: server!.url });
        spy.on('error', () => {});
        await spy.connect();
        await spy.pSubscribe(`${ns}::events@0*`, (m) => seen.push(m));
        await spy.subscribe(`${ns}::events@0:ended_many`, () => {});
        await Promise.all(ends(5, 'node-a').map((e) => a.events.publish(e)));
        await until(() => heard.length === 5);
        expect(heard).toEqual(ends(5, 'node-a'));
        expect(seen.map((m) => (JSON.parse(m) as { kind: string }).kind)).toEqual(['ended_many']);
        await spy.close();

        // A listener of the channel alone: every end goes as its own message, and it hears them all.
        await wire.connect();
        const old: string[] = [];
        await wire.subscribe(`${ns}::events@0`, (m) => old.push(m));
        heard.length = 0;
        await Promise.all(ends(3, 'node-a').map((e) => a.events.publish(e)));
        await until(() => heard.length === 3 && old.length === 3);
        expect(heard).toEqual(ends(3, 'node-a'));
        expect(old.map((m) => JSON.parse(m) as unknown)).toEqual(ends(3, 'node-a'));
      } finally {
        await wire.close().catch(() => {});
        await a.close();
        await b.close();
      }
    });

    it('an end gathered just before close is still published', async () => {
      const ns = freshNamespace();
      const a = await redisStore(server!.url, ns);
      const b = await redisStore(server!.url, ns);
      try {
        const heard: StoreEvent[] = [];
        b.events.subscribe((e) => heard.push(e));
        const published = Promise.all(ends(4, 'node-a').map((e) => a.events.publish(e)));
        await a.close();
        await published;
        await until(() => heard.length === 4);
        expect(heard).toEqual(ends(4, 'node-a'));
      } finally {
        await b.close();
      }
    });
  });

  describe('a stalled event connection', () => {
    it('a SUBSCRIBE connection that stops forwarding without closing is found, logged once, not ready meanwhile, reconnected and resynced; events flow again', async () => {
      const ns = freshNamespace();
      // Node A reaches Redis through a path that will stop forwarding its subscriber's traffic.
      const proxy = await StallProxy.start(server!.port, /SUBSCRIBE/i);
      const lines: string[] = [];
      const log = createLogger('info', { write: (line: string) => void lines.push(line) });
      const a = await openRedisStore({ target: { ...parseRedisUrl(`redis://127.0.0.1:${proxy.port}`), namespace: ns }, timeoutMs: 1000, probeMs: 100, log });
      const b = await redisStore(server!.url, ns);
      try {
        await checkStalledEventLink(a, b, proxy, lines, 'event connection (SUBSCRIBE) silent');
      } finally {
        await a.close();
        await b.close();
        await proxy.close();
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
  describe('a refresh whose spend Redis carries out after the time limit (stalled by SIGSTOP)', () => {
    it('is answered error 11 and the token is put back when the late answer comes: the retry rotates, the family lives', async () => {
      const store = await redisStore(server!.url, freshNamespace());
      try {
        // The stall begins just as the spend is sent: the rate check before it went through.
        let spends = 0;
        const stalling = storeWith(store, {
          swap: (swap: Store['swap'], ...args: Parameters<Store['swap']>) => {
            if (spends++ === 0) server!.pause();
            return swap(...args);
          },
        });
        const { gateway } = makeGateway({ store: stalling, clock: systemClock });
        const pair = await gateway.tokens.generate({ sub: 'hana' });
        let answered: unknown;
        try {
          answered = await gateway.tokens.refresh(pair.refresh_token).catch((e: unknown) => e);
        } finally {
          server!.resume();
        }
        expect(answered).toMatchObject({ code: 'UNAVAILABLE' });
        expect(spends).toBe(1);
        // Ready again once a probe answered, which Redis answers after the late spend.
        await waitForCount(() => (store.isReady() ? 1 : 0), 1, 10_000, 'the store ready again');
        const retried = await gateway.tokens.refresh(pair.refresh_token);
        expect(retried, JSON.stringify(retried)).toHaveProperty('access_token');
        expect((await gateway.tokens.verify(pair.access_token)).valid).toBe(true);
      } finally {
        server!.resume();
        await store.close();
      }
    });
  });
});
