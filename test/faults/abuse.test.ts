/**
 * Soak: the attacks of issue 14 (subscriber fan-out, nested and oversized frames, an
 * exchange_session flood from browsers holding a valid session, guessed session cookies;
 * bench/gen/abuse-attack.js, a process of its own) against one real `serve` process while
 * a service connection keeps validating a session. Reports that client's validate latency
 * (before, under the nested-frame attack alone, under all of them), the gateway's RSS before,
 * at the end of the attack and while it rests, and what the attacks got.
 * `make test`: a few seconds, generous bounds; `make soak` (SOAK=1): five minutes of all
 * attacks (SOAK_ABUSE_SECONDS to change it), and the targets: p99 <= 20 ms, RSS flat after.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mb, report, SOAK } from '../fuzz/report.js';
import { spawnServe, type ServeNode } from '../security/spawn.js';
import { Client, sleep } from './client.js';

const ATTACKER = fileURLToPath(new URL('../../bench/gen/abuse-attack.js', import.meta.url));
const SERVICE_KEY = randomBytes(32).toString('base64');
const ALL_SECONDS = Number(process.env.SOAK_ABUSE_SECONDS ?? (SOAK ? 300 : 6));
/** The attacks of the long phase (SOAK_ABUSE_ATTACKS=fanout,cookie... to look at one alone). */
const ATTACKS = (process.env.SOAK_ABUSE_ATTACKS ?? 'fanout,nested,exchange,cookie').split(',');
const NESTED_SECONDS = SOAK ? 60 : 4;
const REST_SECONDS = SOAK ? 30 : 4;
/** Validate p99 the service client must keep: the target under SOAK; otherwise a bound that a busy CI machine meets and the stalls of issue 14 (seconds) do not. */
const P99_MS = SOAK ? 20 : 1000;

let server: ServeNode;

beforeAll(async () => {
  server = await spawnServe({ GATEWAY_JWT_SECRET: randomBytes(32).toString('base64'), GATEWAY_SERVICE_KEY: SERVICE_KEY, GATEWAY_LOG_LEVEL: 'error' });
});
afterAll(async () => {
  await server?.stop();
});

async function rss(pid: number): Promise<number> {
  const m = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
const round = (ms: number) => Math.round(ms * 100) / 100;

/** Validates `sid` one request at a time, about 100 a second, until `stop()`; latencies in ms. */
function validateLoop(c: Client, sid: string): { stop: () => Promise<{ ms: number[]; failures: string[] }> } {
  const ms: number[] = [];
  const failures: string[] = [];
  let running = true;
  const done = (async () => {
    while (running) {
      const t = performance.now();
      const r = await c.call({ type: 'validate_session', session_id: sid }, 10_000);
      ms.push(performance.now() - t);
      if (r?.type !== 'session_valid') failures.push(r === undefined ? 'no reply' : `${r.type} ${String(r.code ?? '')}`);
      await sleep(10);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await done;
      return { ms, failures };
    },
  };
}

function summary(ms: number[]) {
  const s = [...ms].sort((a, b) => a - b);
  return { n: s.length, p50_ms: round(quantile(s, 0.5)), p99_ms: round(quantile(s, 0.99)), max_ms: round(s[s.length - 1] ?? 0) };
}

/** Runs the attacker process for `seconds`; resolves with its counts. */
function attack(attacks: string[], seconds: number, victim: string, own: string[]): Promise<Record<string, Record<string, number>>> {
  const child = spawn(process.execPath, [ATTACKER, JSON.stringify({ url: server.url, seconds, attacks, victim, own })], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  const kill = setTimeout(() => child.kill('SIGKILL'), (seconds + 60) * 1000);
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => {
      clearTimeout(kill);
      if (code === 0) resolve(JSON.parse(out) as Record<string, Record<string, number>>);
      else reject(new Error(`attacker exited ${String(code)}`));
    });
  });
}

describe('abuse soak (spawned serve, attacks from a separate process)', () => {
  it(
    'a service client keeps validating within bounds while browsers attack; RSS flat once they stop',
    async () => {
      const svc = await Client.open(server.url, SERVICE_KEY);
      const create = async () => (await svc.call({ type: 'create_session', user_id: `u${randomBytes(4).toString('hex')}` }))!.session_id as string;
      const mine = await create();
      const victim = await create();
      const own = await Promise.all(Array.from({ length: 10 }, create));

      let loop = validateLoop(svc, mine);
      await sleep(SOAK ? 20_000 : 2000);
      const before = await loop.stop();
      const rssBefore = await rss(server.proc.pid!);

      loop = validateLoop(svc, mine);
      const nestedCounts = await attack(['nested'], NESTED_SECONDS, victim, own);
      const nested = await loop.stop();

      loop = validateLoop(svc, mine);
      const allCounts = await attack(ATTACKS, ALL_SECONDS, victim, own);
      const all = await loop.stop();
      const rssEnd = await rss(server.proc.pid!);

      // The fan-out's victim ends: its followers are told at once, and the node does not stall.
      const t = performance.now();
      expect((await svc.call({ type: 'destroy_session', session_id: victim }))?.type).toBe('session_destroyed');
      const destroyMs = performance.now() - t;

      const rest: number[] = [];
      loop = validateLoop(svc, mine);
      for (let i = 0; i < 5; i++) {
        await sleep((REST_SECONDS * 1000) / 5);
        rest.push(await rss(server.proc.pid!));
      }
      const after = await loop.stop();

      const figures = {
        attack_seconds: ALL_SECONDS,
        validate_before: summary(before.ms),
        validate_nested_attack: summary(nested.ms),
        validate_all_attacks: summary(all.ms),
        validate_after: summary(after.ms),
        destroy_victim_ms: round(destroyMs),
        rss_mb: { before: mb(rssBefore), attack_end: mb(rssEnd), resting: rest.map(mb) },
        nested_attack: nestedCounts,
        all_attacks: allCounts,
      };
      report('abuse soak (spawned serve)', figures);

      expect(server.proc.exitCode).toBeNull();
      expect((await fetch(`http://127.0.0.1:${server.port}/healthz`)).status).toBe(200);
      expect([...before.failures, ...nested.failures, ...all.failures, ...after.failures]).toEqual([]);
      // The attacks ran and met their limits.
      const ran = (a: string, what: string) => (ATTACKS.includes(a) ? (allCounts[a]?.[what] ?? 0) > 0 : true);
      expect(ran('fanout', 'subscribed')).toBe(true);
      expect(ran('nested', 'error_12')).toBe(true);
      expect(ran('exchange', 'token_generated')).toBe(true);
      expect(ran('exchange', 'error_1002')).toBe(true);
      expect(ran('cookie', 'refused_429')).toBe(true);
      expect(figures.validate_nested_attack.p99_ms).toBeLessThanOrEqual(P99_MS);
      expect(figures.validate_all_attacks.p99_ms).toBeLessThanOrEqual(P99_MS);
      expect(destroyMs).toBeLessThan(SOAK ? 100 : 1000);
      // Flat once the attack is over: no growth while the node rests.
      expect(rest[rest.length - 1]! - rest[0]!).toBeLessThan(16 * 1048576);
      svc.ws.close();
    },
    (ALL_SECONDS + NESTED_SECONDS + REST_SECONDS + 120) * 1000,
  );
});
