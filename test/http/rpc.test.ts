/**
 * POST /v1/rpc: every request type over real HTTP requests, the status of each protocol
 * error code, the service key, 415, 413 without reading the whole body, 408 on a slow body,
 * Cache-Control: no-store on every answer, keep-alive, and GET /openapi.json.
 */
import { execFileSync } from 'node:child_process';
import { Agent, request } from 'node:http';
import { pino } from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { GatewayError } from '../../src/errors.js';
import { requestSchemas } from '../../src/protocol/messages.js';
import { httpPost, type Answer } from '../helpers/http-post.js';
import { required } from '../helpers/required.js';
import { startTestIdp } from '../helpers/test-idp.js';
import { SERVICE_KEY, start, startWithStoreDouble, stopAll } from '../ws/helpers.js';

const agent = new Agent({ keepAlive: true, maxSockets: 1 });
afterEach(stopAll);
afterAll(() => agent.destroy());

const AUTH = { Authorization: `Bearer ${SERVICE_KEY}`, 'Content-Type': 'application/json' };

/** One request over the keep-alive agent; `body` an object is sent as JSON, a string as it is. */
function post(url: string, body: unknown, headers: Record<string, string> = AUTH, method = 'POST'): Promise<Answer> {
  return httpPost(`${url}/v1/rpc`, typeof body === 'string' ? body : JSON.stringify(body), headers, { method, agent });
}

/** A request whose answer is expected: 200 and the reply body, with no-store. */
async function ok(url: string, body: Record<string, unknown>): Promise<Record<string, unknown>> {
  const a = await post(url, body);
  expect(a.headers['cache-control']).toBe('no-store');
  expect(a.status, JSON.stringify(a.body)).toBe(200);
  return a.body;
}

