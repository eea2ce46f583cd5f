import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisServer } from '../helpers/redis-server.js';
import { freshNamespace } from '../store/redis-harness.js';
import { StdioNode } from './stdio-node.js';

/**
 * Once a refresh family is revoked, nothing of it may succeed on any node, even when its
 * current refresh token is presented several times at once across nodes: the racing
 * reuses must not turn the revocation into "a racing reuse of this very token".
 */
const TRIALS = 30;

describe('a revoked refresh family stays revoked across three nodes on one Redis', () => {
  let redis: RedisServer;
  let nodes: StdioNode[] = [];

  beforeAll(async () => {
    redis = await RedisServer.start();
    const url = `${redis.url}?namespace=${freshNamespace()}`;
    nodes = ['n1', 'n2', 'n3'].map((id) => new StdioNode(url, { GATEWAY_NODE_ID: id }));
  });

  afterAll(async () => {
    for (const n of nodes) await n.stop();
    await redis?.stop();
  });

  for (const how of ['reuse of R0', 'revoke_token R1'] as const) {
    it(`revoked by ${how}: R1 presented four times at once across the nodes is refused every time, ${TRIALS} trials`, async () => {
      const [a, b, c] = nodes as [StdioNode, StdioNode, StdioNode];
      const succeeded: number[] = [];
      for (let trial = 0; trial < TRIALS; trial++) {
        const r0 = await a.request({ type: 'generate_access_token', payload: { sub: `race-${trial}` } });
        expect(r0.type).toBe('token_generated');
        const r1 = await b.request({ type: 'refresh_token', refresh_token: r0.refresh_token });
        expect(r1.type).toBe('token_refreshed');
        const revoke =
          how === 'reuse of R0'
            ? await c.request({ type: 'refresh_token', refresh_token: r0.refresh_token })
            : await c.request({ type: 'revoke_token', token: r1.refresh_token });
        expect(revoke.type).toBe(how === 'reuse of R0' ? 'token_invalid' : 'token_revoked');
        const replies = await Promise.all([a, b, c, a].map((n) => n.request({ type: 'refresh_token', refresh_token: r1.refresh_token })));
        const won = replies.filter((r) => r.type === 'token_refreshed');
        if (won.length > 0) succeeded.push(trial);
      }
      expect(succeeded, `trials in which a revoked family answered token_refreshed: ${succeeded.length} of ${TRIALS}`).toEqual([]);
    });
  }
});
