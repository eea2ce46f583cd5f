/**
 * What the HTTP routes answer from a request's head, before (or instead of) reading a body:
 * requests Node cannot read, `Expect` headers (a request refused from its head is never sent
 * 100 Continue) and content codings. Each answer carries the
 * gateway's headers and a JSON body, and a reply already in progress on the connection is
 * never lost to a later unreadable request.
 */
import { gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { startTestIdp, type TestIdp } from '../helpers/test-idp.js';
import { eventually, rawHttpClient, SERVICE_KEY, service, start, stopAll } from '../ws/helpers.js';

const idps: TestIdp[] = [];
afterEach(async () => {
  await stopAll();
  await Promise.all(idps.splice(0).map((idp) => idp.close()));
});

/** The gateway's headers on every answer (src/transports/http/http-util.ts BASE_HEADERS). */
const GATEWAY_HEADERS = ['X-Content-Type-Options: nosniff', 'Referrer-Policy: no-referrer', 'Cache-Control: no-store'];

/** Writes `raw` on a new connection; resolves with everything read until the gateway closes it. */
async function exchange(port: number, raw: string | Buffer): Promise<string> {
  const c = await rawHttpClient(port);
  c.socket.write(raw);
  return c.closed;
}

/** The answers in `raw`, each as its status line, head and parsed JSON body. */
function answers(raw: string): { status: string; head: string; body: unknown }[] {
  return raw
    .split(/(?=HTTP\/1\.1 \d{3} )/)
    .filter((a) => !a.startsWith('HTTP/1.1 100 '))
    .map((a) => {
      const end = a.indexOf('\r\n\r\n');
      const body = a.slice(end + 4);
      return { status: a.split('\r\n', 1)[0]!, head: a.slice(0, end), body: body === '' ? undefined : (JSON.parse(body) as unknown) };
    });
}

function rpcRequest(body: string, headers: Record<string, string> = {}): string {
  const all = {
    Host: 'x',
    Authorization: `Bearer ${SERVICE_KEY}`,
    'Content-Type': 'application/json',
    'Content-Length': String(Buffer.byteLength(body)),
    ...headers,
  };
  return `POST /v1/rpc HTTP/1.1\r\n${Object.entries(all)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n${body}`;
}

describe('requests Node cannot read', () => {
  it('a request followed on its connection by bytes that are not HTTP: the request is answered whole, then the connection closes', async () => {
    const { server } = await start();
    const raw = await exchange(server.port, rpcRequest(JSON.stringify({ type: 'create_session', user_id: 'pipelined', msg_id: 77 })) + 'NOT HTTP\r\n\r\n');
    const [first, ...rest] = answers(raw);
    expect(first!.status).toBe('HTTP/1.1 200 OK');
    expect(first!.body).toMatchObject({ type: 'session_created', in_reply_to: 77 });
    expect(first!.head).toContain('\r\nConnection: close');
    expect(rest).toEqual([]);
    const s = service(server.url);
    await s.opened;
    expect(await s.call('list_sessions', { user_id: 'pipelined' })).toMatchObject({ sessions: [expect.anything()] });
  });

  it('pipelined requests read before the unreadable bytes are all answered, in order', async () => {
    const { server } = await start();
    const one = (id: number) => rpcRequest(JSON.stringify({ type: 'validate_session', session_id: 'x', msg_id: id }));
    const raw = await exchange(server.port, one(1) + one(2) + 'NOT HTTP\r\n\r\n');
    expect(answers(raw).map((a) => [a.status, a.body])).toEqual([
      ['HTTP/1.1 200 OK', expect.objectContaining({ in_reply_to: 1 })],
      ['HTTP/1.1 200 OK', expect.objectContaining({ in_reply_to: 2 })],
    ]);
  });

  it('bytes after an answer that closed the connection get no answer of their own (RFC 9112 section 9.6): after a request that said Connection: close, after a refusal', async () => {
    const { server } = await start();
    const healthz = 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n';
    const cases: [string, string][] = [
      // A client that sent close must send nothing more; one that does is not answered again.
      [healthz.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n') + healthz, 'HTTP/1.1 200 OK'],
      [healthz.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n') + 'NOT HTTP\r\n\r\n', 'HTTP/1.1 200 OK'],
      // A GET with a body but no framing (Node's client sends one so): the 405 closes, the body is left unread.
      ['GET /v1/rpc HTTP/1.1\r\nHost: x\r\n\r\nx', 'HTTP/1.1 405 Method Not Allowed'],
      [rpcRequest('{}', { Authorization: 'Bearer wrong' }) + 'x', 'HTTP/1.1 401 Unauthorized'],
    ];
    const got = await Promise.all(cases.map(([raw]) => exchange(server.port, raw)));
    // The status lines (the body of /healthz is not JSON).
    expect(got.map((raw) => raw.match(/^HTTP\/1\.1 \d{3} [^\r]*/gm))).toEqual(cases.map(([, status]) => [status]));
    for (const raw of got) expect(raw).toContain('\r\nConnection: close\r\n');
  });

  it('431 (head too large), 400 (two Content-Length, bytes that are not HTTP), 417 (an Expect other than 100-continue): the gateway headers, a JSON body, the connection closed', async () => {
    const { server } = await start();
    const cases: [string, string, string][] = [
      [
        `POST /v1/rpc HTTP/1.1\r\nHost: x\r\nX-A: ${'a'.repeat(20_000)}\r\n\r\n`,
        'HTTP/1.1 431 Request Header Fields Too Large',
        'Request header fields too large',
      ],
      [
        'POST /v1/rpc HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab',
        'HTTP/1.1 400 Bad Request',
        'Bad request: not a valid HTTP/1.1 request',
      ],
      ['NOT HTTP\r\n\r\n', 'HTTP/1.1 400 Bad Request', 'Bad request: not a valid HTTP/1.1 request'],
      [rpcRequest('{}', { Expect: 'fancy' }), 'HTTP/1.1 417 Expectation Failed', 'Expectation failed: only Expect: 100-continue is supported'],
      [
        'GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: fancy\r\n\r\n',
        'HTTP/1.1 417 Expectation Failed',
        'Expectation failed: only Expect: 100-continue is supported',
      ],
    ];
    const got = [];
    for (const [raw] of cases) got.push(answers(await exchange(server.port, raw)));
    expect(got.map((a) => a.map((x) => [x.status, x.body]))).toEqual(cases.map(([, status, text]) => [[status, { error: text }]]));
    for (const [a] of got) {
      for (const h of [...GATEWAY_HEADERS, 'Content-Type: application/json; charset=utf-8', 'Connection: close']) expect(a!.head).toContain(`\r\n${h}`);
    }
    // The port keeps serving.
    expect(await exchange(server.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).toMatch(/^HTTP\/1\.1 200 OK\r\n.*\r\n\r\nok\n$/s);
  });

  it('an HTTP/1.1 request without a Host, or with two (RFC 9112 section 3.2), on any path, an upgrade included: 400 with the gateway headers and a JSON body, the connection closed, nothing executed', async () => {
    const { server } = await start();
    const body = JSON.stringify({ type: 'create_session', user_id: 'hostless' });
    const noHost = rpcRequest(body).replace('Host: x\r\n', '');
    const twoHosts = rpcRequest(body).replace('Host: x\r\n', 'Host: x\r\nHost: y\r\n');
    const upgrade = (host: string) =>
      `GET / HTTP/1.1\r\n${host}Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`;
    const cases = [
      noHost,
      twoHosts,
      'GET /healthz HTTP/1.1\r\n\r\n',
      'GET /healthz HTTP/1.1\r\nHost: x\r\nhost: y\r\n\r\n',
      upgrade(''),
      upgrade('Host: x\r\nHost: y\r\n'),
    ];
    const got = await Promise.all(cases.map(async (raw) => answers(await exchange(server.port, raw))));
    expect(got.map((a) => a.map((x) => [x.status, x.body]))).toEqual(
      cases.map(() => [['HTTP/1.1 400 Bad Request', { error: 'Bad request: not a valid HTTP/1.1 request' }]]),
    );
    for (const [a] of got) {
      for (const h of [...GATEWAY_HEADERS, 'Content-Type: application/json; charset=utf-8', 'Connection: close']) expect(a!.head).toContain(`\r\n${h}`);
    }
    // HTTP/1.0 needs no Host; HTTP/1.1 with one is served.
    expect(await exchange(server.port, 'GET /healthz HTTP/1.0\r\n\r\n')).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    const s = service(server.url);
    await s.opened;
    expect(await s.call('list_sessions', { user_id: 'hostless' })).toMatchObject({ type: 'sessions', sessions: [] });
  });

  it('two Authorization lines (a single-value field; Node keeps the first, a proxy may judge by the last), in either order, an upgrade included: 400, nothing executed', async () => {
    const { server } = await start();
    const body = JSON.stringify({ type: 'create_session', user_id: 'two-keys' });
    const wrong = 'Authorization: Bearer 8nIho8M/eCRS7/p35vKxszNEUJ9AUp2Uzy+C/z2ew0M=\r\n';
    const cases = [
      rpcRequest(body).replace('Host: x\r\n', `Host: x\r\n${wrong}`),
      rpcRequest(body).replace('Content-Type:', `${wrong}Content-Type:`),
      rpcRequest(body).replace('Content-Type:', `authorization: Bearer ${SERVICE_KEY}\r\nContent-Type:`),
      `GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${SERVICE_KEY}\r\n${wrong}Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    ];
    const got = await Promise.all(cases.map(async (raw) => answers(await exchange(server.port, raw))));
    expect(got.map((a) => a.map((x) => [x.status, x.body]))).toEqual(
      cases.map(() => [['HTTP/1.1 400 Bad Request', { error: 'Bad request: not a valid HTTP/1.1 request' }]]),
    );
    const s = service(server.url);
    await s.opened;
    expect(await s.call('list_sessions', { user_id: 'two-keys' })).toMatchObject({ type: 'sessions', sessions: [] });
  });

  it('a head of more than 2000 field lines (Node keeps only 2000 by default) is judged whole: a second Host or a gzip, chunked Transfer-Encoding after them is 400, nothing executed', async () => {
    const { server } = await start();
    const body = JSON.stringify({ type: 'create_session', user_id: 'many-fields' });
    // 2000 empty fields fit well within the 16 KB head limit.
    const filler = 'X-F:\r\n'.repeat(2000);
    const chunk = `${Buffer.byteLength(body).toString(16)}\r\n${body}\r\n0\r\n\r\n`;
    const cases = [
      rpcRequest(body).replace('\r\n\r\n', `\r\n${filler}Host: y\r\n\r\n`),
      rpcRequest('').replace('Content-Length: 0\r\n', `${filler}Transfer-Encoding: gzip, chunked\r\n`) + chunk,
    ];
    const got = await Promise.all(cases.map(async (raw) => answers(await exchange(server.port, raw))));
    expect(got.map((a) => a.map((x) => [x.status, x.body]))).toEqual(
      cases.map(() => [['HTTP/1.1 400 Bad Request', { error: 'Bad request: not a valid HTTP/1.1 request' }]]),
    );
    const s = service(server.url);
    await s.opened;
    expect(await s.call('list_sessions', { user_id: 'many-fields' })).toMatchObject({ type: 'sessions', sessions: [] });
  });

  it('CONNECT (the gateway is no proxy) is answered 501 with the gateway headers and a JSON body, then the connection closes; the port keeps serving', async () => {
    const { server } = await start();
    const [a, ...rest] = answers(await exchange(server.port, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n'));
    expect([a!.status, a!.body]).toEqual(['HTTP/1.1 501 Not Implemented', { error: 'Not implemented: CONNECT (this server is not a proxy)' }]);
    for (const h of [...GATEWAY_HEADERS, 'Content-Type: application/json; charset=utf-8', 'Connection: close']) expect(a!.head).toContain(`\r\n${h}`);
    expect(rest).toEqual([]);
    expect(await exchange(server.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
  });

  it('a body that cannot be read (a bad chunk size, a chunk extension or trailer too large, a transfer coding other than chunked alone) is answered at once, not after the body timeout, and nothing is executed', async () => {
    const { server } = await start();
    const body = JSON.stringify({ type: 'create_session', user_id: 'unreadable-body' });
    const head = (coding: string) => rpcRequest('', { 'Transfer-Encoding': coding }).replace('Content-Length: 0\r\n', '');
    const chunk = `${Buffer.byteLength(body).toString(16)}\r\n${body}\r\n`;
    const zipped = gzipSync(body).toString('latin1');
    const gzipped = `${zipped.length.toString(16)}\r\n${zipped}\r\n`;
    const cases: [string, string, string][] = [
      [`${head('chunked')}zz\r\n${body}\r\n0\r\n\r\n`, 'HTTP/1.1 400 Bad Request', 'Bad request: not a valid HTTP/1.1 request'],
      [`${head('chunked')}${chunk.replace('\r\n', `;x=${'y'.repeat(20_000)}\r\n`)}0\r\n\r\n`, 'HTTP/1.1 413 Payload Too Large', 'Chunk extensions too large'],
      [`${head('chunked')}${chunk}0\r\nX-T: ${'t'.repeat(20_000)}\r\n\r\n`, 'HTTP/1.1 431 Request Header Fields Too Large', 'Request header fields too large'],
      [`${head('gzip')}${body}`, 'HTTP/1.1 400 Bad Request', 'Bad request: not a valid HTTP/1.1 request'],
      // A coding before chunked, which the gateway would not undo: the body it framed is not the request.
      [`${head('gzip, chunked')}${gzipped}0\r\n\r\n`, 'HTTP/1.1 400 Bad Request', 'Bad request: not a valid HTTP/1.1 request'],
      [`${head('x-unknown, chunked')}${chunk}0\r\n\r\n`, 'HTTP/1.1 400 Bad Request', 'Bad request: not a valid HTTP/1.1 request'],
      [`${head('identity, chunked')}${chunk}0\r\n\r\n`, 'HTTP/1.1 400 Bad Request', 'Bad request: not a valid HTTP/1.1 request'],
      [`${head('chunked;x=1')}${chunk}0\r\n\r\n`, 'HTTP/1.1 400 Bad Request', 'Bad request: not a valid HTTP/1.1 request'],
      [
        `${head('compress').replace('Transfer-Encoding: compress\r\n', 'Transfer-Encoding: compress\r\nTransfer-Encoding: chunked\r\n')}${chunk}0\r\n\r\n`,
        'HTTP/1.1 400 Bad Request',
        'Bad request: not a valid HTTP/1.1 request',
      ],
    ];
    const started = Date.now();
    // latin1: the gzip bytes as they are (every other case is ASCII).
    const got = await Promise.all(cases.map(async ([raw]) => answers(await exchange(server.port, Buffer.from(raw, 'latin1')))));
    expect(got.map((a) => a.map((x) => [x.status, x.body]))).toEqual(cases.map(([, status, text]) => [[status, { error: text }]]));
    // Well within the 10 s body timeout (its 408 was the answer to each).
    expect(Date.now() - started).toBeLessThan(5000);
    const s = service(server.url);
    await s.opened;
    expect(await s.call('list_sessions', { user_id: 'unreadable-body' })).toMatchObject({ type: 'sessions', sessions: [] });
  });

  it('GET /openapi.json declares these answers on every POST route, with their {"error": ...} body', async () => {
    const { http } = await start();
    const doc = (await fetch(`${http}/openapi.json`).then((r) => r.json())) as Record<string, any>;
    const ref = '#/components/schemas/UnreadableRequest';
    expect(doc.components.schemas.UnreadableRequest).toMatchObject({ type: 'object', required: ['error'], properties: { error: { type: 'string' } } });
    const refsOf = (response: any): string[] => {
      const schema = response.content['application/json'].schema;
      return (schema.oneOf ?? [schema]).map((s: { $ref: string }) => s.$ref);
    };
    for (const path of ['/v1/rpc', '/oauth2/introspect', '/oauth2/revoke', '/oidc/backchannel-logout']) {
      const responses = doc.paths[path].post.responses;
      for (const status of ['417', '431']) expect(refsOf(responses[status]), `${path} ${status}`).toEqual([ref]);
    }
    const rpc = doc.paths['/v1/rpc'].post.responses;
    for (const status of ['400', '408', '413', '429']) expect(refsOf(rpc[status]), status).toContain(ref);
  });
});

describe('Expect: 100-continue', () => {
  it('a request its head alone refuses gets its final status, never 100 Continue: no key 401, too large 413, wrong type 415, a content coding 415', async () => {
    const { server } = await start({ GATEWAY_MAX_MESSAGE_BYTES: '1024' });
    const head = (headers: Record<string, string>) =>
      `POST /v1/rpc HTTP/1.1\r\n${Object.entries({ Host: 'x', 'Content-Length': '50', Expect: '100-continue', ...headers })
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('')}\r\n`;
    const key = { Authorization: `Bearer ${SERVICE_KEY}`, 'Content-Type': 'application/json' };
    const cases: [Record<string, string>, string][] = [
      [{ 'Content-Type': 'application/json' }, 'HTTP/1.1 401 Unauthorized'],
      [{ ...key, 'Content-Length': '100000000' }, 'HTTP/1.1 413 Payload Too Large'],
      [{ ...key, 'Content-Type': 'text/plain' }, 'HTTP/1.1 415 Unsupported Media Type'],
      [{ ...key, 'Content-Encoding': 'gzip' }, 'HTTP/1.1 415 Unsupported Media Type'],
    ];
    const got: string[] = [];
    for (const [headers] of cases) got.push(await exchange(server.port, head(headers)));
    expect(got.map((raw) => raw.split('\r\n', 1)[0])).toEqual(cases.map(([, status]) => status));
    for (const raw of got) expect(raw).not.toContain('100 Continue');
  });

  it('a request that passes gets 100 Continue, then is served from the body it sends', async () => {
    const { server } = await start();
    const body = JSON.stringify({ type: 'validate_session', session_id: 'x', msg_id: 5 });
    const c = await rawHttpClient(server.port);
    c.socket.write(rpcRequest(body, { Expect: '100-continue', Connection: 'close' }).slice(0, -body.length));
    await eventually(() => expect(c.received()).toBe('HTTP/1.1 100 Continue\r\n\r\n'));
    c.socket.write(body);
    expect(answers(await c.closed).map((a) => [a.status, a.body])).toEqual([
      ['HTTP/1.1 200 OK', expect.objectContaining({ type: 'session_invalid', in_reply_to: 5 })],
    ]);
  });
});

describe('Content-Encoding', () => {
  it('any coding but identity is 415 with Accept-Encoding: identity, before the body is read, on /v1/rpc, /oauth2/* and /oidc/backchannel-logout; nothing is executed', async () => {
    const idp = await startTestIdp({ now: () => Date.now() });
    idps.push(idp);
    const { server } = await start(idp.gatewayEnv, { clock: new ManualClock(Date.now()) });
    const create = JSON.stringify({ type: 'create_session', user_id: 'coded' });
    const post = (path: string, type: string, body: string | Buffer, coding: string, auth = true) =>
      Buffer.concat([
        Buffer.from(
          `POST ${path} HTTP/1.1\r\nHost: x\r\n${auth ? `Authorization: Bearer ${SERVICE_KEY}\r\n` : ''}Content-Type: ${type}\r\nContent-Encoding: ${coding}\r\nContent-Length: ${body.length}\r\n\r\n`,
        ),
        Buffer.from(body),
      ]);
    const form = 'application/x-www-form-urlencoded';
    const cases = [
      post('/v1/rpc', 'application/json', gzipSync(create), 'gzip'),
      post('/v1/rpc', 'application/json', create, 'gzip'),
      post('/v1/rpc', 'application/json', create, 'identity, br'),
      post('/oauth2/introspect', form, 'token=x', 'deflate'),
      post('/oauth2/revoke', form, 'token=x', 'gzip'),
      post('/oidc/backchannel-logout', form, 'logout_token=x', 'gzip', false),
    ];
    const got = [];
    for (const raw of cases) got.push(answers(await exchange(server.port, raw)));
    expect(got.map((a) => a.map((x) => x.status))).toEqual(cases.map(() => ['HTTP/1.1 415 Unsupported Media Type']));
    for (const [a] of got) expect(a!.head).toContain('\r\nAccept-Encoding: identity\r\n');
    expect(got[0]![0]!.body).toEqual({ type: 'error', code: 12, text: 'Content-Encoding is not supported: send the body uncoded' });
    expect(got[3]![0]!.body).toMatchObject({ error: 'invalid_request' });
    // Identity is the body as it is: served.
    expect(
      answers(
        await exchange(
          server.port,
          post('/v1/rpc', 'application/json', create, 'identity').toString().replace('HTTP/1.1\r\n', 'HTTP/1.1\r\nConnection: close\r\n'),
        ),
      )[0]!.status,
    ).toBe('HTTP/1.1 200 OK');
    const s = service(server.url);
    await s.opened;
    expect(await s.call('list_sessions', { user_id: 'coded' })).toMatchObject({ sessions: [expect.anything()] });
  });
});