describe('POST /v1/rpc: every request type', () => {
  it('serves each type through the pipeline; typed replies are 200, invalid ones included', async () => {
    const { http } = await start();
    const seen = new Set<string>();
    const call = async (body: Record<string, unknown>) => {
      seen.add(body.type as string);
      return ok(http, body);
    };
    expect(await call({ type: 'init', msg_id: 1, node_id: 'n1', node_ids: ['n1'] })).toEqual({ type: 'init_ok', in_reply_to: 1 });
    const created = await call({ type: 'create_session', user_id: 'alice', data: { role: 'admin' }, ttl: 600 });
    expect(created).toMatchObject({ type: 'session_created', in_reply_to: 0, expires_in: 600 });
    const sid = created.session_id as string;
    expect(await call({ type: 'validate_session', msg_id: 9, session_id: sid })).toEqual({
      type: 'session_valid',
      in_reply_to: 9,
      user_id: 'alice',
      data: { role: 'admin' },
      expires_in: 600,
    });
    expect(await call({ type: 'validate_session', session_id: 'no-such-session' })).toMatchObject({ type: 'session_invalid' });
    const regenerated = await call({ type: 'regenerate_session', old_session_id: sid });
    expect(regenerated).toMatchObject({ type: 'session_regenerated' });
    const sid2 = regenerated.new_session_id as string;
    expect(await call({ type: 'validate_session', session_id: sid })).toMatchObject({ type: 'session_invalid' });
    const listed = await call({ type: 'list_sessions', user_id: 'alice' });
    expect(listed).toMatchObject({ type: 'sessions', sessions: [expect.objectContaining({ handle: expect.any(String) })] });
    const handle = (listed.sessions as { handle: string }[])[0]!.handle;
    expect(await call({ type: 'exchange_session', session_id: sid2 })).toMatchObject({ type: 'token_generated', access_token: expect.any(String) });
    expect(await call({ type: 'destroy_session_handle', user_id: 'alice', handle })).toMatchObject({ type: 'session_destroyed' });
    expect(await call({ type: 'validate_session', session_id: sid2 })).toMatchObject({ type: 'session_invalid' });
    const third = (await call({ type: 'create_session', user_id: 'alice' })).session_id as string;
    expect(await call({ type: 'destroy_session', session_id: third })).toEqual({ type: 'session_destroyed', in_reply_to: 0, message: 'Session destroyed' });
    await call({ type: 'create_session', user_id: 'bob' });
    expect(await call({ type: 'revoke_user_sessions', user_id: 'bob' })).toEqual({ type: 'sessions_revoked', in_reply_to: 0, count: 1 });
    const tokens = await call({ type: 'generate_access_token', payload: { sub: 'carol' } });
    expect(tokens).toMatchObject({ type: 'token_generated', refresh_token: expect.any(String) });
    expect(await call({ type: 'verify_token', token: tokens.access_token })).toMatchObject({ type: 'token_valid', payload: { sub: 'carol' } });
    expect(await call({ type: 'verify_token', token: 'x.y.z' })).toMatchObject({ type: 'token_invalid' });
    const refreshed = await call({ type: 'refresh_token', refresh_token: tokens.refresh_token });
    expect(refreshed).toMatchObject({ type: 'token_refreshed', access_token: expect.any(String) });
    expect(await call({ type: 'revoke_token', token: refreshed.refresh_token })).toEqual({ type: 'token_revoked', in_reply_to: 0 });
    expect(await call({ type: 'refresh_token', refresh_token: refreshed.refresh_token })).toMatchObject({ type: 'token_invalid' });
    const fourth = (await call({ type: 'create_session', user_id: 'dave', ttl: 600 })).session_id as string;
    expect(await call({ type: 'extend_session', session_id: fourth, ttl: 1200 })).toMatchObject({ type: 'session_extended', expires_in: 1200 });
    expect(await call({ type: 'update_session', session_id: fourth, data: { role: 'viewer' } })).toMatchObject({ type: 'session_updated' });
    expect(await call({ type: 'validate_session', session_id: fourth })).toMatchObject({ type: 'session_valid', data: { role: 'viewer' } });
    const erin = await call({ type: 'generate_access_token', payload: { sub: 'erin' } });
    expect(await call({ type: 'revoke_user_tokens', user_id: 'erin' })).toMatchObject({ type: 'tokens_revoked', before: expect.any(Number) });
    expect(await call({ type: 'verify_token', token: erin.access_token })).toMatchObject({ type: 'token_invalid', error: 'Token revoked' });
    // Subscriptions need a connection: 1001, 403.
    for (const type of ['subscribe_session', 'unsubscribe_session']) {
      seen.add(type);
      const a = await post(http, { type, msg_id: 3, session_id: sid });
      expect(a.status).toBe(403);
      expect(a.body).toEqual({ type: 'error', in_reply_to: 3, code: 1001, text: `Message type "${type}" is not allowed on this connection` });
    }
    expect([...seen].sort()).toEqual(Object.keys(requestSchemas).sort());
  });
});

describe('POST /v1/rpc: status of each error code, the body kept', () => {
  it('10 -> 404, 12 -> 400 (a missing field, malformed JSON, a body that is not an object, a duplicate name, a number out of range)', async () => {
    const { http } = await start();
    const cases: [unknown, number, Record<string, unknown>][] = [
      [{ type: 'teleport', msg_id: 4 }, 404, { type: 'error', in_reply_to: 4, code: 10, text: 'Unknown message type "teleport"' }],
      [{ type: 'validate_session', msg_id: 5 }, 400, { type: 'error', in_reply_to: 5, code: 12, text: 'Missing field "session_id"' }],
      ['{"type": "validate_session", ', 400, { type: 'error', code: 12, text: 'Malformed JSON' }],
      // The text of the other transports, where this is the envelope's `body` field.
      ...['[1, 2]', '"x"', 'null', '5'].map((b): [string, number, Record<string, unknown>] => [
        b,
        400,
        { type: 'error', code: 12, text: 'Field "body" must be a JSON object' },
      ]),
      [
        '{"type":"create_session","user_id":"a","user_id":"b"}',
        400,
        { type: 'error', in_reply_to: 0, code: 12, text: 'Duplicate member name in a JSON object' },
      ],
      [
        '{"type":"create_session","msg_id":6,"user_id":"a","data":{"limit":1e400}}',
        400,
        { type: 'error', in_reply_to: 6, code: 12, text: 'Field "data" must not hold a number out of range' },
      ],
    ];
    for (const [body, status, reply] of cases) {
      const a = await post(http, body);
      expect(a.status).toBe(status);
      expect(a.body).toEqual(reply);
      expect(a.headers['cache-control']).toBe('no-store');
    }
  });

  it('11 -> 503, 13 -> 500, 1002 -> 429 (the store double fails with each)', async () => {
    const { http, store } = await startWithStoreDouble();
    const sid = (await ok(http, { type: 'create_session', user_id: 'u' })).session_id;
    const cases: [unknown, number, number][] = [
      [GatewayError.unavailable(new Error('connection refused')), 503, 11],
      [new Error('a bug'), 500, 13],
      [new GatewayError('RATE_LIMITED', 'Too many requests'), 429, 1002],
    ];
    for (const [error, status, code] of cases) {
      store.fail('get', error);
      const a = await post(http, { type: 'validate_session', msg_id: 2, session_id: sid });
      expect(a.status).toBe(status);
      expect(a.body).toMatchObject({ type: 'error', in_reply_to: 2, code });
      expect(a.headers['cache-control']).toBe('no-store');
      store.restore('get');
    }
    expect(await ok(http, { type: 'validate_session', session_id: sid })).toMatchObject({ type: 'session_valid' });
  });
});

