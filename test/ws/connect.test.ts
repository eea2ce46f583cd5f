import { spawn } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { bridge } from '../../src/transports/ws/connect.js';
import { createSession, SERVICE_KEY, start, startWithStoreDouble, stopAll } from './helpers.js';
import { CLI, ensureBuilt, ROOT } from './process.js';

afterEach(stopAll);
beforeAll(() => ensureBuilt(), 120_000);

/** Runs the bridge in-process on the given lines; returns its exit code and output lines. */
async function run(url: string, lines: (string | Buffer)[], o: { serviceKey?: string; keepOpen?: boolean } = {}) {
  const input = new PassThrough();
  const output = new PassThrough();
  const errors = new PassThrough();
  let out = '';
  let err = '';
  output.on('data', (d) => (out += d));
  errors.on('data', (d) => (err += d));
  const done = bridge(url, { serviceKey: o.serviceKey, input, output, errors });
  for (const l of lines) input.write(typeof l === 'string' ? `${l}\n` : Buffer.concat([l, Buffer.from('\n')]));
  if (!o.keepOpen) input.end();
  const code = await done;
  return {
    code,
    lines: out
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { src: string; dest?: string; body: Record<string, unknown> }),
    err,
  };
}

const env = (type: string, msgId: number, fields: Record<string, unknown> = {}) =>
  JSON.stringify({ src: 'c1', dest: 'gateway', body: { type, msg_id: msgId, ...fields } });

