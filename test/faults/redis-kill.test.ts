/**
 * Fault: kill -9 of Redis under load. A real redis-server (AOF, fsync always) on a free
 * port, a real `serve` process on it, service connections validating and verifying all
 * the while. While Redis is gone every answer is error 11 or a correct one: never a false
 * `session_valid` or `token_valid`. Once Redis is back the gateway recovers by itself, and
 * every acknowledged session, destruction and revocation is still there.
 * `make test`: one kill; `make soak` (SOAK=1): five kills over a longer run.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasRedisServer, RedisServer } from '../helpers/redis-server.js';
import { limit, report, SOAK } from '../fuzz/report.js';
import { SECRET } from '../security/harness.js';
import { spawnServe, type ServeNode } from '../security/spawn.js';
import { waitForCount } from '../helpers/wait-for.js';
import { Client, sleep, Tally, type Body } from './client.js';

/** Sessions created before each kill and after each recovery, error 11 answers during each outage. */
const PER_PHASE = SOAK ? 500 : 30;
const SERVICE_KEY = 'oYbSjbiRYxFxmpeJQcYLbeBrz467CmS4ARkJti/GQxQ=';
const redisAvailable = hasRedisServer();
let redis: RedisServer | undefined;
let server: ServeNode | undefined;

beforeAll(async () => {
  if (!redisAvailable) return;
  redis = await RedisServer.start({ persist: true });
  server = await spawnServe({
    GATEWAY_STORE: redis.url,
    GATEWAY_JWT_SECRET: SECRET,
    GATEWAY_SERVICE_KEY: SERVICE_KEY,
    GATEWAY_STORE_TIMEOUT_MS: '500',
    GATEWAY_LOG_LEVEL: 'warn',
  });
}, 30_000);

afterAll(async () => {
  await server?.stop();
  await redis?.stop();
});

