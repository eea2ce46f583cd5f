import { afterAll } from 'vitest';
import { describe } from 'vitest';
import { hasRedisServer, RedisCluster } from '../helpers/redis-server.js';
import { storeContract } from './contract.js';
import { redisHarness } from './redis-harness.js';

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
});
