/**
 * Fuzzing the stdio node with fast-check: arbitrary JSON, text and bytes, and near-valid
 * envelopes of every type. Properties: the node never throws, exits or hangs; every line
 * with a readable msg_id gets exactly one reply; nothing but protocol messages comes out;
 * memory stays bounded. In process (runStdio over PassThrough streams) for the properties,
 * spawned (`node dist/cli.js stdio`) for the process-level checks.
 * `make test`: a few thousand messages; `make soak` (SOAK=1): 100,000 per run.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.js';
import { ManualClock } from '../../src/clock.js';
import { loadConfig } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import { runStdio } from '../../src/transports/stdio.js';
import { jwt, OTHER_SECRET, SECRET } from '../security/harness.js';
import { CLI, spawnStdio } from '../security/spawn.js';
import { anyItem, check, envelopeItem, expectations, KNOWN_SESSIONS, PLACEHOLDERS, serialize, type Item } from './arbitraries.js';
import { heapAfterGc, limit, mb, report, SOAK } from './report.js';

const MAX_BYTES = 4096;
const START = Date.UTC(2026, 0, 1);

/** Tokens the generator mutates: valid at `nowMs`, expired, foreign-keyed, unsigned. */
function tokensAt(nowMs: number): string[] {
  const iat = Math.floor(nowMs / 1000);
  const c = (extra: Record<string, unknown> = {}) => ({ sub: 'alice', iat, exp: iat + 900, jti: `fz-${iat}-${Object.keys(extra).length}`, ...extra });
  return [
    jwt({ alg: 'HS256', typ: 'JWT' }, c()),
    jwt({ alg: 'HS256', typ: 'JWT' }, c({ exp: iat - 1 })),
    jwt({ alg: 'HS256', typ: 'JWT' }, c(), OTHER_SECRET),
    jwt({ alg: 'HS512', typ: 'JWT' }, c()),
    `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify(c())).toString('base64url')}.`,
    `${'A'.repeat(22)}.${'B'.repeat(43)}`,
  ];
}

/** Oversized lines: an envelope padded past the limit. */
const bigItem = (tokens: string[]) =>
  envelopeItem(tokens).map((it): Item => (it.kind === 'env' ? { ...it, env: { ...it.env, pad: 'p'.repeat(MAX_BYTES + 100) } } : it));

/** Real credentials for the placeholders: refresh and access tokens issued by the node under test. */
async function credentials(issue: (i: number) => Promise<{ access_token: unknown; refresh_token: unknown }>): Promise<Map<string, string>> {
  const m = new Map<string, string>();
  for (let i = 0; i < 4; i++) {
    const pair = await issue(i);
    m.set(`@RT${i}@`, pair.refresh_token as string);
    if (i < 2) m.set(`@AT${i}@`, pair.access_token as string);
  }
  expect([...m.keys()].sort()).toEqual([...PLACEHOLDERS].sort());
  return m;
}

interface InProcess {
  subst: Map<string, string>;
  write(bytes: Buffer): void;
  lines: string[];
  done: Promise<void>;
  end(): void;
  clock: ManualClock;
  gateway: Awaited<ReturnType<typeof createApp>>['gateway'];
}

async function inProcess(env: Record<string, string> = {}): Promise<InProcess> {
  const clock = new ManualClock(START);
  const config = loadConfig({ GATEWAY_JWT_SECRET: SECRET, GATEWAY_MAX_MESSAGE_BYTES: String(MAX_BYTES), ...env });
  const { gateway } = await createApp(config, { clock, log: silentLogger() });
  for (const id of KNOWN_SESSIONS) await gateway.sessions.seed(id, 'alice', undefined, 3600);
  const input = new PassThrough();
  const output = new PassThrough();
  const lines: string[] = [];
  let rest = '';
  output.setEncoding('utf8');
  output.on('data', (chunk: string) => {
    rest += chunk;
    const parts = rest.split('\n');
    rest = parts.pop()!;
    for (const p of parts) lines.push(p);
  });
  const done = runStdio(gateway, input, output, { maxMessageBytes: config.maxMessageBytes });
  const subst = await credentials((i) => gateway.tokens.generate({ sub: `fz-${i}` }));
  return { subst, write: (b) => input.write(b), lines, done, end: () => input.end(), clock, gateway };
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, reject) => (t = setTimeout(() => reject(new Error(`${what}: no end within ${ms} ms (hang)`)), ms)))]).finally(() =>
    clearTimeout(t),
  );
}

