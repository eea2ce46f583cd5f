/**
 * POST /oauth2/introspect (RFC 7662) and POST /oauth2/revoke (RFC 7009) over real HTTP
 * requests on a real server: active and inactive tokens of both kinds, read-only
 * introspection, revocation of a refresh token's family, the hint that orders but does not
 * decide, the introspection keys (and their 403 on /v1/rpc), the failed-auth throttle shared
 * with /v1/rpc and the WebSocket upgrade, 415, 413, 400, and 503 when the store cannot answer.
 */
import { createSigner } from 'fast-jwt';
import { Agent, request } from 'node:http';
import { pino } from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { httpPost, type Answer } from '../helpers/http-post.js';
import { SERVICE_KEY, service, start, startWithStoreDouble, stopAll } from '../ws/helpers.js';

/** A resource server's key (GATEWAY_INTROSPECTION_KEYS); made with `openssl rand -base64 32`. */
const INTROSPECTION_KEY = 'cZiMcaPFLT08hYDJ5BsApjUE0KevS8LNyqbq7FttzdE=';
const OTHER_INTROSPECTION_KEY = 'CMTMvVLy5GL+wzM+TBeamyBoHjP5Xi8AwJt7WwUZNdE=';
/** Random, and configured nowhere. */
const UNKNOWN_KEY = '8nIho8M/eCRS7/p35vKxszNEUJ9AUp2Uzy+C/z2ew0M=';
const ENV = { GATEWAY_INTROSPECTION_KEYS: `${INTROSPECTION_KEY},${OTHER_INTROSPECTION_KEY}` };
const FORM = 'application/x-www-form-urlencoded';
const INACTIVE = '{"active":false}';

const agent = new Agent({ keepAlive: true, maxSockets: 1 });
afterEach(stopAll);
afterAll(() => agent.destroy());

const bearer = (key: string) => ({ Authorization: `Bearer ${key}` });

/** A form to an /oauth2 route; `body` a record is form-encoded, a string is sent as it is. */
function form(url: string, path: string, body: Record<string, string> | string, headers: Record<string, string> = bearer(INTROSPECTION_KEY)): Promise<Answer> {
  const text = typeof body === 'string' ? body : new URLSearchParams(body).toString();
  return httpPost(`${url}${path}`, text, { 'Content-Type': FORM, ...headers }, { agent });
}

const introspect = (url: string, token: string, o: { hint?: string; key?: string } = {}) =>
  form(url, '/oauth2/introspect', { token, ...(o.hint === undefined ? {} : { token_type_hint: o.hint }) }, bearer(o.key ?? INTROSPECTION_KEY));
const revoke = (url: string, token: string, key = INTROSPECTION_KEY) => form(url, '/oauth2/revoke', { token }, bearer(key));

/** A protocol request over /v1/rpc with the service key; the reply body. */
async function rpc(url: string, body: Record<string, unknown>): Promise<Record<string, unknown>> {
  const a = await httpPost(`${url}/v1/rpc`, JSON.stringify(body), { ...bearer(SERVICE_KEY), 'Content-Type': 'application/json' }, { agent });
  expect(a.status, a.text).toBe(200);
  return a.body;
}

/** A pair from generate_access_token. */
async function pair(url: string, payload: Record<string, unknown> = { sub: 'alice' }): Promise<{ access: string; refresh: string }> {
  const g = await rpc(url, { type: 'generate_access_token', payload });
  expect(g.type).toBe('token_generated');
  return { access: g.access_token as string, refresh: g.refresh_token as string };
}

/** The answer says exactly inactive: 200, `{"active":false}`, nothing more, not cached. */
function expectInactive(a: Answer, what: string): void {
  expect(a.status, what).toBe(200);
  expect(a.text, what).toBe(INACTIVE);
  expect(a.headers['cache-control'], what).toBe('no-store');
}

/** An access token signed with a key the gateway does not have, shaped like its own. */
function foreignToken(nowMs: number): string {
  const iat = Math.floor(nowMs / 1000);
  const sign = createSigner({ key: UNKNOWN_KEY, algorithm: 'HS256' });
  return sign({ sub: 'alice', iat, exp: iat + 600, jti: 'AAAAAAAAAAAAAAAAAAAAAA' });
}

