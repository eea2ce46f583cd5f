import { afterAll, describe, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { openRedisStore, parseRedisUrl } from '../../src/store/redis.js';
import { hasRedisServer, RedisCluster, waitFor } from '../helpers/redis-server.js';
import { StallProxy, checkStalledEventLink } from '../helpers/stall-proxy.js';
import { storeContract } from './contract.js';
import { freshNamespace, redisHarness, redisStore } from './redis-harness.js';

/** The same contract on a 3-master Redis Cluster started here (redis-cli --cluster create). */
const cluster = hasRedisServer() ? await RedisCluster.start(3) : undefined;
afterAll(async () => cluster?.stop());

describe.skipIf(!cluster)('redis cluster store', () => {
  storeContract(
    'redis cluster (3 masters)',
    redisHarness(cluster?.url ?? '', {
      begin: async () => cluster!.nodes.forEach((n) => n.pause()),
      end: async () => cluster!.nodes.forEach((n) => n.resume()),
    }),
    { peers: true, outage: true },
  );

  describe('a stalled event connection', () => {
    it("the pub/sub client's connection that stops forwarding without closing is found, logged once, not ready meanwhile, reconnected and resynced; events flow again", async () => {
      // A cluster of its own whose nodes announce a proxy each: every client reaches every node
      // through the proxies, which stall only what they are told to.
      const own = await RedisCluster.start(3);
      const proxies = await Promise.all(own.nodes.map((n) => StallProxy.start(n.port, /SUBSCRIBE/i)));
      try {
        for (const [i, n] of own.nodes.entries()) await n.command(`CONFIG SET cluster-announce-port ${proxies[i]!.port}`);
        const announced = proxies.map((p) => `:${p.port}@`);
        for (const n of own.nodes) {
          await waitFor('every node announcing its proxy', async () => {
            const nodes = await n.command('CLUSTER NODES');
            return announced.every((a) => nodes.includes(a));
          });
        }
        const ns = freshNamespace();
        const b = await redisStore(own.url, ns);
        // B's own subscriber passes through a proxy too: it is left out of the stall.
        for (const p of proxies) p.spare();
        const lines: string[] = [];
        const log = createLogger('info', { write: (line: string) => void lines.push(line) });
        const a = await openRedisStore({ target: { ...parseRedisUrl(own.url), namespace: ns }, timeoutMs: 1000, probeMs: 100, log });
        const all = { stall: () => proxies.reduce((n, p) => n + p.stall(), 0) };
        try {
          await checkStalledEventLink(a, b, all, lines, 'event connection (SUBSCRIBE) silent');
        } finally {
          await a.close();
          await b.close();
        }
      } finally {
        for (const p of proxies) await p.close();
        await own.stop();
      }
    });
  });
});