const tmp = mkdtempSync(join(tmpdir(), 'gw-fuzz-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('stdio fuzz, in process', () => {
  it(
    'every readable msg_id is answered exactly once; the stream always ends',
    async () => {
      let totalMessages = 0;
      let totalReplies = 0;
      let runs = 0;
      const types: Record<string, number> = {};
      const tokens = tokensAt(START);
      const items = fc.array(fc.oneof({ weight: 30, arbitrary: anyItem(tokens) }, { weight: 1, arbitrary: bigItem(tokens) }), {
        minLength: 1,
        maxLength: SOAK ? 400 : 120,
        size: 'max',
      });
      await fc.assert(
        fc.asyncProperty(items, async (list) => {
          const node = await inProcess();
          let id = 0;
          const bytes = serialize(list, () => ++id, node.subst);
          node.write(bytes);
          node.end();
          await within(node.done, 10_000, 'runStdio');
          await node.gateway.close();
          const e = expectations(bytes, MAX_BYTES);
          const o = check(e, node.lines);
          runs++;
          for (const [t, n] of Object.entries(o.types)) types[t] = (types[t] ?? 0) + n;
          totalMessages += e.lines;
          totalReplies += o.replies;
          expect(o.problems).toEqual([]);
        }),
        { numRuns: SOAK ? 300 : 80, seed: SOAK ? undefined : 0x5eed },
      );
      report('stdio fuzz (in process, properties)', { runs, lines_offered: totalMessages, replies: totalReplies, problems: 0, by_type: types });
      expect(totalMessages).toBeGreaterThan(SOAK ? 20_000 : 3000);
    },
    limit(90_000),
  );

  it(
    'memory stays bounded over a long random stream on one connection',
    async () => {
      const total = SOAK ? 100_000 : 5_000;
      const batch = 1_000;
      const node = await inProcess({ GATEWAY_REFRESH_TOKEN_TTL: '600' });
      const got = new Map<number, number>();
      let seen = 0;
      let nextId = 0;
      let offered = 0;
      let answered = 0;
      let unreadable = 0;
      const heap: number[] = [];
      let storeMax = 0;
      for (let b = 0; b * batch < total; b++) {
        const tokens = tokensAt(node.clock.now());
        const items = fc.sample(anyItem(tokens), { numRuns: batch, seed: 1000 + b });
        // Fresh credentials every ten batches (the old ones get spent, revoked or expire).
        if (b % 10 === 0) node.subst = await credentials((i) => node.gateway.tokens.generate({ sub: `fz-${b}-${i}` }));
        const bytes = serialize(items, () => ++nextId, node.subst);
        const e = expectations(bytes, MAX_BYTES);
        offered += e.lines;
        unreadable += e.unreadable;
        node.write(bytes);
        // Wait for every reply of this batch (bounded: a hang fails the test).
        const deadline = Date.now() + 15_000;
        for (;;) {
          for (; seen < node.lines.length; seen++) {
            const r = (JSON.parse(node.lines[seen]!) as { body: { in_reply_to?: number } }).body.in_reply_to;
            if (typeof r === 'number') got.set(r, (got.get(r) ?? 0) + 1);
          }
          node.lines.splice(0, seen);
          seen = 0;
          if ([...e.exact].every(([id, n]) => (got.get(id) ?? 0) >= n)) break;
          if (Date.now() > deadline) throw new Error(`batch ${b}: replies missing after 15 s`);
          await new Promise((r) => setImmediate(r));
        }
        for (const [id, n] of e.exact) {
          expect(got.get(id), `msg_id ${id}`).toBe(n);
          got.delete(id);
          answered += n;
        }
        // Time moves (a minute per batch): sessions and refresh families expire and are swept.
        for (const id of KNOWN_SESSIONS) await node.gateway.sessions.seed(id, 'alice', undefined, 3600);
        node.clock.advance(60_000);
        storeMax = Math.max(storeMax, node.gateway.store.size() ?? 0);
        if (b % Math.max(1, Math.floor(total / batch / 10)) === 0) heap.push(await heapAfterGc());
      }
      node.end();
      await within(node.done, 10_000, 'runStdio');
      const size = node.gateway.store.size();
      await node.gateway.close();
      const warm = heap[Math.min(1, heap.length - 1)]!;
      const end = heap[heap.length - 1]!;
      report('stdio fuzz (in process, memory)', {
        lines_offered: offered,
        readable_answered_once: answered,
        unreadable_lines: unreadable,
        heap_mb_samples: heap.map(mb),
        heap_growth_mb: mb(end - warm),
        store_keys_max: storeMax,
        store_keys_end: size,
      });
      expect(got.size, 'replies to ids never sent').toBe(0);
      expect(end - warm).toBeLessThan(40 * 1048576);
    },
    limit(90_000),
  );
});

