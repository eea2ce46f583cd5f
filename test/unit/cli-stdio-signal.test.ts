/**
 * `stdio` stopped by SIGTERM or SIGINT (a supervisor, Ctrl-C): what it has read in full is
 * answered, its output flushed, and it exits 0, as when its input ends; a second signal exits
 * at once with 1. The reply owed is held on the store's wire (a real redis-server behind a
 * proxy) until after the signal.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HoldProxy } from '../helpers/hold-proxy.js';
import { RedisServer } from '../helpers/redis-server.js';
import { waitForCount } from '../helpers/wait-for.js';
import { CLI, ensureBuilt } from '../ws/process.js';

const SECRET = 'c0Vq3J9xQ2mK7tYb4nR8sLpW1eHd6uZa5fGj0kXo3cI=';
let redis: RedisServer;
let proxy: HoldProxy;

beforeAll(async () => {
  ensureBuilt();
  redis = await RedisServer.start();
  proxy = await HoldProxy.start(redis.port);
}, 120_000);
afterAll(async () => {
  await proxy?.close();
  await redis?.stop();
});

interface Run {
  child: ChildProcessWithoutNullStreams;
  lines: string[];
  /** Whether it has logged that it is stopping on `signal`. */
  stopping: (signal: string) => boolean;
  exited: Promise<{ code: number | null; signal: string | null }>;
}

function stdio(): Run {
  const child = spawn(process.execPath, [CLI, 'stdio'], {
    env: { PATH: process.env.PATH ?? '', GATEWAY_STORE: `redis://127.0.0.1:${proxy.port}`, GATEWAY_JWT_SECRET: SECRET, GATEWAY_STORE_TIMEOUT_MS: '10000' },
  });
  const lines: string[] = [];
  let buf = '';
  child.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop()!;
    lines.push(...parts);
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const stopping = (signal: string) => stderr.includes(`"signal":"${signal}"`);
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return { child, lines, stopping, exited };
}

const create = (id: number, marker: string) =>
  JSON.stringify({ src: 'c', dest: 'gateway', body: { type: 'create_session', msg_id: id, user_id: 'u', data: { marker } } });

describe('stdio and a stop signal', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`${signal}: the requests read are answered, an unfinished line is not, and it exits 0`, async () => {
      const r = stdio();
      r.child.stdin.write(`${create(1, 'ready')}\n`);
      await waitForCount(() => r.lines.length, 1, 10_000, 'the first reply');
      proxy.arm(/held-on-the-wire/);
      r.child.stdin.write(`${create(2, 'held-on-the-wire')}\n{"src":"c","dest":"gateway","body":{"type":"init"`);
      await waitForCount(() => (proxy.holding ? 1 : 0), 1, 5000, 'the held store command');
      r.child.kill(signal);
      // Still running, its reply owed: it comes once the store answers.
      await waitForCount(() => (r.stopping(signal) ? 1 : 0), 1, 5000, 'the line saying it stops');
      proxy.release();
      expect(await r.exited).toEqual({ code: 0, signal: null });
      expect(r.lines.map((l) => JSON.parse(l) as { body: { type: string; in_reply_to?: number } }).map((m) => [m.body.type, m.body.in_reply_to])).toEqual([
        ['session_created', 1],
        ['session_created', 2],
      ]);
    });
  }

  it('a second signal exits at once with 1', async () => {
    const r = stdio();
    r.child.stdin.write(`${create(1, 'ready')}\n`);
    await waitForCount(() => r.lines.length, 1, 10_000, 'the first reply');
    proxy.arm(/held-twice/);
    r.child.stdin.write(`${create(2, 'held-twice')}\n`);
    await waitForCount(() => (proxy.holding ? 1 : 0), 1, 5000, 'the held store command');
    r.child.kill('SIGTERM');
    await waitForCount(() => (r.stopping('SIGTERM') ? 1 : 0), 1, 5000, 'the line saying it stops');
    r.child.kill('SIGTERM');
    expect(await r.exited).toEqual({ code: 1, signal: null });
    proxy.release();
  });
});
