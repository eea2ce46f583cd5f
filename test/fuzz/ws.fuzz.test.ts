/**
 * Fuzzing the WebSocket server (`node dist/cli.js serve`, a real process on a free port) with
 * the same arbitraries as stdio, one message per frame (bytes as binary frames): service
 * and browser connections at once. Every frame with a readable msg_id gets exactly one
 * reply, the server never exits, and its memory stays bounded.
 * `make test`: a few thousand frames; `make soak` (SOAK=1): 100,000.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { jwt, OTHER_SECRET, SECRET } from '../security/harness.js';
import { CLI, spawnServe, type ServeNode } from '../security/spawn.js';
import { anyItem, check, KNOWN_SESSIONS, readableMsgId, serialize, type Expectation, type Item } from './arbitraries.js';
import { limit, mb, report, SOAK } from './report.js';

const MAX_BYTES = 4096;
const SERVICE_KEY = 'VOuYxT1Cw9ztwVB0du3vEoKAYt6vKgsoM6cpF8mmXXI=';

let server: ServeNode;
const tmp = mkdtempSync(join(tmpdir(), 'gw-wsfuzz-'));

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error('dist/cli.js is missing: run `make build` first');
  const fixtures = join(tmp, 'fixtures.json');
  writeFileSync(fixtures, JSON.stringify({ sessions: KNOWN_SESSIONS.map((session_id) => ({ session_id, user_id: 'alice' })) }));
  server = await spawnServe({
    GATEWAY_JWT_SECRET: SECRET,
    GATEWAY_SERVICE_KEY: SERVICE_KEY,
    GATEWAY_MAX_MESSAGE_BYTES: String(MAX_BYTES),
    GATEWAY_FIXTURES: fixtures,
    GATEWAY_LOG_LEVEL: 'warn',
    // The browser connection sends junk on purpose: it must be answered, not closed (1008) or
    // starved by the byte rate; test/ws/abuse.test.ts covers those limits.
    GATEWAY_MALFORMED_LIMIT: '1000000',
    GATEWAY_RATE_LIMIT_BYTES: '1073741824',
  });
});

afterAll(async () => {
  await server?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

function tokensNow(): string[] {
  const iat = Math.floor(Date.now() / 1000);
  const c = { sub: 'alice', iat, exp: iat + 900, jti: `ws-fz-${iat}` };
  return [jwt({ alg: 'HS256', typ: 'JWT' }, c), jwt({ alg: 'HS256', typ: 'JWT' }, c, OTHER_SECRET), jwt({ alg: 'HS384', typ: 'JWT' }, c)];
}

/** One item as one frame: envelopes and text as text frames, bytes as a binary frame. */
function frames(items: Item[], nextId: () => number): (string | Buffer)[] {
  return items.map((it) => (it.kind === 'bytes' ? Buffer.from(it.bytes) : serialize([it], nextId).toString('utf8').slice(0, -1)));
}

function frameExpectation(list: (string | Buffer)[]): Expectation {
  const e: Expectation = { exact: new Map(), oversized: new Map(), unreadable: 0, lines: 0 };
  for (const f of list) {
    e.lines++;
    // The server sees the UTF-8 of the text (a lone surrogate arrives as U+FFFD).
    const id = typeof f === 'string' ? readableMsgId(Buffer.from(f, 'utf8').toString('utf8')) : undefined;
    // An oversized frame is read only at its head, as stdio reads an oversized line.
    if (id !== undefined && Buffer.byteLength(f) > MAX_BYTES) e.oversized.set(id, (e.oversized.get(id) ?? 0) + 1);
    else if (id === undefined) e.unreadable++;
    else e.exact.set(id, (e.exact.get(id) ?? 0) + 1);
  }
  return e;
}