describe('stdio fuzz, spawned node', () => {
  it(
    'random input never kills or hangs the process; it answers, then exits 0 at end of input',
    async () => {
      if (!existsSync(CLI)) throw new Error('dist/cli.js is missing: run `make build` first');
      const fixtures = join(tmp, 'fixtures.json');
      writeFileSync(fixtures, JSON.stringify({ sessions: KNOWN_SESSIONS.map((session_id) => ({ session_id, user_id: 'alice' })) }));
      const total = SOAK ? 100_000 : 2_000;
      const node = spawnStdio({
        GATEWAY_JWT_SECRET: SECRET,
        GATEWAY_MAX_MESSAGE_BYTES: String(MAX_BYTES),
        GATEWAY_FIXTURES: fixtures,
        GATEWAY_LOG_LEVEL: 'warn',
      });
      const tokens = tokensAt(Date.now());
      const subst = await credentials((i) => node.call({ type: 'generate_access_token', payload: { sub: `fz-${i}` } }, 'setup', 5000) as never);
      let id = 1000;
      let offered = 0;
      const e = { exact: new Map<number, number>(), oversized: new Map<number, number>(), unreadable: 0, lines: 0 };
      // The process's RSS before the random input, then as it goes (every batch; every tenth in soak).
      const rss: number[] = [];
      const sampleRss = async () => {
        const m = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${node.proc.pid}/status`, 'utf8').catch(() => ''));
        if (m) rss.push(Number(m[1]) * 1024);
      };
      await sampleRss();
      const started = Date.now();
      for (let b = 0; b * 1000 < total; b++) {
        const items = fc.sample(fc.oneof({ weight: 30, arbitrary: anyItem(tokens) }, { weight: 1, arbitrary: bigItem(tokens) }), {
          numRuns: 1000,
          seed: 77 + b,
        });
        const bytes = serialize(items, () => ++id, subst);
        expectations(bytes, MAX_BYTES, e);
        offered += items.length;
        if (!node.proc.stdin!.write(bytes)) await new Promise((r) => node.proc.stdin!.once('drain', r));
        if (!SOAK || b % 10 === 0) await sampleRss();
      }
      const code = await node.end(60_000);
      const seconds = (Date.now() - started) / 1000;
      const o = check(e, node.stdout.slice(4)); // the first four lines answer the setup
      report('stdio fuzz (spawned)', {
        messages_offered: offered,
        lines: e.lines,
        readable_msg_ids: [...e.exact.values()].reduce((a, n) => a + n, 0),
        replies: o.replies,
        unaddressed_errors: o.unaddressed,
        pushes: o.pushes,
        exit_code: code,
        seconds: Math.round(seconds * 10) / 10,
        rss_mb_samples: rss.map(mb),
        problems: o.problems.length,
        by_type: o.types,
      });
      expect(code).toBe(0);
      expect(o.problems.slice(0, 5)).toEqual([]);
      // stderr: JSON log lines only (no stack traces, no crash text).
      for (const line of node.stderr) expect(() => JSON.parse(line)).not.toThrow();
      // Several samples in every mode; the growth from the idle process stays bounded.
      expect(rss.length).toBeGreaterThanOrEqual(3);
      expect(Math.max(...rss) - rss[0]!).toBeLessThan(128 * 1048576);
    },
    limit(60_000),
  );
});
