import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import { STORE_BACKENDS, type StoreServer } from '../helpers/store-servers.js';
import { SECRET } from './stdio-node.js';

/**
 * Two gateways, each with its own store connections (as two processes would have), racing
 * on the same records, on Redis and on PostgreSQL. The store's atomic operations decide;
 * JavaScript's single thread cannot, since the racers do not share one.
 */
const N = 100;

for (const backend of STORE_BACKENDS)
  describe.skipIf(!backend.available)(`atomicity across two gateways on one ${backend.name}`, () => {
    let server: StoreServer;
    let a: App;
    let b: App;

    beforeAll(async () => {
      server = await backend.start();
    });
    afterAll(async () => server?.stop());

    beforeEach(async () => {
      const config = loadConfig({ GATEWAY_STORE: server.freshStore().url, GATEWAY_JWT_SECRET: SECRET, GATEWAY_LOG_LEVEL: 'silent' });
      a = await createApp(config, { log: silentLogger() });
      b = await createApp(config, { log: silentLogger() });
      expect(a.gateway.store).not.toBe(b.gateway.store);
    });
    afterEach(async () => {
      await a.gateway.close();
      await b.gateway.close();
    });

    it(`refreshing one refresh token: 2 nodes x ${N} concurrent attempts, exactly one wins the rotation`, async () => {
      const pair = await a.gateway.tokens.generate({ sub: 'racer' });
      const attempts = Array.from({ length: 2 * N }, (_, i) => (i % 2 === 0 ? a : b).gateway.tokens.refresh(pair.refresh_token));
      const results = await Promise.all(attempts);
      const reused = results.filter((r) => 'error' in r && r.error === 'Refresh token already used: its token family is revoked');
      // Exactly one attempt found the token unspent (the atomic swap); every other one saw it spent.
      expect(reused).toHaveLength(2 * N - 1);
      // The one attempt that won the swap gets its rotation: the refresh succeeds exactly once.
      const winners = results.filter((r) => 'access_token' in r);
      expect(winners).toHaveLength(1);
      const winner = winners[0] as { access_token: string; refresh_token: string };
      // The racing reuses revoked the family (RFC 9700 4.14.2), so the pair it got is already dead.
      expect(await b.gateway.tokens.verify(winner.access_token)).toMatchObject({ valid: false, error: 'Token revoked' });
      expect(await a.gateway.tokens.refresh(winner.refresh_token)).toHaveProperty('error');
    });

    it(`refreshing in turn across the nodes: each token succeeds exactly once, ${N} rotations`, async () => {
      let token = (await a.gateway.tokens.generate({ sub: 'chain' })).refresh_token;
      for (let i = 0; i < N; i++) {
        const node = i % 2 === 0 ? b : a;
        const next = await node.gateway.tokens.refresh(token);
        expect(next).toHaveProperty('access_token');
        token = (next as { refresh_token: string }).refresh_token;
      }
      expect(await a.gateway.tokens.refresh(token)).toHaveProperty('access_token');
    });

    it(`regenerating one session: 2 nodes x ${N} concurrent attempts, one new session`, async () => {
      const s = await a.gateway.sessions.create('u1', { k: 1 });
      const results = await Promise.all(Array.from({ length: 2 * N }, (_, i) => (i % 2 === 0 ? a : b).gateway.sessions.regenerate(s.sessionId)));
      const won = results.filter((r): r is { sessionId: string } & typeof r => 'sessionId' in r);
      expect(won).toHaveLength(1);
      expect((await b.gateway.sessions.validate(s.sessionId)).valid).toBe(false);
      expect(await a.gateway.sessions.validate(won[0]!.sessionId)).toMatchObject({ valid: true, record: { u: 'u1', d: { k: 1 } } });
      expect(await a.gateway.sessions.list('u1')).toHaveLength(1);
    });

    it(`regenerate on one node vs destroy on the other, ${N} sessions at once: exactly one outcome each`, async () => {
      const sessions = await Promise.all(Array.from({ length: N }, (_, i) => a.gateway.sessions.create(`user-${i}`, undefined)));
      const races = sessions.map(async (s, i) => {
        const [regenNode, destroyNode] = i % 2 === 0 ? [a, b] : [b, a];
        const [regen, destroyed] = await Promise.all([regenNode.gateway.sessions.regenerate(s.sessionId), destroyNode.gateway.sessions.destroy(s.sessionId)]);
        return { s, i, regen, destroyed };
      });
      let regenerated = 0;
      let destroyed = 0;
      for (const { s, i, regen, destroyed: d } of await Promise.all(races)) {
        const regenWon = 'sessionId' in regen;
        // Exactly one of the two ended the old id.
        expect(regenWon !== d).toBe(true);
        expect((await a.gateway.sessions.validate(s.sessionId)).valid).toBe(false);
        const live = await b.gateway.sessions.list(`user-${i}`);
        if (regenWon) {
          regenerated++;
          expect((await b.gateway.sessions.validate(regen.sessionId)).valid).toBe(true);
          expect(live).toHaveLength(1);
        } else {
          destroyed++;
          expect(live).toHaveLength(0);
        }
      }
      expect(regenerated + destroyed).toBe(N);
    });

    it(`destroy racing on both nodes (${N} sessions): each end is reported by exactly one node`, async () => {
      const sessions = await Promise.all(Array.from({ length: N }, () => a.gateway.sessions.create('u-destroy', undefined)));
      const results = await Promise.all(sessions.map((s) => Promise.all([a.gateway.sessions.destroy(s.sessionId), b.gateway.sessions.destroy(s.sessionId)])));
      for (const [x, y] of results) expect(Number(x) + Number(y)).toBe(1);
      expect(await b.gateway.sessions.list('u-destroy')).toEqual([]);
    });
  });
