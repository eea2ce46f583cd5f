/**
 * Fault: kill -9 of a gateway with Redis. Clients stream creates, destroys, token issues,
 * refreshes and revocations at a gateway on a real redis-server; the gateway is killed
 * mid-stream; a fresh gateway on the same Redis must know every session, destruction,
 * refresh token and revocation that the dead one acknowledged.
 * `make test`: one kill; `make soak` (SOAK=1): three kills, more load.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasRedisServer, RedisServer } from '../helpers/redis-server.js';
import { limit, report, SOAK } from '../fuzz/report.js';
import { SECRET } from '../security/harness.js';
import { spawnServe, type ServeNode } from '../security/spawn.js';
import { waitForCount } from '../helpers/wait-for.js';
import { Client, Tally } from './client.js';

/** Acknowledged items each kill waits for; then the audit needs more than these many of each kind. */
const ACKED_PER_KILL = SOAK ? 2000 : 150;
const MIN_LIVE = 50;
const MIN_OTHERS = 30;
const WORKERS = 12;
const SERVICE_KEY = 'oYbSjbiRYxFxmpeJQcYLbeBrz467CmS4ARkJti/GQxQ=';
const redisAvailable = hasRedisServer();
let redis: RedisServer | undefined;
const nodes: ServeNode[] = [];

const start = async () => {
  const n = await spawnServe({ GATEWAY_STORE: redis!.url, GATEWAY_JWT_SECRET: SECRET, GATEWAY_SERVICE_KEY: SERVICE_KEY, GATEWAY_LOG_LEVEL: 'warn' });
  nodes.push(n);
  return n;
};

beforeAll(async () => {
  if (redisAvailable) redis = await RedisServer.start({ persist: true });
}, 30_000);

afterAll(async () => {
  for (const n of nodes) await n.stop();
  await redis?.stop();
});

interface Acked {
  live: Set<string>;
  destroyed: Set<string>;
  /** refresh tokens returned and never presented since: each must still refresh */
  freshRefresh: Set<string>;
  /** refresh tokens acknowledged as spent: presenting one again must fail */
  spentRefresh: Set<string>;
  revokedAccess: Set<string>;
}

