import { spawn } from 'node:child_process';
import { PassThrough, Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { runStdio } from '../../../src/transports/stdio.js';
import { makeGateway, SECRET } from '../harness.js';

interface Line {
  src?: string;
  dest?: string;
  body: Record<string, unknown>;
}

/** Runs the stdio transport in-process over PassThrough streams; resolves with the parsed output. */
async function stdio(input: (string | Buffer)[], o: { max?: number; end?: boolean; over?: Parameters<typeof makeGateway>[0] } = {}) {
  const t = makeGateway(o.over);
  const inp = new PassThrough();
  const out = new PassThrough();
  let text = '';
  out.on('data', (d: Buffer) => (text += d.toString('utf8')));
  const done = runStdio(t.gateway, inp, out, { maxMessageBytes: o.max ?? 65_536 });
  for (const chunk of input) inp.write(chunk);
  if (o.end !== false) inp.end();
  await done;
  const lines = text.split('\n');
  expect(lines.pop()).toBe(''); // every message ends with \n
  return { ...t, lines: lines.map((l) => JSON.parse(l) as Line), text };
}

const msg = (id: number, body: Record<string, unknown>) => JSON.stringify({ src: 'c1', dest: 'gateway', body: { msg_id: id, ...body } });

describe('stdio transport (in-process)', () => {
  it('answers LF and CRLF lines and a last line without a newline, then resolves', async () => {
    const { lines } = await stdio([
      `${msg(1, { type: 'init', node_id: 'n1' })}\r\n`,
      `${msg(2, { type: 'create_session', user_id: 'u' })}\n`,
      msg(3, { type: 'list_sessions', user_id: 'u' }),
    ]);
    const byId = new Map(lines.map((l) => [l.body.in_reply_to, l]));
    expect(byId.get(1)?.body.type).toBe('init_ok');
    expect(byId.get(2)?.body.type).toBe('session_created');
    expect(byId.get(3)?.body).toMatchObject({ type: 'sessions', sessions: [expect.any(Object)] });
    expect(byId.get(3)).toMatchObject({ src: 'gateway', dest: 'c1' });
  });

  it("an oversized line is error 12 to its msg_id (read from the line's first bytes); the next line is served", async () => {
    const big = msg(1, { type: 'create_session', user_id: 'u', data: { blob: 'x'.repeat(2000) } });
    const { lines } = await stdio([`${big}\n`, `${msg(2, { type: 'validate_session', session_id: 'x' })}\n`], { max: 1024 });
    expect(lines).toHaveLength(2);
    const err = lines.find((l) => l.body.type === 'error')!;
    expect(err.body).toEqual({
      type: 'error',
      in_reply_to: 1,
      code: 12,
      text: expect.stringMatching(/^Message too large \(\d+ bytes\): the limit is 1024 bytes$/),
    });
    expect(err).toMatchObject({ src: JSON.parse(big).dest, dest: JSON.parse(big).src });
    expect(lines.find((l) => l.body.in_reply_to === 2)?.body.type).toBe('session_invalid');
  });

  it('a line that is not UTF-8 is error 12 to its msg_id, never read with replacement characters (two users would become one)', async () => {
    const line = (id: number, user: Buffer) =>
      Buffer.concat([Buffer.from(`{"src":"c1","dest":"gateway","body":{"msg_id":${id},"type":"create_session","user_id":"caf`), user, Buffer.from('"}}\n')]);
    // Whole lines in one chunk, and one cut across chunks (the carried path).
    const cut = line(3, Buffer.from([0xe8]));
    const { lines, gateway } = await stdio([line(1, Buffer.from([0xe9])), line(2, Buffer.from('é')), cut.subarray(0, 20), cut.subarray(20)]);
    expect(lines.map((l) => l.body).sort((a, b) => Number(a.in_reply_to) - Number(b.in_reply_to))).toEqual([
      { type: 'error', in_reply_to: 1, code: 12, text: 'Message is not valid UTF-8' },
      expect.objectContaining({ type: 'session_created', in_reply_to: 2 }),
      { type: 'error', in_reply_to: 3, code: 12, text: 'Message is not valid UTF-8' },
    ]);
    expect(await gateway.sessions.list('caf\ufffd')).toEqual([]);
    expect(await gateway.sessions.list('café')).toHaveLength(1);
  });

  it('a reader of the output that goes away (EPIPE) ends the run: no unhandled error, nothing more read', async () => {
    const t = makeGateway();
    const inp = new PassThrough();
    let writes = 0;
    const out = new Writable({
      write(_chunk, _enc, cb) {
        writes++;
        cb(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
      },
    });
    const done = runStdio(t.gateway, inp, out, { maxMessageBytes: 65_536 });
    inp.write(`${msg(1, { type: 'create_session', user_id: 'u' })}\n`);
    await done;
    expect(writes).toBe(1);
    expect(inp.listenerCount('data')).toBe(0);
  });

  it('an oversized line whose msg_id comes after the limit gets error 12 without in_reply_to', async () => {
    const late = JSON.stringify({ src: 'c1', dest: 'gateway', body: { type: 'create_session', data: { blob: 'x'.repeat(8000) }, user_id: 'u', msg_id: 1 } });
    const { lines } = await stdio([`${late}\n`], { max: 1024 });
    expect(lines).toHaveLength(1);
    expect(lines[0]!.body).toEqual({ type: 'error', code: 12, text: expect.stringMatching(/^Message too large/) });
  });

  it('an oversized line arriving in many chunks is answered once, without buffering it whole', async () => {
    const chunks: (string | Buffer)[] = ['{"src":"c1","dest":"gateway","body":{"type":"create_session","msg_id":1,"user_id":"u","data":{"b":"'];
    const filler = Buffer.alloc(64 * 1024, 0x61);
    for (let i = 0; i < 400; i++) chunks.push(filler); // 25 MiB
    chunks.push('"}}}\n', `${msg(2, { type: 'init', node_id: 'n' })}\n`);
    const { lines } = await stdio(chunks, { max: 65_536 });
    expect(lines.map((l) => l.body.type).sort()).toEqual(['error', 'init_ok']);
  });

  it('non-JSON and bad envelopes are error 12; bad bodies answered once with in_reply_to', async () => {
    const { lines } = await stdio([
      '{nope\n',
      '[]\n',
      `${JSON.stringify({ src: 'a', dest: 'b', body: { type: 'validate_session', msg_id: 5 } })}\n`,
      `${msg(6, { type: 'nope' })}\n`,
    ]);
    expect(lines).toHaveLength(4);
    expect(lines.filter((l) => l.body.in_reply_to === undefined).map((l) => l.body.code)).toEqual([12, 12]);
    expect(lines.find((l) => l.body.in_reply_to === 5)).toEqual({
      src: 'b',
      dest: 'a',
      body: { type: 'error', in_reply_to: 5, code: 12, text: 'Missing field "session_id"' },
    });
    expect(lines.find((l) => l.body.in_reply_to === 6)?.body.code).toBe(10);
  });

  it('end of input: every request read is answered exactly once, subscriptions with long ttls do not hold it', async () => {
    const input: string[] = [];
    for (let i = 1; i <= 5000; i++)
      input.push(`${msg(i, i % 2 ? { type: 'create_session', user_id: `u${i % 7}`, ttl: 31_536_000 } : { type: 'verify_token', token: 'a.b.c' })}\n`);
    const { lines, gateway, clock } = await stdio([input.join('')]);
    const ids = lines.map((l) => l.body.in_reply_to);
    expect(ids).toHaveLength(5000);
    expect(new Set(ids).size).toBe(5000);
    expect(gateway.hub.size).toBe(0);
    expect(clock.pending).toBe(1); // the store's sweep
  });

  it('a slow reader: reading pauses and resumes, nothing is lost', async () => {
    const t = makeGateway();
    const inp = new PassThrough();
    const out = new PassThrough({ highWaterMark: 1024 });
    const done = runStdio(t.gateway, inp, out, { maxMessageBytes: 65_536, highWaterMark: 16, batchBytes: 512 });
    const n = 20_000;
    const all: string[] = [];
    for (let i = 1; i <= n; i++) all.push(`${msg(i, { type: 'validate_session', session_id: `s${i}` })}\n`);
    inp.end(all.join(''));
    await new Promise((r) => setTimeout(r, 50)); // nobody reads for a while
    let text = '';
    out.on('data', (d: Buffer) => (text += d));
    await done;
    const ids = text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).body.in_reply_to);
    expect(ids).toHaveLength(n);
    expect(new Set(ids).size).toBe(n);
  });

  it('subscriptions end with the input: no push after the last reply', async () => {
    const t = makeGateway();
    const inp = new PassThrough();
    const out = new PassThrough();
    let text = '';
    out.on('data', (d: Buffer) => (text += d));
    const done = runStdio(t.gateway, inp, out, { maxMessageBytes: 65_536 });
    const s = await t.gateway.sessions.create('u', undefined, 10);
    inp.end(`${msg(1, { type: 'subscribe_session', session_id: s.sessionId })}\n`);
    await done;
    t.clock.advance(20_000);
    await new Promise((r) => setImmediate(r));
    expect(
      text
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).body.type),
    ).toEqual(['subscribed']);
  });

  it('pushes go out while input stays open', async () => {
    const t = makeGateway();
    const inp = new PassThrough();
    const out = new PassThrough();
    const lines: Line[] = [];
    let buf = '';
    out.on('data', (d: Buffer) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        lines.push(JSON.parse(buf.slice(0, i)));
        buf = buf.slice(i + 1);
      }
    });
    const done = runStdio(t.gateway, inp, out, { maxMessageBytes: 65_536 });
    const s = await t.gateway.sessions.create('u', undefined, 10);
    inp.write(`${msg(1, { type: 'subscribe_session', session_id: s.sessionId })}\n`);
    for (let i = 0; i < 5 && lines.length < 1; i++) await new Promise((r) => setImmediate(r));
    t.clock.advance(10_000);
    for (let i = 0; i < 5 && lines.length < 2; i++) await new Promise((r) => setImmediate(r));
    expect(lines.map((l) => [l.body.type, l.body.reason])).toEqual([
      ['subscribed', undefined],
      ['session_expired', 'ttl'],
    ]);
    inp.end();
    await done;
  });
});