function open(role: 'service' | 'browser'): Promise<WebSocket> {
  const headers = role === 'service' ? { Authorization: `Bearer ${SERVICE_KEY}` } : {};
  const ws = new WebSocket(server.url, { headers, maxPayload: 64 * 1024 * 1024 });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

/** Sends the frames, waits until every readable msg_id has its reply (or `ms` pass), returns the replies. */
async function exchange(ws: WebSocket, list: (string | Buffer)[], e: Expectation, ms: number): Promise<string[]> {
  const got: string[] = [];
  const counts = new Map<number, number>();
  let closed: number | undefined;
  ws.on('message', (data) => {
    const text = data.toString();
    got.push(text);
    const r = (JSON.parse(text) as { body?: { in_reply_to?: unknown } }).body?.in_reply_to;
    if (typeof r === 'number') counts.set(r, (counts.get(r) ?? 0) + 1);
  });
  ws.on('close', (code) => (closed = code));
  for (const f of list) ws.send(f, { binary: typeof f !== 'string' });
  const deadline = Date.now() + ms;
  const need = [...e.exact];
  while (Date.now() < deadline && closed === undefined && !need.every(([id, n]) => (counts.get(id) ?? 0) >= n)) {
    await new Promise((r) => setTimeout(r, 20));
  }
  // A moment more, to catch any duplicate reply.
  await new Promise((r) => setTimeout(r, 50));
  expect(closed, 'the server closed the connection').toBeUndefined();
  return got;
}

async function rssOf(pid: number): Promise<number | undefined> {
  const m = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8').catch(() => ''));
  return m ? Number(m[1]) * 1024 : undefined;
}

describe('ws fuzz (spawned serve)', () => {
  it(
    'service and browser connections: every readable msg_id answered exactly once, the server stays up',
    async () => {
      const perConn = SOAK ? 12_500 : 500;
      const conns: ('service' | 'browser')[] = ['service', 'service', 'service', 'browser'];
      const rounds = SOAK ? 2 : 1;
      let id = 0;
      let offered = 0;
      let replies = 0;
      let unaddressed = 0;
      const types: Record<string, number> = {};
      // The server's RSS before any load, then after every batch of every connection.
      const rss: number[] = [];
      const sampleRss = async () => {
        const r = await rssOf(server.proc.pid!);
        if (r !== undefined) rss.push(r);
      };
      await sampleRss();
      const started = Date.now();
      for (let round = 0; round < rounds; round++) {
        await Promise.all(
          conns.map(async (role, c) => {
            const ws = await open(role);
            // Batches of 500 frames per connection, so that a browser's rate limit answers (1002) are part of the test.
            for (let b = 0; b * 500 < perConn; b++) {
              const items = fc.sample(anyItem(tokensNow()), { numRuns: 500, seed: round * 10_000 + c * 1000 + b });
              const list = frames(items, () => ++id);
              const e = frameExpectation(list);
              const out = await exchange(ws, list, e, 20_000);
              ws.removeAllListeners('message');
              ws.removeAllListeners('close');
              const o = check(e, out);
              expect(o.problems.slice(0, 5)).toEqual([]);
              offered += list.length;
              replies += o.replies;
              unaddressed += o.unaddressed;
              for (const [t, n] of Object.entries(o.types)) types[t] = (types[t] ?? 0) + n;
              if (!SOAK || (c === 0 && b % 5 === 0)) await sampleRss();
              // A browser may be refused for ten seconds of its rate in a burst (then it is closed):
              // under soak its next batch waits for 400 refusals' worth of refill.
              if (SOAK && role === 'browser') await new Promise((r) => setTimeout(r, 4000));
            }
            ws.close();
          }),
        );
      }
      expect(server.proc.exitCode).toBeNull();
      const health = await fetch(`http://127.0.0.1:${server.port}/healthz`);
      expect(health.status).toBe(200);
      report('ws fuzz (spawned serve)', {
        frames_offered: offered,
        replies,
        unaddressed_errors: unaddressed,
        seconds: Math.round((Date.now() - started) / 100) / 10,
        rss_mb_samples: rss.map(mb),
        by_type: types,
      });
      // Several samples in every mode; the growth from the unloaded server stays bounded.
      expect(rss.length).toBeGreaterThanOrEqual(5);
      expect(Math.max(...rss) - rss[0]!).toBeLessThan(128 * 1048576);
    },
    limit(90_000),
  );

  it('a frame over 16 times the limit closes that socket with 1009, and only that one', async () => {
    const victim = await open('service');
    const bystander = await open('service');
    const code = await new Promise<number>((resolve) => {
      victim.once('close', (c) => resolve(c));
      victim.send('x'.repeat(16 * MAX_BYTES + 1));
    });
    expect(code).toBe(1009);
    const reply = await new Promise<string>((resolve) => {
      bystander.once('message', (d) => resolve(d.toString()));
      bystander.send(JSON.stringify({ src: 'c', dest: 'gateway', body: { type: 'validate_session', msg_id: 1, session_id: KNOWN_SESSIONS[0] } }));
    });
    expect(JSON.parse(reply).body.in_reply_to).toBe(1);
    bystander.close();
  });
});