describe('POST /v1/rpc: what is refused before the pipeline', () => {
  it("each request's connection opened line names its transport, role and client address, as the other transports' do", async () => {
    const lines: string[] = [];
    const log = pino({ level: 'debug' }, { write: (l: string) => void lines.push(l) });
    const { http } = await start({}, { log });
    await ok(http, { type: 'validate_session', session_id: 'x' });
    const opened = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.event === 'connection opened');
    expect(opened).toEqual([expect.objectContaining({ transport: 'http', role: 'service', remote: '127.0.0.1' })]);
  });

  it('bodies that do not decode are counted in gateway_messages_total as type "invalid", as over WebSocket', async () => {
    const { server, http } = await start();
    expect((await post(http, 'notjson')).status).toBe(400);
    expect((await post(http, { type: 'bogus' })).status).toBe(404);
    expect((await post(http, { type: 'validate_session' })).status).toBe(400);
    expect((await rawPost(`${http}/v1/rpc`, Buffer.from([0x7b, 0xff, 0x7d]))).status).toBe(400);
    const text = await server.metrics.text();
    expect(text).toMatch(/gateway_messages_total\{type="invalid",outcome="error_12"\} 3/);
    expect(text).toMatch(/gateway_messages_total\{type="invalid",outcome="error_10"\} 1/);
  });

  it('a body that is not UTF-8 is 400, never read with replacement characters (two users would become one)', async () => {
    const { http } = await start();
    const latin1 = (head: string, tail: string) => Buffer.concat([Buffer.from(head), Buffer.from([0xe9]), Buffer.from(tail)]);
    // The error of every transport (error 12, "Message is not valid UTF-8"), answering the body's
    // msg_id when it can be read (0 when it has none, as for every body without one).
    const cases: [Buffer, Record<string, unknown>][] = [
      [latin1('{"type":"create_session","msg_id":9,"user_id":"caf', '"}'), { type: 'error', in_reply_to: 9, code: 12, text: 'Message is not valid UTF-8' }],
      [latin1('{"type":"create_session","user_id":"caf', '"}'), { type: 'error', in_reply_to: 0, code: 12, text: 'Message is not valid UTF-8' }],
      [latin1('{"type":"create_session","msg_id":"9","user_id":"caf', '"}'), { type: 'error', code: 12, text: 'Message is not valid UTF-8' }],
      [latin1('{"msg_id":10,"type":"create_session","user_id":caf', '}'), { type: 'error', in_reply_to: 10, code: 12, text: 'Message is not valid UTF-8' }],
      [latin1('[', ']'), { type: 'error', code: 12, text: 'Message is not valid UTF-8' }],
    ];
    for (const [body, reply] of cases) {
      const a = await rawPost(`${http}/v1/rpc`, body);
      expect(a.status).toBe(400);
      expect(JSON.parse(a.text)).toEqual(reply);
    }
    expect((await ok(http, { type: 'list_sessions', user_id: 'caf\ufffd' })).sessions).toEqual([]);
  });

  it('401 without the service key, with a wrong one or a malformed header; the key never echoed', async () => {
    const { http } = await start();
    const body = { type: 'create_session', user_id: 'u' };
    for (const auth of [undefined, 'Bearer wrong-key', `Basic ${SERVICE_KEY}`, `Bearer ${SERVICE_KEY}x`, 'Bearer']) {
      const headers: Record<string, string> = { 'Content-Type': 'application/json', ...(auth === undefined ? {} : { Authorization: auth }) };
      const a = await post(http, body, headers);
      expect(a.status).toBe(401);
      expect(a.headers['www-authenticate']).toBe('Bearer');
      expect(a.headers['cache-control']).toBe('no-store');
      expect(JSON.stringify(a.body)).not.toContain(SERVICE_KEY);
    }
  });

  it('401 for every request when no service key is configured (fails closed)', async () => {
    const { http } = await start({ GATEWAY_SERVICE_KEY: undefined });
    expect((await post(http, { type: 'init', node_id: 'n' })).status).toBe(401);
  });

  it('415 unless Content-Type is application/json (a charset is fine when it is UTF-8: the body is read as UTF-8)', async () => {
    const { http } = await start();
    const body = { type: 'init', node_id: 'n' };
    for (const type of [
      'text/plain',
      'application/x-www-form-urlencoded',
      'application/jsonx',
      'application/json; charset=latin1',
      'application/json;charset="UTF-16"',
    ]) {
      const a = await post(http, body, { Authorization: `Bearer ${SERVICE_KEY}`, 'Content-Type': type });
      expect(a.status).toBe(415);
      expect(a.headers['cache-control']).toBe('no-store');
    }
    expect((await post(http, body, { Authorization: `Bearer ${SERVICE_KEY}` })).status).toBe(415);
    for (const type of [
      'application/json; charset=utf-8',
      'Application/JSON; Charset="UTF-8"',
      'application/json; charset=us-ascii',
      'application/json; foo=bar',
    ]) {
      expect((await post(http, body, { Authorization: `Bearer ${SERVICE_KEY}`, 'Content-Type': type })).status, type).toBe(200);
    }
  });

  it('405 for other methods', async () => {
    const { http } = await start();
    const a = await post(http, '', AUTH, 'GET');
    expect(a.status).toBe(405);
    expect(a.headers.allow).toBe('POST');
  });

  it('413 past GATEWAY_MAX_MESSAGE_BYTES: from Content-Length at once, and mid-stream without waiting for the rest', async () => {
    const { http } = await start({ GATEWAY_MAX_MESSAGE_BYTES: '1024' });
    const big = JSON.stringify({ type: 'create_session', user_id: 'u', data: { pad: 'x'.repeat(2000) } });
    const a = await post(http, big);
    expect(a.status).toBe(413);
    expect(a.body).toEqual({ type: 'error', code: 12, text: `Message too large (${big.length} bytes): the limit is 1024 bytes` });
    expect(a.headers['cache-control']).toBe('no-store');
    // Chunked, and never finished: the answer comes once the limit is passed; its size is unknown, so the text names none.
    const answer = await new Promise<[number, string]>((resolve, reject) => {
      const req = request(`${http}/v1/rpc`, { method: 'POST', headers: { ...AUTH, 'Transfer-Encoding': 'chunked' } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve([res.statusCode!, text]));
      });
      req.on('error', reject);
      req.write('x'.repeat(2048));
    });
    expect(answer).toEqual([413, JSON.stringify({ type: 'error', code: 12, text: 'Message too large: the limit is 1024 bytes' })]);
    // A body under the limit is still served.
    expect((await post(http, { type: 'init', node_id: 'n' })).status).toBe(200);
  });

  it('408 when the body does not arrive in time', async () => {
    const { http } = await start({}, { httpBodyTimeoutMs: 300 });
    const began = performance.now();
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(`${http}/v1/rpc`, { method: 'POST', headers: { ...AUTH, 'Content-Length': '100' } }, (r) => {
        let body = '';
        r.setEncoding('utf8');
        r.on('data', (d: string) => (body += d));
        r.on('end', () => resolve({ status: r.statusCode!, body }));
      });
      req.on('error', reject);
      req.write('{"type": "init", ');
    });
    expect(res.status).toBe(408);
    expect(JSON.parse(res.body)).toEqual({ type: 'error', code: 12, text: 'The body did not arrive within 300 ms' });
    expect(performance.now() - began).toBeLessThan(10_000);
  });

  it('keeps the connection alive between requests', async () => {
    const { http } = await start();
    const first = await post(http, { type: 'init', node_id: 'n' });
    const second = await post(http, { type: 'init', node_id: 'n' });
    expect(first.headers.connection).toBe('keep-alive');
    expect(second.reusedSocket).toBe(true);
  });
});