describe.skipIf(!redisAvailable)('kill -9 of a gateway with Redis', () => {
  it(
    'a fresh gateway on the same Redis knows everything the dead one acknowledged',
    async () => {
      const acked: Acked = { live: new Set(), destroyed: new Set(), freshRefresh: new Set(), spentRefresh: new Set(), revokedAccess: new Set() };
      const tally = new Tally();
      const kills = SOAK ? 3 : 1;
      const perKill: { acknowledged_before_kill: number; in_flight_at_kill: number }[] = [];
      let node = await start();

      for (let k = 0; k < kills; k++) {
        const clients = await Promise.all([0, 1, 2, 3].map(() => Client.open(node.url, SERVICE_KEY)));
        let stop = false;
        let inFlight = 0;
        let ackCount = 0;
        const worker = async (c: Client, w: number) => {
          for (let n = w; !stop && c.closed === undefined; n += 13) {
            inFlight++;
            try {
              switch (n % 5) {
                case 0:
                case 1: {
                  const r = await c.call({ type: 'create_session', user_id: `k${k}w${w}` }, 3000, tally);
                  if (r?.type === 'session_created') {
                    acked.live.add(r.session_id as string);
                    ackCount++;
                  }
                  break;
                }
                case 2: {
                  const id = [...acked.live][n % Math.max(1, acked.live.size)];
                  if (id === undefined) break;
                  acked.live.delete(id);
                  const r = await c.call({ type: 'destroy_session', session_id: id }, 3000, tally);
                  if (r?.type === 'session_destroyed') {
                    acked.destroyed.add(id);
                    ackCount++;
                  }
                  break;
                }
                case 3: {
                  const r = await c.call({ type: 'generate_access_token', payload: { sub: `k${k}w${w}` } }, 3000, tally);
                  if (r?.type === 'token_generated') {
                    acked.freshRefresh.add(r.refresh_token as string);
                    ackCount++;
                    if (n % 2 === 0) {
                      const v = await c.call({ type: 'revoke_token', token: r.access_token as string }, 3000, tally);
                      if (v?.type === 'token_revoked') acked.revokedAccess.add(r.access_token as string);
                    }
                  }
                  break;
                }
                case 4: {
                  const rt = [...acked.freshRefresh][n % Math.max(1, acked.freshRefresh.size)];
                  if (rt === undefined) break;
                  acked.freshRefresh.delete(rt);
                  const r = await c.call({ type: 'refresh_token', refresh_token: rt }, 3000, tally);
                  if (r?.type === 'token_refreshed') {
                    acked.spentRefresh.add(rt);
                    acked.freshRefresh.add(r.refresh_token as string);
                    ackCount++;
                  }
                  break;
                }
              }
            } finally {
              inFlight--;
            }
          }
        };
        const workers = clients.flatMap((c, i) => [0, 1, 2].map((j) => worker(c, i * 3 + j)));
        expect(workers).toHaveLength(WORKERS);
        // Kill once enough is acknowledged (a count, not a time: a loaded machine is slower).
        const others = () => acked.destroyed.size + acked.spentRefresh.size + acked.revokedAccess.size;
        await waitForCount(() => ackCount, ACKED_PER_KILL, limit(30_000, 300_000), 'acknowledged items before the kill');
        // Over the minimums the audit needs, with a margin for destroys in flight at the kill (taken
        // out of `live` when sent, never acknowledged): one per worker at most.
        await waitForCount(
          () => Math.min(acked.live.size - MIN_LIVE - WORKERS, others() - MIN_OTHERS),
          1,
          limit(30_000, 300_000),
          'live sessions and other acknowledged changes over the minimum',
        );
        const flying = inFlight;
        await node.crash();
        stop = true;
        await Promise.all(workers);
        perKill.push({ acknowledged_before_kill: ackCount, in_flight_at_kill: flying });
        node = await start();
      }

      // Audit on the fresh gateway.
      const audit = await Client.open(node.url, SERVICE_KEY);
      const lost: string[] = [];
      for (const id of acked.live) if ((await audit.call({ type: 'validate_session', session_id: id }))?.type !== 'session_valid') lost.push('session');
      for (const id of acked.destroyed)
        if ((await audit.call({ type: 'validate_session', session_id: id }))?.type !== 'session_invalid') lost.push('destruction');
      for (const t of acked.revokedAccess) if ((await audit.call({ type: 'verify_token', token: t }))?.type !== 'token_invalid') lost.push('revocation');
      // A spent refresh token presented again revokes its family: test those after the fresh ones.
      for (const rt of acked.freshRefresh)
        if ((await audit.call({ type: 'refresh_token', refresh_token: rt }))?.type !== 'token_refreshed') lost.push('refresh token');
      for (const rt of acked.spentRefresh)
        if ((await audit.call({ type: 'refresh_token', refresh_token: rt }))?.type !== 'token_invalid') lost.push('spent refresh');
      audit.close();

      report('fault: kill -9 of a gateway with Redis', {
        kills,
        requests_offered: tally.offered,
        answered: tally.answered,
        unanswered: tally.timedOut,
        by_type: tally.byType,
        per_kill: perKill,
        audited: {
          live_sessions: acked.live.size,
          destroyed_sessions: acked.destroyed.size,
          fresh_refresh_tokens: acked.freshRefresh.size,
          spent_refresh_tokens: acked.spentRefresh.size,
          revoked_access_tokens: acked.revokedAccess.size,
        },
        acknowledged_lost: lost.length,
      });
      expect(lost).toEqual([]);
      expect(acked.live.size).toBeGreaterThan(MIN_LIVE);
      expect(acked.destroyed.size + acked.spentRefresh.size + acked.revokedAccess.size).toBeGreaterThan(MIN_OTHERS);
      for (const k of perKill) expect(k.acknowledged_before_kill).toBeGreaterThanOrEqual(ACKED_PER_KILL);
    },
    limit(90_000),
  );

  it('a gateway killed right after answering a revoke has already told the other node: every subscriber there gets its end', async () => {
    const a = await start();
    const c = await start();
    const onA = await Client.open(a.url, SERVICE_KEY);
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) ids.push((await onA.call({ type: 'create_session', user_id: 'killed-after-answer' }))!.session_id as string);
    for (const session_id of ids) expect((await onA.call({ type: 'subscribe_session', session_id }))?.type).toBe('subscribed');
    const ended = new Set<string>();
    onA.ws.on('message', (data) => {
      const m = JSON.parse(data.toString()) as { body: { type: string; session_id?: string } };
      if (m.body.type === 'session_expired') ended.add(m.body.session_id!);
    });
    const onC = await Client.open(c.url, SERVICE_KEY);
    // kill -9 the moment the answer is read (in the same event): what C had not handed to Redis by then is lost.
    onC.ws.on('message', (data) => {
      if ((JSON.parse(data.toString()) as { body: { type: string } }).body.type === 'sessions_revoked') c.proc.kill('SIGKILL');
    });
    const reply = await onC.call({ type: 'revoke_user_sessions', user_id: 'killed-after-answer' });
    await c.crash();
    expect(reply).toMatchObject({ type: 'sessions_revoked', count: 40 });
    await waitForCount(() => ended.size, 40, 10_000, 'ends pushed on A');
    expect([...ended].sort()).toEqual([...ids].sort());
    onA.close();
  }, 60_000);
});