describe('POST /oauth2/introspect: active tokens', () => {
  it('an access token: active, token_type access_token and its claims; the payload cannot set active or token_type', async () => {
    const { http, clock } = await start(ENV);
    const { access } = await pair(http, { sub: 'alice', scope: 'read write', active: false, token_type: 'forged' });
    const a = await introspect(http, access);
    expect(a.status).toBe(200);
    expect(a.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(a.headers['cache-control']).toBe('no-store');
    const iat = Math.floor(clock.now() / 1000);
    expect(a.body).toEqual({ active: true, token_type: 'access_token', sub: 'alice', scope: 'read write', iat, exp: iat + 900, jti: expect.any(String) });
    // The answer holds what verify_token says of the same token.
    const verified = await rpc(http, { type: 'verify_token', token: access });
    expect(a.body).toEqual({ ...(verified.payload as Record<string, unknown>), active: true, token_type: 'access_token' });
  });

  it('a refresh token: exactly active, token_type refresh_token, exp and sub', async () => {
    const { http, clock } = await start({ ...ENV, GATEWAY_REFRESH_TOKEN_TTL: '7200' });
    const issuedAt = clock.now();
    const { refresh } = await pair(http, { sub: 'bob' });
    const a = await introspect(http, refresh);
    expect(a.status).toBe(200);
    expect(a.body).toEqual({ active: true, token_type: 'refresh_token', exp: Math.floor(issuedAt / 1000) + 7200, sub: 'bob' });
    // Without a user in the payload there is no sub.
    const anonymous = await pair(http, { role: 'batch' });
    expect((await introspect(http, anonymous.refresh)).body).toEqual({ active: true, token_type: 'refresh_token', exp: expect.any(Number) });
  });

  it('is read only: a refresh token introspected many times still rotates once, and is then inactive (spent)', async () => {
    const { http } = await start(ENV);
    const { refresh } = await pair(http);
    for (let i = 0; i < 3; i++) expect((await introspect(http, refresh)).body).toMatchObject({ active: true, token_type: 'refresh_token' });
    const rotated = await rpc(http, { type: 'refresh_token', refresh_token: refresh });
    expect(rotated.type).toBe('token_refreshed');
    expectInactive(await introspect(http, refresh), 'the spent token');
    expect((await introspect(http, rotated.refresh_token as string)).body).toMatchObject({ active: true, token_type: 'refresh_token' });
    expect((await introspect(http, rotated.access_token as string)).body).toMatchObject({ active: true, token_type: 'access_token' });
  });

  it('counted in gateway_messages_total by outcome', async () => {
    const { http, server } = await start(ENV);
    const { access } = await pair(http);
    await introspect(http, access);
    await introspect(http, access);
    await introspect(http, 'garbage');
    await revoke(http, access);
    await revoke(http, 'garbage');
    const counted = await server.metrics.registry.getSingleMetricAsString('gateway_messages_total');
    for (const line of [
      'type="oauth2_introspect",outcome="active"} 2',
      'type="oauth2_introspect",outcome="inactive"} 1',
      'type="oauth2_revoke",outcome="token_revoked"} 1',
      'type="oauth2_revoke",outcome="token_invalid"} 1',
    ]) {
      expect(counted).toContain(`gateway_messages_total{${line}`);
    }
  });

  it('the service key may introspect and revoke too', async () => {
    const { http } = await start(ENV);
    const { access, refresh } = await pair(http);
    expect((await introspect(http, access, { key: SERVICE_KEY })).body).toMatchObject({ active: true });
    expect((await introspect(http, refresh, { key: OTHER_INTROSPECTION_KEY })).body).toMatchObject({ active: true });
    const r = await revoke(http, access, SERVICE_KEY);
    expect(r.status).toBe(200);
    expectInactive(await introspect(http, access), 'revoked with the service key');
  });
});

describe('POST /oauth2/introspect: everything else is exactly {"active": false}', () => {
  it('garbage, a foreign signature, a refresh-shaped string, revoked, user-revoked, family-revoked, ended session', async () => {
    const { http, clock } = await start(ENV);
    const cases: [string, string][] = [];
    cases.push(['garbage', 'not a token'], ['three dots', 'x.y.z'], ['one character', 'x']);
    cases.push(['foreign signature', foreignToken(clock.now())]);
    cases.push(['refresh-shaped, never issued', `${'A'.repeat(22)}.${'B'.repeat(43)}`]);
    const revokedAccess = await pair(http);
    expect(await rpc(http, { type: 'revoke_token', token: revokedAccess.access })).toMatchObject({ type: 'token_revoked' });
    cases.push(['revoked access token', revokedAccess.access]);
    const userRevoked = await pair(http, { sub: 'carol' });
    expect(await rpc(http, { type: 'revoke_user_tokens', user_id: 'carol' })).toMatchObject({ type: 'tokens_revoked' });
    cases.push(['user-revoked access token', userRevoked.access], ['user-revoked refresh token', userRevoked.refresh]);
    const family = await pair(http);
    expect(await rpc(http, { type: 'revoke_token', token: family.refresh })).toMatchObject({ type: 'token_revoked' });
    cases.push(['refresh token of a revoked family', family.refresh], ['access token of a revoked family', family.access]);
    const sid = (await rpc(http, { type: 'create_session', user_id: 'dave' })).session_id as string;
    const bound = await rpc(http, { type: 'exchange_session', session_id: sid });
    expect((await introspect(http, bound.refresh_token as string)).body).toMatchObject({ active: true, sub: 'dave' });
    await rpc(http, { type: 'destroy_session', session_id: sid });
    cases.push(['access token of an ended session', bound.access_token as string], ['refresh token of an ended session', bound.refresh_token as string]);
    for (const [what, token] of cases) {
      for (const hint of [undefined, 'access_token', 'refresh_token']) expectInactive(await introspect(http, token, { hint }), `${what}, hint ${hint}`);
    }
  });

  it('expired: an access token past exp and the clock tolerance, a refresh token past its lifetime (ManualClock)', async () => {
    const { http, clock } = await start({ ...ENV, GATEWAY_ACCESS_TOKEN_TTL: '60', GATEWAY_REFRESH_TOKEN_TTL: '600', GATEWAY_CLOCK_TOLERANCE: '5' });
    const { access, refresh } = await pair(http);
    clock.advance(59_000);
    expect((await introspect(http, access)).body).toMatchObject({ active: true });
    clock.advance(2_000);
    expectInactive(await introspect(http, access), 'access token 61 s old');
    clock.advance(538_000);
    expect((await introspect(http, refresh)).body).toMatchObject({ active: true, token_type: 'refresh_token' });
    clock.advance(2_000);
    expectInactive(await introspect(http, refresh), 'refresh token 601 s old');
  });
});

describe('token_type_hint: honoured, not trusted (RFC 7662 section 2.1)', () => {
  it('a wrong or unknown hint still finds the token', async () => {
    const { http } = await start(ENV);
    const { access, refresh } = await pair(http);
    for (const hint of ['refresh_token', 'access_token', 'id_token', '']) {
      expect((await introspect(http, access, { hint })).body, `access, hint ${hint}`).toMatchObject({ active: true, token_type: 'access_token' });
      expect((await introspect(http, refresh, { hint })).body, `refresh, hint ${hint}`).toMatchObject({ active: true, token_type: 'refresh_token' });
    }
  });

  it("the RFCs' own request bodies: RFC 7662 section 2.1 and RFC 7009 section 2.1", async () => {
    const { http } = await start(ENV);
    // The examples' tokens were never issued here: inactive, and revoked without complaint.
    expectInactive(await form(http, '/oauth2/introspect', 'token=mF_9.B5f-4.1JqM&token_type_hint=access_token'), 'RFC 7662 example');
    const rfc7009 = await form(http, '/oauth2/revoke', 'token=45ghiukldjahdnhzdauz&token_type_hint=refresh_token');
    expect(rfc7009.status).toBe(200);
    expect(rfc7009.text).toBe('');
    // The same bodies with tokens of this gateway.
    const { access, refresh } = await pair(http);
    const active = await form(http, '/oauth2/introspect', `token=${encodeURIComponent(access)}&token_type_hint=access_token`);
    expect(active.body).toMatchObject({ active: true, token_type: 'access_token', sub: 'alice' });
    expect((await form(http, '/oauth2/revoke', `token=${encodeURIComponent(refresh)}&token_type_hint=refresh_token`)).status).toBe(200);
    expectInactive(await introspect(http, refresh), 'revoked by the RFC 7009 example body');
    expectInactive(await introspect(http, access), 'its family revoked');
  });
});

describe('POST /oauth2/revoke', () => {
  it('an access token: 200 with an empty body, then inactive and refused by verify_token', async () => {
    const { http } = await start(ENV);
    const { access, refresh } = await pair(http);
    const r = await revoke(http, access);
    expect(r.status).toBe(200);
    expect(r.text).toBe('');
    expect(r.headers['content-length']).toBe('0');
    expect(r.headers['cache-control']).toBe('no-store');
    expectInactive(await introspect(http, access), 'revoked access token');
    expect(await rpc(http, { type: 'verify_token', token: access })).toMatchObject({ type: 'token_invalid', error: 'Token revoked' });
    // The refresh token of the pair is another credential: still live.
    expect((await introspect(http, refresh)).body).toMatchObject({ active: true });
  });

  it('a refresh token revokes its whole family, through its current token or a refreshed-from one', async () => {
    const { http } = await start(ENV);
    for (const via of ['current', 'refreshed-from'] as const) {
      const first = await pair(http);
      const second = await rpc(http, { type: 'refresh_token', refresh_token: first.refresh });
      const third = await rpc(http, { type: 'refresh_token', refresh_token: second.refresh_token as string });
      const r = await revoke(http, via === 'current' ? (third.refresh_token as string) : first.refresh);
      expect(r.status).toBe(200);
      expect(r.text).toBe('');
      for (const [what, token] of [
        ['first access token', first.access],
        ['second access token', second.access_token as string],
        ['third access token', third.access_token as string],
        ['current refresh token', third.refresh_token as string],
      ]) {
        expectInactive(await introspect(http, token!), `${what}, revoked via the ${via} refresh token`);
      }
      expect(await rpc(http, { type: 'refresh_token', refresh_token: third.refresh_token })).toMatchObject({ type: 'token_invalid' });
    }
  });

  it('200 with an empty body for any token, valid or not, again and again', async () => {
    const { http, clock } = await start(ENV);
    const { refresh } = await pair(http);
    for (const token of ['garbage', 'x.y.z', foreignToken(clock.now()), `${'A'.repeat(22)}.${'B'.repeat(43)}`, refresh, refresh]) {
      const r = await revoke(http, token);
      expect(r.status, token).toBe(200);
      expect(r.text, token).toBe('');
    }
  });

  it('400 {"error":"invalid_request"} without a token, with an empty or a repeated one, or with the token in the URL', async () => {
    const { http } = await start(ENV);
    const { access } = await pair(http);
    for (const path of ['/oauth2/revoke', '/oauth2/introspect']) {
      for (const body of ['', 'token_type_hint=access_token', 'token=', `token=${access}&token=${access}`, 'tokens=abc']) {
        const a = await form(http, path, body);
        expect(a.status, `${path} ${body}`).toBe(400);
        expect(a.text, `${path} ${body}`).toBe('{"error":"invalid_request"}');
        expect(a.headers['cache-control']).toBe('no-store');
      }
      const inUrl = await form(http, `${path}?token=${access}`, `token=${access}`);
      expect(inUrl.status).toBe(400);
    }
    // None of that revoked anything.
    expect((await introspect(http, access)).body).toMatchObject({ active: true });
  });

  it('400 {"error":"invalid_request"} for any parameter given twice, not only token and token_type_hint (RFC 6749 section 3.2)', async () => {
    const { http } = await start(ENV);
    const { access } = await pair(http);
    for (const path of ['/oauth2/revoke', '/oauth2/introspect']) {
      for (const extra of ['client_id=a&client_id=a', 'client_id=a&client_id=b', 'scope=&scope=', 'x=1&x=2']) {
        const a = await form(http, path, `token=${access}&${extra}`);
        expect(a.status, `${path} ${extra}`).toBe(400);
        expect(a.text, `${path} ${extra}`).toBe('{"error":"invalid_request"}');
      }
    }
    // Nothing was revoked by the refused requests; distinct parameters are served as before.
    const ok = await form(http, '/oauth2/introspect', `token=${access}&client_id=a&scope=read`);
    expect(ok.body).toMatchObject({ active: true, token_type: 'access_token' });
  });

  it('400 exactly {"error":"invalid_request"} for a form that is not UTF-8, as for every other 400', async () => {
    const { http } = await start(ENV);
    const notUtf8 = Buffer.concat([Buffer.from('token=caf'), Buffer.from([0xe9, 0xff])]);
    for (const path of ['/oauth2/revoke', '/oauth2/introspect']) {
      const a = await httpPost(`${http}${path}`, notUtf8, { 'Content-Type': FORM, ...bearer(INTROSPECTION_KEY) }, { agent });
      expect(a.status, path).toBe(400);
      expect(a.text, path).toBe('{"error":"invalid_request"}');
    }
  });
});

describe('log lines of the routes', () => {
  it('the lines of a revocation carry the route, the caller and its address', async () => {
    const lines: string[] = [];
    const log = pino({ level: 'debug' }, { write: (l: string) => void lines.push(l) });
    const { http } = await start(ENV, { log });
    const { access, refresh } = await pair(http);
    expect((await revoke(http, access)).status).toBe(200);
    expect((await revoke(http, refresh, SERVICE_KEY)).status).toBe(200);
    expect((await introspect(http, access)).status).toBe(200);
    const entries = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const where = (role: string) => ({ transport: 'http', route: '/oauth2/revoke', role, remote: '127.0.0.1' });
    expect(entries.filter((e) => e.event === 'token revoked')).toEqual([expect.objectContaining(where('introspection'))]);
    expect(entries.filter((e) => e.event === 'token family revoked')).toEqual([expect.objectContaining({ ...where('service'), reason: 'revoked by request' })]);
    expect(entries.filter((e) => e.event === 'token refused')).toEqual([
      expect.objectContaining({ transport: 'http', route: '/oauth2/introspect', role: 'introspection', remote: '127.0.0.1' }),
    ]);
  });
});

describe('the key: service key or introspection key, nothing else', () => {
  it('401 without a key, with a wrong one or another scheme, on both routes; the key never echoed', async () => {
    const { http } = await start(ENV);
    const { access } = await pair(http);
    for (const path of ['/oauth2/introspect', '/oauth2/revoke']) {
      for (const auth of [undefined, `Bearer ${UNKNOWN_KEY}`, `Basic ${INTROSPECTION_KEY}`, `Bearer ${INTROSPECTION_KEY}x`, 'Bearer']) {
        const a = await form(http, path, { token: access }, auth === undefined ? {} : { Authorization: auth });
        expect(a.status, `${path} ${auth}`).toBe(401);
        expect(a.headers['www-authenticate']).toBe('Bearer');
        expect(a.headers['cache-control']).toBe('no-store');
        expect(a.body.error).toBe('invalid_client');
        expect(a.text).not.toContain(INTROSPECTION_KEY);
        expect(a.text).not.toContain(access);
      }
    }
    // Nothing was revoked by the refused requests.
    expect((await introspect(http, access)).body).toMatchObject({ active: true });
  });

  it('an introspection key on /v1/rpc: 403 (error 1001), nothing served; a wrong key there is 401', async () => {
    const { http } = await start(ENV);
    const json = { 'Content-Type': 'application/json' };
    const body = JSON.stringify({ type: 'create_session', user_id: 'mallory' });
    for (const key of [INTROSPECTION_KEY, OTHER_INTROSPECTION_KEY]) {
      const a = await httpPost(`${http}/v1/rpc`, body, { ...json, ...bearer(key) }, { agent });
      expect(a.status).toBe(403);
      expect(a.body).toMatchObject({ type: 'error', code: 1001 });
      expect(a.headers['cache-control']).toBe('no-store');
    }
    expect((await httpPost(`${http}/v1/rpc`, body, { ...json, ...bearer(UNKNOWN_KEY) }, { agent })).status).toBe(401);
    expect(await rpc(http, { type: 'list_sessions', user_id: 'mallory' })).toEqual({ type: 'sessions', sessions: [], in_reply_to: 0 });
  });

  it('an introspection key refused with 403 on /v1/rpc is no failed attempt: past GATEWAY_FAILED_AUTH_LIMIT of them, its routes still serve it', async () => {
    const { http } = await start({ ...ENV, GATEWAY_FAILED_AUTH_LIMIT: '2' });
    const body = JSON.stringify({ type: 'validate_session', session_id: 'nope' });
    for (let i = 0; i < 5; i++)
      expect((await httpPost(`${http}/v1/rpc`, body, { 'Content-Type': 'application/json', ...bearer(INTROSPECTION_KEY) }, { agent })).status).toBe(403);
    const a = await introspect(http, 'not-a-token');
    expect([a.status, a.body]).toEqual([200, { active: false }]);
  });

  it('without GATEWAY_INTROSPECTION_KEYS only the service key opens the routes; without any key, nothing does', async () => {
    const plain = await start();
    const { access } = await pair(plain.http);
    expect((await introspect(plain.http, access, { key: SERVICE_KEY })).body).toMatchObject({ active: true });
    expect((await introspect(plain.http, access)).status).toBe(401);
    const none = await start({ GATEWAY_SERVICE_KEY: undefined });
    expect((await form(none.http, '/oauth2/introspect', { token: access }, {})).status).toBe(401);
  });

  it('wrong keys from one address count against GATEWAY_FAILED_AUTH_LIMIT across /v1/rpc, /oauth2/* and the WebSocket upgrade: then 429', async () => {
    const { http, server, clock } = await start({ ...ENV, GATEWAY_FAILED_AUTH_LIMIT: '6' });
    const { access } = await pair(http);
    const wrong = bearer(UNKNOWN_KEY);
    const json = { 'Content-Type': 'application/json' };
    for (let i = 0; i < 2; i++) {
      expect((await introspect(http, access, { key: UNKNOWN_KEY })).status).toBe(401);
      expect((await form(http, '/oauth2/revoke', { token: access }, wrong)).status).toBe(401);
      expect((await httpPost(`${http}/v1/rpc`, '{"type":"init","node_id":"n"}', { ...json, ...wrong }, { agent })).status).toBe(401);
    }
    // Out of room: the right key gets 429 too (else a guess that hit would show), on every route.
    const blocked = await introspect(http, access);
    expect(blocked.status).toBe(429);
    expect(blocked.headers['retry-after']).toBe('60');
    expect(blocked.body.error).toBe('temporarily_unavailable');
    expect((await revoke(http, access, SERVICE_KEY)).status).toBe(429);
    const rpcBlocked = await httpPost(`${http}/v1/rpc`, '{"type":"init","node_id":"n"}', { ...json, ...bearer(SERVICE_KEY) }, { agent });
    expect(rpcBlocked.status).toBe(429);
    expect(rpcBlocked.body).toMatchObject({ type: 'error', code: 1002 });
    await expect(service(server.url).opened).rejects.toThrow('HTTP 429');
    // The window passes (ManualClock): served again, and nothing was revoked meanwhile.
    clock.advance(60_001);
    expect((await introspect(http, access)).body).toMatchObject({ active: true });
  });
});

describe('log lines of refused requests', () => {
  it('name the path of an absolute-form target, never its user, password, host or query', async () => {
    const lines: string[] = [];
    const log = createLogger('warn', { write: (s: string) => void lines.push(s) });
    const { http } = await start({ ...ENV, GATEWAY_FAILED_AUTH_LIMIT: '1' }, { log });
    expect((await introspect(http, 'not-a-token', { key: UNKNOWN_KEY })).status).toBe(401);
    const port = new URL(http).port;
    const answer = await new Promise<number>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: 'http://admin:hunter2@gw.example/oauth2/introspect?k=qsecret',
          headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...bearer(INTROSPECTION_KEY) },
        },
        (res) => resolve(res.resume().statusCode!),
      );
      req.on('error', reject);
      req.end('token=x');
    });
    expect(answer).toBe(429);
    const tripped = lines.map((l) => JSON.parse(l) as { msg: string; path?: string }).filter((l) => l.msg.startsWith('http request refused (throttle tripped'));
    expect(tripped.map((l) => l.path)).toEqual(['/oauth2/introspect']);
    const text = lines.join('');
    for (const secret of ['hunter2', 'admin', 'gw.example', 'qsecret']) expect(text).not.toContain(secret);
  });
});

