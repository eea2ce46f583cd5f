import { spawn } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { bridge } from '../../src/transports/ws/connect.js';
import { createSession, SERVICE_KEY, start, stopAll } from './helpers.js';
import { CLI, ensureBuilt, ROOT } from './process.js';

afterEach(stopAll);
beforeAll(() => ensureBuilt(), 120_000);

/** Runs the bridge in-process on the given lines; returns its exit code and output lines. */
async function run(url: string, lines: string[], o: { serviceKey?: string; keepOpen?: boolean } = {}) {
  const input = new PassThrough();
  const output = new PassThrough();
  const errors = new PassThrough();
  let out = '';
  let err = '';
  output.on('data', (d) => (out += d));
  errors.on('data', (d) => (err += d));
  const done = bridge(url, { serviceKey: o.serviceKey, input, output, errors });
  for (const l of lines) input.write(`${l}\n`);
  if (!o.keepOpen) input.end();
  const code = await done;
  return { code, lines: out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { src: string; dest?: string; body: Record<string, unknown> }), err };
}

const env = (type: string, msgId: number, fields: Record<string, unknown> = {}) => JSON.stringify({ src: 'c1', dest: 'gateway', body: { type, msg_id: msgId, ...fields } });

describe('connect (the CLI bridge)', () => {
  it('sends each line as one frame, prints each frame, waits for every reply, exits 0', async () => {
    const { server } = await start();
    const r = await run(server.url, [env('create_session', 1, { user_id: 'u' }), 'this is not JSON', '', env('validate_session', 2, { session_id: 'x' })], { serviceKey: SERVICE_KEY });
    expect(r.code).toBe(0);
    expect(r.lines).toHaveLength(3);
    expect(r.lines.find((l) => l.body.in_reply_to === 1)!.body.type).toBe('session_created');
    expect(r.lines.find((l) => l.body.in_reply_to === 2)!.body.type).toBe('session_invalid');
    expect(r.lines.find((l) => l.body.in_reply_to === undefined)!.body).toEqual({ type: 'error', code: 12, text: 'Malformed JSON' });
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
    expect(wrong.err).toContain('401');
    const port = server.port;
    await stopAll();
    const refused = await run(`ws://127.0.0.1:${port}/`, []);
    expect(refused.code).toBe(1);
    expect(refused.err).toContain('ECONNREFUSED');
  });

  it('exits 1 when the server closes abnormally (1009)', async () => {
    const { server } = await start({ GATEWAY_MAX_MESSAGE_BYTES: '256' });
    const r = await run(server.url, ['x'.repeat(5000)], { keepOpen: true });
    expect(r.code).toBe(1);
    expect(r.err).toContain('1009');
  });

  it('gives up waiting for replies after 2 s', async () => {
    const { server } = await start();
    const store = server.gateway.store;
    store.get = () => new Promise(() => undefined); // never answers
    const t0 = performance.now();
    const r = await run(server.url, [env('validate_session', 1, { session_id: 'x' })]);
    expect(r.code).toBe(0);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(1900);
    expect(performance.now() - t0).toBeLessThan(4000);
  });

  it('as a process: reads no GATEWAY_* configuration', async () => {
    const { server } = await start();
    const child = spawn(process.execPath, [CLI, 'connect', server.url, '--service-key', SERVICE_KEY], {
      cwd: ROOT,
      // Garbage that would stop `serve` or `stdio` with a config error.
      env: { ...process.env, GATEWAY_PORT: 'not-a-port', GATEWAY_JWT_SECRET: 'short', GATEWAY_LOG_LEVEL: 'loud' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stdin.end(`${env('init', 1, { node_id: 'n1' })}\n`);
    const code = await new Promise((r) => child.once('exit', r));
    expect(code).toBe(0);
    expect(JSON.parse(out)).toEqual({ src: 'gateway', dest: 'c1', body: { type: 'init_ok', in_reply_to: 1 } });
  });
});

afterAll(stopAll);
