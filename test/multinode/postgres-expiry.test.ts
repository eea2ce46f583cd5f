import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresServer } from '../helpers/postgres-server.js';
import { waitForItem } from '../helpers/wait-for.js';
import { freshSchema } from '../store/postgres-harness.js';
import { hasBuild, StdioNode } from './stdio-node.js';

/**
 * PostgreSQL has no TTL: sessions that reach their end must be pushed by the nodes' own
 * timers and removed from the tables by the sweep. A small run of what
 * bench/postgres-expiry.js does with 100,000 sessions (10 s rather than 5 s of TTL: on a
 * loaded machine creating and following 2,000 sessions can take longer than 5 s).
 */
const N = 2000;

describe.skipIf(!hasBuild())('sessions expiring on PostgreSQL', () => {
  let server: PostgresServer;
  let a: StdioNode;
  let b: StdioNode;
  const schema = freshSchema();

  beforeAll(async () => {
    server = await PostgresServer.start();
    a = new StdioNode(server.storeUrl(schema), { GATEWAY_NODE_ID: 'node-a' });
    b = new StdioNode(server.storeUrl(schema), { GATEWAY_NODE_ID: 'node-b' });
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await server?.stop();
  });

  it(`${N} sessions with a 10 s TTL, created on A and followed on B: every one pushed as ttl, and none left in the tables`, async () => {
    const ids: string[] = [];
    for (let i = 0; i < N; i += 200) {
      const batch = await Promise.all(Array.from({ length: 200 }, (_, j) => a.request({ type: 'create_session', user_id: `user-${(i + j) % 50}`, ttl: 10 })));
      ids.push(...batch.map((r) => r.session_id as string));
    }
    const subscribed = await Promise.all(ids.map((id, i) => b.request({ type: 'subscribe_session', session_id: id }, `web-${i}`)));
    expect(subscribed.filter((r) => r.type === 'subscribed')).toHaveLength(N);
    const [before] = await server.query<{ n: string }>(`SELECT count(*) AS n FROM ${schema}.entries`);
    expect(Number(before!.n)).toBeGreaterThanOrEqual(N);

    // Every push, counted (not timed): the N-th arrives or this fails after 30 s.
    const ended = (p: { body: Record<string, unknown> }) => p.body.type === 'session_expired' && p.body.reason === 'ttl';
    await waitForItem(b.pushes, () => b.pushes.filter(ended).length >= N, 30_000, `${N} ttl pushes`);
    const pushed = new Set(b.pushes.filter(ended).map((p) => p.body.session_id));
    expect(ids.filter((id) => !pushed.has(id))).toEqual([]);
    expect(b.pushes.filter(ended)).toHaveLength(N);
    // Each push went to the connection that subscribed to that session.
    const subscriber = new Map(ids.map((id, i) => [id, `web-${i}`]));
    expect(b.pushes.filter((p) => ended(p) && p.dest !== subscriber.get(p.body.session_id as string))).toEqual([]);

    let left = -1;
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const [row] = await server.query<{ n: string }>(
        `SELECT (SELECT count(*) FROM ${schema}.entries WHERE key <> 'epoch') + (SELECT count(*) FROM ${schema}.index_members) AS n`,
      );
      left = Number(row!.n);
      if (left === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(left).toBe(0);
  }, 60_000);
});