describe.skipIf(!redisAvailable)('kill -9 of Redis under load', () => {
  it(
    'no false valid while it is down; recovery; nothing acknowledged lost',
    async () => {
      const setup = await Client.open(server!.url, SERVICE_KEY);
      const live: string[] = [];
      const dead: string[] = [];
      const validTokens: string[] = [];
      const revokedTokens: string[] = [];
      for (let i = 0; i < 200; i++) live.push((await setup.call({ type: 'create_session', user_id: `u${i % 20}` }))!.session_id as string);
      for (let i = 0; i < 100; i++) {
        const id = (await setup.call({ type: 'create_session', user_id: 'gone' }))!.session_id as string;
        expect((await setup.call({ type: 'destroy_session', session_id: id }))!.type).toBe('session_destroyed');
        dead.push(id);
      }
      for (let i = 0; i < 50; i++) {
        validTokens.push((await setup.call({ type: 'generate_access_token', payload: { sub: `t${i}` } }))!.access_token as string);
        const r = (await setup.call({ type: 'generate_access_token', payload: { sub: `r${i}` } }))!.access_token as string;
        expect((await setup.call({ type: 'revoke_token', token: r }))!.type).toBe('token_revoked');
        revokedTokens.push(r);
      }

      const tally = new Tally();
      const violations: string[] = [];
      let lostAcks = 0;
      let created = 0;
      let destroyed = 0;
      let stop = false;
      let lastOk = 0;
      let firstUnavailable = 0;
      const clients = await Promise.all([0, 1, 2, 3].map(() => Client.open(server!.url, SERVICE_KEY)));
      const pick = <T>(list: T[], n: number): T => list[n % list.length]!;
      const expectOneOf = (r: Body | undefined, ok: string[], what: string) => {
        if (r === undefined) return;
        if (r.type === 'error' && r.code === 11) {
          firstUnavailable ||= Date.now();
          return;
        }
        if (!ok.includes(r.type)) violations.push(`${what}: ${r.type}${r.type === 'error' ? ` ${String(r.code)}` : ''}`);
        else lastOk = Date.now();
      };

      const worker = async (c: Client, w: number) => {
        for (let n = w; !stop; n += 7) {
          switch (n % 6) {
            case 0: {
              const id = pick(live, n);
              const r = await c.call({ type: 'validate_session', session_id: id }, 5000, tally);
              // Another worker may have taken it out of `live` and destroyed it while this was in
              // flight (two sockets: the server may read the later destroy first); only a session
              // still counted live must be valid.
              const stillLive = live.includes(id);
              if (r?.type === 'session_invalid' && stillLive) lostAcks++;
              expectOneOf(r, stillLive ? ['session_valid'] : ['session_valid', 'session_invalid'], 'validate of a live session');
              break;
            }
            case 1: {
              const r = await c.call({ type: 'validate_session', session_id: pick(dead, n) }, 5000, tally);
              expectOneOf(r, ['session_invalid'], 'validate of a destroyed session (false valid!)');
              break;
            }
            case 2:
              expectOneOf(await c.call({ type: 'verify_token', token: pick(validTokens, n) }, 5000, tally), ['token_valid'], 'verify of a valid token');
              break;
            case 3:
              expectOneOf(
                await c.call({ type: 'verify_token', token: pick(revokedTokens, n) }, 5000, tally),
                ['token_invalid'],
                'verify of a revoked token (false valid!)',
              );
              break;
            case 4: {
              const r = await c.call({ type: 'create_session', user_id: `load${w}` }, 5000, tally);
              expectOneOf(r, ['session_created'], 'create');
              if (r?.type === 'session_created') {
                live.push(r.session_id as string);
                created++;
              }
              break;
            }
            case 5: {
              if (live.length < 150) break;
              // Out of `live` before the request: nothing validates it as live while in flight.
              const id = live.splice(n % live.length, 1)[0]!;
              const r = await c.call({ type: 'destroy_session', session_id: id }, 5000, tally);
              expectOneOf(r, ['session_destroyed'], 'destroy');
              if (r?.type === 'session_destroyed') {
                dead.push(id);
                destroyed++;
              }
              break;
            }
          }
        }
      };

      const workers = clients.flatMap((c, i) => [worker(c, i * 2), worker(c, i * 2 + 1)]);
      const cycles = SOAK ? 5 : 1;
      const outages: { unavailable_after_ms: number; recovered_after_restart_ms: number; created_before: number; error_11: number; created_after: number }[] =
        [];
      const unavailable = () => tally.byType['error 11'] ?? 0;
      // Each phase lasts until enough has happened in it (counts, not times: a loaded machine is slower).
      for (let k = 0; k < cycles; k++) {
        const createdAtStart = created;
        await waitForCount(() => created - createdAtStart, PER_PHASE, limit(30_000, 300_000), 'sessions created before the kill');
        firstUnavailable = 0;
        const errorsBefore = unavailable();
        const killedAt = Date.now();
        await redis!.crash();
        await waitForCount(() => unavailable() - errorsBefore, PER_PHASE, limit(30_000, 300_000), 'error 11 answers while Redis is down');
        const down = firstUnavailable ? firstUnavailable - killedAt : -1;
        const restartedAt = Date.now();
        await redis!.restart();
        const deadline = Date.now() + 15_000;
        while (lastOk < restartedAt && Date.now() < deadline) await sleep(20);
        const createdAtRecovery = created;
        await waitForCount(() => created - createdAtRecovery, PER_PHASE, limit(30_000, 300_000), 'sessions created after Redis came back');
        outages.push({
          unavailable_after_ms: down,
          recovered_after_restart_ms: lastOk >= restartedAt ? lastOk - restartedAt : -1,
          created_before: createdAtRecovery - createdAtStart,
          error_11: unavailable() - errorsBefore,
          created_after: created - createdAtRecovery,
        });
      }
      stop = true;
      await Promise.all(workers);

      // Audit, after the dust settles: every acknowledged state is still there.
      let auditLost = 0;
      let auditFalseValid = 0;
      for (const id of live) if ((await setup.call({ type: 'validate_session', session_id: id }))?.type !== 'session_valid') auditLost++;
      for (const id of dead) if ((await setup.call({ type: 'validate_session', session_id: id }))?.type !== 'session_invalid') auditFalseValid++;
      for (const t of revokedTokens) if ((await setup.call({ type: 'verify_token', token: t }))?.type !== 'token_invalid') auditFalseValid++;
      for (const t of validTokens) if ((await setup.call({ type: 'verify_token', token: t }))?.type !== 'token_valid') auditLost++;
      for (const c of [setup, ...clients]) c.close();

      report('fault: kill -9 of Redis under load', {
        kills: cycles,
        requests_offered: tally.offered,
        answered: tally.answered,
        unanswered_within_5s: tally.timedOut,
        by_type: tally.byType,
        sessions_created_during_load: created,
        sessions_destroyed_during_load: destroyed,
        outages,
        false_valid: violations.filter((v) => v.includes('false valid')).length + auditFalseValid,
        acknowledged_lost: lostAcks + auditLost,
        audited: { live_sessions: live.length, destroyed_sessions: dead.length, valid_tokens: validTokens.length, revoked_tokens: revokedTokens.length },
      });
      expect(violations.slice(0, 5)).toEqual([]);
      expect(lostAcks + auditLost).toBe(0);
      expect(auditFalseValid).toBe(0);
      expect(tally.timedOut).toBe(0);
      // The audit covered real work: every phase acknowledged sessions, and the load destroyed some.
      expect(outages).toHaveLength(cycles);
      for (const o of outages) {
        expect(o.recovered_after_restart_ms).toBeGreaterThanOrEqual(0);
        expect(o.error_11).toBeGreaterThanOrEqual(PER_PHASE);
        expect(o.created_after).toBeGreaterThanOrEqual(PER_PHASE);
      }
      expect(created).toBeGreaterThanOrEqual(2 * PER_PHASE * cycles);
      expect(destroyed).toBeGreaterThan(0);
      expect(live.length).toBeGreaterThan(100);
      expect(server!.proc.exitCode).toBeNull();
    },
    limit(90_000),
  );
});