describe('connect (the CLI bridge)', () => {
  it('sends each line as one frame, prints each frame, waits for every reply, exits 0', async () => {
    const { server } = await start();
    const r = await run(server.url, [env('create_session', 1, { user_id: 'u' }), 'this is not JSON', '', env('validate_session', 2, { session_id: 'x' })], {
      serviceKey: SERVICE_KEY,
    });
    expect(r.code).toBe(0);
    expect(r.lines).toHaveLength(3);
    expect(r.lines.find((l) => l.body.in_reply_to === 1)!.body.type).toBe('session_created');
    expect(r.lines.find((l) => l.body.in_reply_to === 2)!.body.type).toBe('session_invalid');
    expect(r.lines.find((l) => l.body.in_reply_to === undefined)!.body).toEqual({ type: 'error', code: 12, text: 'Malformed JSON' });
  });

  it('splits lines as the stdio node does, and answers a line that is not UTF-8 itself, as stdio does, without sending it', async () => {
    const { server } = await start();
    // caf\xe9 and caf\xe8: read with replacement characters, both would name the user "caf\ufffd".
    const notUtf8 = (b: number, id: number) =>
      Buffer.concat([
        Buffer.from(`{"src":"c1","dest":"gateway","body":{"type":"create_session","msg_id":${id},"user_id":"caf`),
        Buffer.from([b]),
        Buffer.from('"}}'),
      ]);
    const r = await run(
      server.url,
      [
        notUtf8(0xe9, 1),
        notUtf8(0xe8, 2),
        // A lone \r is not a line end (stdio reads this as one line, not JSON); \r\n is.
        `${env('validate_session', 3, { session_id: 'x' })}\r${env('validate_session', 4, { session_id: 'y' })}`,
        `${env('list_sessions', 5, { user_id: 'caf\ufffd' })}\r`,
        Buffer.from([0xff, 0xfe]),
      ],
      { serviceKey: SERVICE_KEY },
    );
    expect(r.code).toBe(0);
    const notUtf8Error = { type: 'error', code: 12, text: 'Message is not valid UTF-8' };
    expect(r.lines.filter((l) => l.body.text === notUtf8Error.text)).toEqual([
      { src: 'gateway', dest: 'c1', body: { ...notUtf8Error, in_reply_to: 1 } },
      { src: 'gateway', dest: 'c1', body: { ...notUtf8Error, in_reply_to: 2 } },
      { src: 'connect', body: notUtf8Error },
    ]);
    // Not JSON, but its head holds the first request's ends and msg_id whole: the error answers it.
    expect(r.lines.find((l) => l.body.text === 'Malformed JSON')!.body).toEqual({ type: 'error', in_reply_to: 3, code: 12, text: 'Malformed JSON' });
    // Nothing was created under either spelling.
    expect(r.lines.find((l) => l.body.in_reply_to === 5)!.body).toEqual({ type: 'sessions', in_reply_to: 5, sessions: [] });
    expect(r.lines).toHaveLength(5);
  });

  it('prints pushes too', async () => {
    const { server } = await start();
    const sid = await createSession(server.url);
    const r = await run(server.url, [env('subscribe_session', 1, { session_id: sid }), env('destroy_session', 2, { session_id: sid })]);
    expect(r.code).toBe(0);
    // The push is sent before the reply to destroy_session, so it is printed before the bridge closes.
    expect(r.lines.map((l) => l.body.type)).toEqual(expect.arrayContaining(['subscribed', 'session_destroyed', 'session_expired']));
  });

  it('without a key it is a browser: forbidden calls get 1001', async () => {
    const { server } = await start();
    const r = await run(server.url, [env('create_session', 7, { user_id: 'u' })]);
    expect(r.lines[0]!.body).toMatchObject({ in_reply_to: 7, code: 1001 });
  });

  it('exits 1 when the socket cannot open: refused, wrong key', async () => {
    const { server } = await start();
    const wrong = await run(server.url, [env('init', 1, { node_id: 'n' })], { serviceKey: 'wrong-key-0123456789' });
    expect(wrong.code).toBe(1);
    expect(wrong.err).toBe('connect: the gateway refused the service key (HTTP 401)\n');
    const port = server.port;
    await stopAll();
    const refused = await run(`ws://127.0.0.1:${port}/`, []);
    expect(refused.code).toBe(1);
    expect(refused.err).toBe(`connect: nothing is listening at 127.0.0.1:${port} (connection refused)\n`);
  });

  it("answers a line over the gateway's frame limit itself, with the error 12 the gateway gives an oversized frame, and goes on", async () => {
    const { server } = await start({ GATEWAY_MAX_MESSAGE_BYTES: '256' });
    const big = (id: number, bytes: number) => {
      const head = `{"src":"c1","dest":"gateway","body":{"type":"create_session","msg_id":${id},"user_id":"`;
      return `${head}${'x'.repeat(bytes - head.length - 3)}"}}`;
    };
    // 1000 bytes: within 16 times the limit, answered by the gateway; 5000: past it, where the
    // gateway would close the connection (1009), answered by the bridge.
    const r = await run(server.url, [big(1, 1000), big(2, 5000), env('validate_session', 3, { session_id: 'x' })], { serviceKey: SERVICE_KEY });
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const reply = (id: number) => r.lines.find((l) => l.body.in_reply_to === id);
    expect(reply(1)).toEqual({
      src: 'gateway',
      dest: 'c1',
      body: { type: 'error', in_reply_to: 1, code: 12, text: 'Message too large (1000 bytes): the limit is 256 bytes' },
    });
    expect(reply(2)).toEqual({
      src: 'gateway',
      dest: 'c1',
      body: { type: 'error', in_reply_to: 2, code: 12, text: 'Message too large (5000 bytes): the limit is 256 bytes' },
    });
    expect(reply(3)?.body.type).toBe('session_invalid');
  });

  it('exits 1 when the server closes abnormally (1009 from a server that does not say its frame limit)', async () => {
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', maxPayload: 4096 });
    const serverErrors: string[] = [];
    wss.on('connection', (socket) => socket.on('error', (e: Error & { code?: string }) => serverErrors.push(e.code ?? e.message)));
    await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
    try {
      const r = await run(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`, ['x'.repeat(5000)], { keepOpen: true });
      expect(r.code).toBe(1);
      expect(r.err).toContain('1009');
      expect(serverErrors).toEqual(['WS_ERR_UNSUPPORTED_MESSAGE_LENGTH']);
    } finally {
      await new Promise((resolve) => wss.close(resolve));
    }
  });

  it('gives up waiting for replies after 2 s', async () => {
    const { server, store } = await startWithStoreDouble();
    store.hang('get');
    const t0 = performance.now();
    const r = await run(server.url, [env('validate_session', 1, { session_id: 'x' })]);
    expect(r.code).toBe(0);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(1900);
    expect(performance.now() - t0).toBeLessThan(4000);
  });

  /** `node dist/cli.js connect URL ...args` with one request on stdin; its exit code, stdout and stderr. */
  const connectProcess = async (url: string, args: string[], env: Record<string, string>, line: string) => {
    const child = spawn(process.execPath, [CLI, 'connect', url, ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.stdin.end(`${line}\n`);
    const code = await new Promise((r) => child.once('exit', r));
    return { code, out, err };
  };

  it('as a process: reads no GATEWAY_* configuration but the service key', async () => {
    const { server } = await start();
    // Garbage that would stop `serve` or `stdio` with a config error.
    const garbage = { GATEWAY_PORT: 'not-a-port', GATEWAY_JWT_SECRET: 'short', GATEWAY_LOG_LEVEL: 'loud' };
    const r = await connectProcess(server.url, [], { ...garbage, GATEWAY_SERVICE_KEY: SERVICE_KEY }, env('create_session', 1, { user_id: 'u' }));
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out).body).toMatchObject({ type: 'session_created', in_reply_to: 1 });
  });

  it('takes the service key from --service-key-file; refuses it on argv with one line saying why, never echoing it', async () => {
    const { server } = await start();
    const dir = mkdtempSync(join(tmpdir(), 'gw-connect-'));
    try {
      const file = join(dir, 'key');
      writeFileSync(file, `${SERVICE_KEY}\n`, { mode: 0o600 });
      const fromFile = await connectProcess(server.url, ['--service-key-file', file], {}, env('create_session', 1, { user_id: 'u' }));
      expect(fromFile.code).toBe(0);
      expect(JSON.parse(fromFile.out).body).toMatchObject({ type: 'session_created', in_reply_to: 1 });

      const argv = await connectProcess(server.url, ['--service-key', SERVICE_KEY], {}, env('create_session', 1, { user_id: 'u' }));
      expect(argv.code).toBe(2);
      expect(argv.out).toBe('');
      expect(argv.err.trimEnd().split('\n')).toHaveLength(1);
      expect(argv.err).toMatch(/--service-key is refused: .*process list.*GATEWAY_SERVICE_KEY.*--service-key-file/);
      expect(argv.err).not.toContain(SERVICE_KEY);

      const missing = await connectProcess(server.url, ['--service-key-file', join(dir, 'nope')], {}, env('init', 1, { node_id: 'n' }));
      expect(missing.code).toBe(2);
      expect(missing.err.trimEnd().split('\n')).toHaveLength(1);
      expect(missing.err).toContain('--service-key-file');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

afterAll(stopAll);