describe('what is refused before the token is looked at', () => {
  it('415 for JSON or no Content-Type; 405 for GET; 413 past GATEWAY_MAX_MESSAGE_BYTES', async () => {
    const { http } = await start({ ...ENV, GATEWAY_MAX_MESSAGE_BYTES: '1024' });
    const { access } = await pair(http);
    for (const path of ['/oauth2/introspect', '/oauth2/revoke']) {
      const asJson = await httpPost(
        `${http}${path}`,
        JSON.stringify({ token: access }),
        { ...bearer(INTROSPECTION_KEY), 'Content-Type': 'application/json' },
        { agent },
      );
      expect(asJson.status).toBe(415);
      expect(asJson.body).toEqual({ error: 'invalid_request', error_description: `Content-Type must be ${FORM}` });
      expect(asJson.headers['cache-control']).toBe('no-store');
      expect((await httpPost(`${http}${path}`, `token=${access}`, bearer(INTROSPECTION_KEY), { agent })).status).toBe(415);
      const get = await httpPost(`${http}${path}`, '', bearer(INTROSPECTION_KEY), { agent, method: 'GET' });
      expect(get.status).toBe(405);
      expect(get.headers.allow).toBe('POST');
      const big = await form(http, path, { token: access, pad: 'x'.repeat(2000) });
      expect(big.status).toBe(413);
      expect(big.body.error).toBe('invalid_request');
      expect(big.headers['cache-control']).toBe('no-store');
      // A charset parameter is fine.
      const charset = await form(
        http,
        path,
        { token: access, token_type_hint: 'access_token' },
        { ...bearer(INTROSPECTION_KEY), 'Content-Type': `${FORM}; charset=UTF-8` },
      );
      expect(charset.status).toBe(200);
    }
  });
});