describe('GET /openapi.json', () => {
  it('serves the OpenAPI 3.1 document without the service key: every type /v1/rpc serves, each reply', async () => {
    const { http } = await start();
    const doc = await new Promise<Record<string, any>>((resolve, reject) => {
      request(`${http}/openapi.json`, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => {
          expect(res.statusCode).toBe(200);
          expect(res.headers['cache-control']).toBe('no-store');
          resolve(JSON.parse(text) as Record<string, any>);
        });
      })
        .on('error', reject)
        .end();
    });
    expect(doc.openapi).toBe('3.1.0');
    const post = doc.paths['/v1/rpc'].post;
    expect(post.security).toEqual([{ serviceKey: [] }]);
    const mapping = post.requestBody.content['application/json'].schema.discriminator.mapping as Record<string, string>;
    expect(Object.keys(mapping).sort()).toEqual(
      Object.keys(requestSchemas)
        .filter((t) => !t.includes('subscribe'))
        .sort(),
    );
    expect(doc.components.schemas.ValidateSessionRequest.required).toEqual(['type', 'session_id']);
    expect(Object.keys(post.responses).sort()).toEqual(['200', '400', '401', '403', '404', '405', '408', '413', '415', '417', '429', '431', '500', '503']);
    expect(doc.components.schemas.SessionValidReply.properties.user_id.type).toBe('string');
  });

  it('declares the headers the refusals really carry: WWW-Authenticate on 401, Allow on 405, Accept-Encoding on the 415 of a content coding', async () => {
    const idp = await startTestIdp({ now: () => Date.now() });
    try {
      const { http } = await start(idp.gatewayEnv);
      const doc = (await fetch(`${http}/openapi.json`).then((r) => r.json())) as Record<string, any>;
      const form = 'application/x-www-form-urlencoded';
      const routes: [string, string, boolean][] = [
        ['/v1/rpc', 'application/json', true],
        ['/oauth2/introspect', form, true],
        ['/oauth2/revoke', form, true],
        ['/oidc/backchannel-logout', form, false],
      ];
      const checked = ['www-authenticate', 'allow', 'accept-encoding', 'retry-after'];
      const missing: string[] = [];
      for (const [path, type, keyed] of routes) {
        const key: Record<string, string> = keyed ? { Authorization: `Bearer ${SERVICE_KEY}` } : {};
        const answers = [
          await httpPost(`${http}${path}`, 'x', { 'Content-Type': type }, { method: 'GET' }),
          await httpPost(`${http}${path}`, 'x', { ...key, 'Content-Type': type, 'Content-Encoding': 'gzip' }),
          ...(keyed ? [await httpPost(`${http}${path}`, 'x', { 'Content-Type': type })] : []),
        ];
        for (const a of answers) {
          const declared = Object.keys(doc.paths[path].post.responses[String(a.status)]?.headers ?? {}).map((h) => h.toLowerCase());
          for (const h of checked) if (a.headers[h] !== undefined && !declared.includes(h)) missing.push(`${path} ${a.status} ${h}`);
        }
      }
      expect(missing).toEqual([]);
    } finally {
      await idp.close();
    }
  });

  it.runIf(required('build'))('`auth-gateway openapi` prints the same document', async () => {
    const { http } = await start();
    const printed = execFileSync(process.execPath, ['dist/cli.js', 'openapi'], { encoding: 'utf8' });
    const served = await fetch(`${http}/openapi.json`).then((r) => r.json());
    expect(JSON.parse(printed)).toEqual(served);
  });
});

/** A POST of raw bytes with the service key. */
function rawPost(url: string, body: Buffer): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { ...AUTH, 'Content-Length': String(body.length) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}