describe('stdio transport (node dist/cli.js stdio; needs npx tsc -p .)', () => {
  const children: ReturnType<typeof spawn>[] = [];
  afterAll(() => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  });

  it('exits 0 promptly when stdin closes, even with subscriptions and long ttls', async () => {
    const child = spawn(process.execPath, ['dist/cli.js', 'stdio'], {
      env: { ...process.env, GATEWAY_JWT_SECRET: SECRET, GATEWAY_SESSION_TTL: '31536000', GATEWAY_LOG_LEVEL: 'warn' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    children.push(child);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const until = async (n: number) => {
      for (let i = 0; i < 200 && out.split('\n').length <= n; i++) await new Promise((r) => setTimeout(r, 10));
    };
    child.stdin.write(`${msg(1, { type: 'create_session', user_id: 'u' })}\n`);
    await until(1);
    const sid = JSON.parse(out.split('\n')[0]!).body.session_id as string;
    for (let i = 0; i < 50; i++) child.stdin.write(`${msg(10 + i, { type: 'subscribe_session', session_id: sid })}\n`);
    child.stdin.write(`${msg(2, { type: 'generate_access_token', payload: { sub: 'u' } })}\n`);
    await until(52);
    const closedAt = Date.now();
    child.stdin.end();
    const code = await exited;
    const took = Date.now() - closedAt;
    expect(code).toBe(0);
    expect(took).toBeLessThan(2000);
    const lines = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Line);
    expect(lines).toHaveLength(52);
    expect(new Set(lines.map((l) => l.body.in_reply_to)).size).toBe(52);
  });
});