describe('the store cannot answer: 503, never a guess', () => {
  it('introspection and revocation answer 503 with Retry-After while the store is down (counted), then serve again', async () => {
    const { http, store, server } = await startWithStoreDouble(ENV);
    const { access, refresh } = await pair(http);
    store.down = true;
    for (const [what, a] of [
      ['introspect access', await introspect(http, access)],
      ['introspect refresh', await introspect(http, refresh, { hint: 'refresh_token' })],
      ['revoke access', await revoke(http, access)],
      ['revoke refresh', await revoke(http, refresh)],
    ] as const) {
      expect(a.status, what).toBe(503);
      expect(a.body, what).toEqual({ error: 'temporarily_unavailable', error_description: 'Store unavailable' });
      expect(a.headers['retry-after'], what).toBe('1');
      expect(a.headers['cache-control'], what).toBe('no-store');
    }
    store.down = false;
    const counted = await server.metrics.registry.getSingleMetricAsString('gateway_messages_total');
    expect(counted).toContain('gateway_messages_total{type="oauth2_introspect",outcome="error_11"} 2');
    expect(counted).toContain('gateway_messages_total{type="oauth2_revoke",outcome="error_11"} 2');
    // The failed revocations changed nothing: both still live, and now revocable.
    expect((await introspect(http, access)).body).toMatchObject({ active: true });
    expect((await introspect(http, refresh)).body).toMatchObject({ active: true });
    expect((await revoke(http, refresh)).status).toBe(200);
    expectInactive(await introspect(http, refresh), 'revoked once the store was back');
  });

  it('one failing read is enough: the deny list unreadable during an access token check is 503, not inactive', async () => {
    const { http, store } = await startWithStoreDouble(ENV);
    const { access } = await pair(http, { sub: 'erin' });
    store.fail('get');
    expect((await introspect(http, access)).status).toBe(503);
    store.restore('get');
    expect((await introspect(http, access)).body).toMatchObject({ active: true });
  });
});

describe('GET /openapi.json describes both routes', () => {
  it('form bodies, both keys, the answers', async () => {
    const { http } = await start();
    const doc = (await fetch(`${http}/openapi.json`).then((r) => r.json())) as Record<string, any>;
    const intro = doc.paths['/oauth2/introspect'].post;
    const rev = doc.paths['/oauth2/revoke'].post;
    for (const op of [intro, rev]) {
      expect(Object.keys(op.requestBody.content)).toEqual([FORM]);
      expect(op.requestBody.content[FORM].schema.required).toEqual(['token']);
      expect(op.security).toEqual([{ serviceKey: [] }, { introspectionKey: [] }]);
    }
    for (const op of [intro, rev])
      expect(Object.keys(op.responses).sort()).toEqual(['200', '400', '401', '405', '408', '413', '415', '417', '429', '431', '500', '503']);
    expect(intro.responses['200'].content['application/json'].schema.oneOf).toHaveLength(3);
    expect(rev.responses['200'].content).toBeUndefined();
    expect(doc.paths['/v1/rpc'].post.responses['403'].description).toContain('introspection key');
  });
});
