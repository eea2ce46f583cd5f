/**
 * POST /oidc/backchannel-logout (OpenID Connect Back-Channel Logout 1.0) against an IdP of the
 * test's own (test/helpers/test-idp.ts): valid tokens end exactly the sessions of that IdP login
 * (by sid, else by sub) with reason `revoked`, pushed to subscribers on every node; every invalid
 * form is refused with 400 and ends nothing; replays are refused across nodes; the JWK Set is
 * fetched by URL (unknown kids refetch it at most once a minute) or read from a file; a store or
 * key set that cannot answer gives 503.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, type JWK } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { sessionKey } from '../../src/sessions/records.js';
import { RedisServer } from '../helpers/redis-server.js';
import { BACKCHANNEL_LOGOUT_EVENT, postLogoutToken, startTestIdp, type TestIdp } from '../helpers/test-idp.js';
import { browser, eventually, fetchRaw, rawHttpClient, service, start, startWithStoreDouble, stopAll, type Peer } from '../ws/helpers.js';

const idps: TestIdp[] = [];
afterEach(async () => {
  await stopAll();
  await Promise.all(idps.splice(0).map((idp) => idp.close()));
});

const dir = mkdtempSync(join(tmpdir(), 'gw-bcl-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const INVALID = JSON.stringify({ error: 'invalid_request' });

async function testIdp(clock: ManualClock): Promise<TestIdp> {
  const idp = await startTestIdp({ now: () => clock.now() });
  idps.push(idp);
  return idp;
}

/** A gateway pointed at a fresh test IdP (JWK Set by URL unless `env` says otherwise), and a service connection. */
async function setup(env: Record<string, string> = {}) {
  const clock = new ManualClock(Date.now());
  const idp = await testIdp(clock);
  const { server, http } = await start({ ...idp.gatewayEnv, ...env }, { clock });
  const svc = service(server.url);
  await svc.opened;
  return { clock, idp, server, http, svc };
}

async function createSession(svc: Peer, idp: { idp_sid?: string; idp_sub?: string } = {}, user = 'alice'): Promise<string> {
  const r = await svc.call('create_session', { user_id: user, ...idp });
  expect(r.type).toBe('session_created');
  return r.session_id as string;
}

const isValid = async (svc: Peer, id: string) => (await svc.call('validate_session', { session_id: id })).type === 'session_valid';

/** A browser-role connection subscribed to `id`. */
async function subscriber(url: string, id: string): Promise<Peer> {
  const p = browser(url);
  await p.opened;
  expect(await p.call('subscribe_session', { session_id: id })).toMatchObject({ type: 'subscribed' });
  return p;
}

const expiredPush = (p: Peer, id: string) => p.next((m) => m.body.type === 'session_expired' && m.body.session_id === id);

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

describe('POST /oidc/backchannel-logout: valid logout tokens', () => {
  it('by sid: ends exactly the sessions created with that idp_sid, reason revoked, pushed to a WebSocket subscriber; 200, empty, no-store', async () => {
    const { idp, server, http, svc } = await setup();
    const a1 = await createSession(svc, { idp_sid: 'sid-1', idp_sub: 'sub-1' });
    const a2 = await createSession(svc, { idp_sid: 'sid-1', idp_sub: 'sub-1' }, 'alice-2');
    const other = await createSession(svc, { idp_sid: 'sid-2', idp_sub: 'sub-1' });
    const plain = await createSession(svc);
    const sub = await subscriber(server.url, a1);

    const answer = await postLogoutToken(http, await idp.logoutToken({ sid: 'sid-1', sub: 'sub-1' }));
    expect(answer.status).toBe(200);
    expect(answer.text).toBe('');
    expect(answer.headers['cache-control']).toBe('no-store');
    expect((await expiredPush(sub, a1)).body).toMatchObject({ type: 'session_expired', session_id: a1, reason: 'revoked' });
    expect(await isValid(svc, a1)).toBe(false);
    expect(await isValid(svc, a2)).toBe(false);
    expect(await isValid(svc, other)).toBe(true);
    expect(await isValid(svc, plain)).toBe(true);
    expect(await server.metrics.registry.getSingleMetricAsString('gateway_backchannel_logouts_total')).toContain(
      'gateway_backchannel_logouts_total{outcome="ended"} 1',
    );
  });

  it('by sub (no sid): ends every session with that idp_sub, whatever its idp_sid', async () => {
    const { idp, http, svc } = await setup();
    const s1 = await createSession(svc, { idp_sid: 'sid-a', idp_sub: 'sub-9' });
    const s2 = await createSession(svc, { idp_sid: 'sid-b', idp_sub: 'sub-9' });
    const s3 = await createSession(svc, { idp_sub: 'sub-9' });
    const kept = await createSession(svc, { idp_sid: 'sid-c', idp_sub: 'sub-8' });
    expect((await postLogoutToken(http, await idp.logoutToken({ sub: 'sub-9' }))).status).toBe(200);
    for (const s of [s1, s2, s3]) expect(await isValid(svc, s)).toBe(false);
    expect(await isValid(svc, kept)).toBe(true);
  });

  it('accepts each of RS256, ES256 and EdDSA; a token naming a login with no session is 200 too', async () => {
    const { idp, http, svc } = await setup();
    for (const alg of ['RS256', 'ES256', 'EdDSA'] as const) {
      const s = await createSession(svc, { idp_sid: `sid-${alg}` });
      expect((await postLogoutToken(http, await idp.logoutToken({ sid: `sid-${alg}` }, { alg }))).status, alg).toBe(200);
      expect(await isValid(svc, s), alg).toBe(false);
    }
    expect((await postLogoutToken(http, await idp.logoutToken({ sid: 'never-seen' }))).status).toBe(200);
  });

  it('reads the JWK Set from a file: no request to the IdP', async () => {
    const clock = new ManualClock(Date.now());
    const idp = await testIdp(clock);
    const path = join(dir, 'jwks.json');
    idp.writeJwksFile(path);
    const { server, http } = await start({ ...idp.gatewayEnv, GATEWAY_OIDC_JWKS: path }, { clock });
    const svc = service(server.url);
    await svc.opened;
    const s = await createSession(svc, { idp_sid: 'sid-file' });
    expect((await postLogoutToken(http, await idp.logoutToken({ sid: 'sid-file' }, { alg: 'ES256' }))).status).toBe(200);
    expect(await isValid(svc, s)).toBe(false);
    expect(idp.jwksRequests).toBe(0);
  });
});

describe('POST /oidc/backchannel-logout: invalid logout tokens are refused with 400, and nothing ends', () => {
  it('each invalid form', async () => {
    const { clock, idp, http, svc, server } = await setup();
    const s = await createSession(svc, { idp_sid: 'sid-x', idp_sub: 'sub-x' });
    const now = () => Math.floor(clock.now() / 1000);
    const claims = () => ({
      iss: idp.issuer,
      aud: idp.audience,
      iat: now(),
      jti: `j-${Math.random()}`,
      sid: 'sid-x',
      events: { [BACKCHANNEL_LOGOUT_EVENT]: {} },
    });
    const valid = await idp.logoutToken({ sid: 'sid-x' });
    const [head] = valid.split('.');
    const cases: [string, string | Promise<string>][] = [
      ['wrong issuer', idp.logoutToken({ sid: 'sid-x', iss: 'https://other-idp.example' })],
      ['wrong audience', idp.logoutToken({ sid: 'sid-x', aud: 'another-client' })],
      ['alg none', `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims())}.`],
      ['alg HS256', new SignJWT(claims()).setProtectedHeader({ alg: 'HS256', kid: idp.jwks.keys[0]!.kid }).sign(Buffer.alloc(32, 7))],
      ['alg RS512 (not allowed)', `${b64({ alg: 'RS512', kid: idp.jwks.keys[0]!.kid })}.${b64(claims())}.c2ln`],
      ['a nonce', idp.logoutToken({ sid: 'sid-x', nonce: 'n-1' })],
      ['no events', idp.logoutToken({ sid: 'sid-x', events: undefined })],
      ['events without the back-channel logout member', idp.logoutToken({ sid: 'sid-x', events: { 'http://schemas.openid.net/event/other': {} } })],
      ['events member not an object', idp.logoutToken({ sid: 'sid-x', events: { [BACKCHANNEL_LOGOUT_EVENT]: 'yes' } })],
      ['neither sid nor sub', idp.logoutToken({})],
      ['sid not a string', idp.logoutToken({ sid: 42 as unknown as string })],
      ['expired', idp.logoutToken({ sid: 'sid-x', exp: now() - 120 })],
      ['iat in the future', idp.logoutToken({ sid: 'sid-x', iat: now() + 120 })],
      ['no iat', idp.logoutToken({ sid: 'sid-x', iat: undefined })],
      ['no jti', idp.logoutToken({ sid: 'sid-x', jti: undefined })],
      ['empty jti', idp.logoutToken({ sid: 'sid-x', jti: '' })],
      ['a signature of other claims', `${head}.${b64({ ...claims(), sid: 'sid-x', sub: 'sub-x' })}.${valid.split('.')[2]}`],
      ['not a JWT', 'not-a-jwt'],
      ['garbage in three parts', 'a.b.c'],
      ['unsigned payload that is not JSON', `${head}.${Buffer.from('{').toString('base64url')}.x`],
      ['empty logout_token', ''],
    ];
    for (const [name, token] of cases) {
      const answer = await postLogoutToken(http, await token);
      expect(answer.status, name).toBe(400);
      expect(answer.text, name).toBe(INVALID);
      expect(await isValid(svc, s), name).toBe(true);
    }
    // No parameter at all, the parameter twice, and the valid token in the URL (alone, and beside the body's).
    const form = 'application/x-www-form-urlencoded';
    const query = `?${new URLSearchParams({ logout_token: valid }).toString()}`;
    const raw: [string, { body: string; contentType: string; query?: string }][] = [
      ['no logout_token', { body: 'token=x', contentType: form }],
      ['logout_token twice', { body: `logout_token=${valid}&logout_token=${valid}`, contentType: form }],
      ['logout_token in the query only', { body: '', contentType: form, query }],
      ['logout_token in the query and the body', { body: new URLSearchParams({ logout_token: valid }).toString(), contentType: form, query }],
    ];
    for (const [name, request] of raw) {
      const answer = await postLogoutToken(http, '', request);
      expect([answer.status, answer.text], name).toEqual([400, INVALID]);
    }
    expect(await isValid(svc, s)).toBe(true);
    const metric = await server.metrics.registry.getSingleMetricAsString('gateway_backchannel_logouts_total');
    expect(metric).toContain(`gateway_backchannel_logouts_total{outcome="refused"} ${cases.length + raw.length}`);
    // The same valid token still works: none of the above used up its jti.
    expect((await postLogoutToken(http, valid)).status).toBe(200);
    expect(await isValid(svc, s)).toBe(false);
  });

  it('a replayed jti is refused, the same token or another one carrying it', async () => {
    const { idp, http, svc } = await setup();
    const token = await idp.logoutToken({ sid: 'sid-r', jti: 'jti-once' });
    expect((await postLogoutToken(http, token)).status).toBe(200);
    const later = await createSession(svc, { idp_sid: 'sid-r' });
    const again = await postLogoutToken(http, token);
    expect(again.status).toBe(400);
    expect(again.text).toBe(INVALID);
    expect((await postLogoutToken(http, await idp.logoutToken({ sid: 'sid-r', jti: 'jti-once' }, { alg: 'EdDSA' }))).status).toBe(400);
    expect(await isValid(svc, later)).toBe(true);
  });

  it('refused tokens count against the address: past GATEWAY_FAILED_AUTH_LIMIT even a valid token gets 429 and ends nothing, until the window clears', async () => {
    const { clock, idp, http, svc } = await setup({ GATEWAY_FAILED_AUTH_LIMIT: '3' });
    const id = await createSession(svc, { idp_sid: 'sid-t' });
    // The IdP's kid, a signature that is not its own (a key the set lacks is not counted: below).
    const [head, body, sig] = (await idp.logoutToken({ sid: 'sid-t' })).split('.');
    const forged = `${head}.${body}.${Buffer.from(sig!, 'base64url').reverse().toString('base64url')}`;
    const refused = [
      await postLogoutToken(http, forged),
      await postLogoutToken(http, '', { body: 'logout_token=a&logout_token=b', contentType: 'application/x-www-form-urlencoded' }),
      await postLogoutToken(http, await idp.logoutToken({ sid: 'sid-t', exp: Math.floor(clock.now() / 1000) - 3600 })),
    ];
    expect(refused.map((r) => r.status)).toEqual([400, 400, 400]);
    const blocked = await postLogoutToken(http, await idp.logoutToken({ sid: 'sid-t' }));
    expect(blocked.status).toBe(429);
    expect(blocked.headers['retry-after']).toBe('60');
    expect(await isValid(svc, id)).toBe(true);
    clock.advance(61_000);
    expect((await postLogoutToken(http, await idp.logoutToken({ sid: 'sid-t' }))).status).toBe(200);
    expect(await isValid(svc, id)).toBe(false);
  });

  it('forged tokens sent all at once cannot slip past GATEWAY_FAILED_AUTH_LIMIT: those in flight count, so at most the limit are verified', async () => {
    const { idp, http } = await setup({ GATEWAY_FAILED_AUTH_LIMIT: '3' });
    // The IdP's own kid and header, a signature that is not its own: each costs a signature check.
    const signed = await Promise.all(Array.from({ length: 40 }, (_, i) => idp.logoutToken({ sid: `sid-${i}` })));
    const tokens = signed.map((t) => {
      const [head, body, sig] = t.split('.');
      return `${head}.${body}.${Buffer.from(sig!, 'base64url').reverse().toString('base64url')}`;
    });
    const answers = await Promise.all(tokens.map((t) => postLogoutToken(http, t)));
    const statuses = answers.map((a) => a.status).sort();
    expect(statuses.filter((s) => s === 400)).toHaveLength(3);
    expect(statuses.filter((s) => s === 429)).toHaveLength(37);
  });

  it('time moves on the injected clock: a token past exp, or older than the age limit, is refused; a jti stays remembered meanwhile', async () => {
    const { clock, idp, http, svc, server } = await setup();
    const s = await createSession(svc, { idp_sid: 'sid-t' });
    const shortLived = await idp.logoutToken({ sid: 'sid-t', exp: idp.seconds() + 60 });
    const noExp = await idp.logoutToken({ sid: 'sid-t' });
    const used = await idp.logoutToken({ sid: 'sid-none' });
    expect((await postLogoutToken(http, used)).status).toBe(200);
    // exp + the 30 s tolerance passed; the used token is still young enough, and refused as a replay.
    clock.advance(95_000);
    expect((await postLogoutToken(http, shortLived)).status).toBe(400);
    expect((await postLogoutToken(http, used)).status).toBe(400);
    // iat older than 600 s + the tolerance.
    clock.advance(540_000);
    expect((await postLogoutToken(http, noExp)).status).toBe(400);
    expect(await isValid(svc, s)).toBe(true);
    const metric = await server.metrics.registry.getSingleMetricAsString('gateway_backchannel_logouts_total');
    expect(metric).toContain('gateway_backchannel_logouts_total{outcome="replayed"} 1');
    expect(metric).toContain('gateway_backchannel_logouts_total{outcome="refused"} 2');
  });

  it('a kid the JWK Set lacks: 400, and the IdP is asked for its set at most once more within the minute', async () => {
    const { idp, http, svc } = await setup();
    const s = await createSession(svc, { idp_sid: 'sid-k' });
    expect((await postLogoutToken(http, await idp.logoutToken({ sid: 'sid-none' }))).status).toBe(200);
    expect(idp.jwksRequests).toBe(1);
    for (const alg of ['RS256', 'ES256', 'EdDSA', 'RS256', 'ES256'] as const) {
      const answer = await postLogoutToken(http, await idp.logoutToken({ sid: 'sid-k' }, { alg, unpublished: true }));
      expect(answer.status, alg).toBe(400);
    }
    expect(idp.jwksRequests).toBeGreaterThanOrEqual(1);
    expect(idp.jwksRequests).toBeLessThanOrEqual(2);
    expect(await isValid(svc, s)).toBe(true);
  });

  it('key rotation: a token signed with a new key is refused within the minute after a fetch, then accepted once the set is fetched again', async () => {
    const { idp, http, svc } = await setup();
    const s = await createSession(svc, { idp_sid: 'sid-r' });
    expect((await postLogoutToken(http, await idp.logoutToken({ sid: 'sid-none' }))).status).toBe(200);
    expect(idp.jwksRequests).toBe(1);
    idp.publishNewKeys();
    // Within the cooldown after the fetch the new kid is unknown: refused, the set not asked for.
    expect((await postLogoutToken(http, await idp.logoutToken({ sid: 'sid-r' }, { unpublished: true }))).status).toBe(400);
    expect(await isValid(svc, s)).toBe(true);
    expect(idp.jwksRequests).toBe(1);
    // jose keeps its cooldown on the wall clock: only Date is moved, a minute on.
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 61_000 });
    try {
      const answer = await postLogoutToken(http, await idp.logoutToken({ sid: 'sid-r' }, { unpublished: true }));
      expect(answer.status).toBe(200);
      expect(idp.jwksRequests).toBe(2);
    } finally {
      vi.useRealTimers();
    }
    expect(await isValid(svc, s)).toBe(false);
  });

  it('a first token with an unknown kid fetches the set once, not per token', async () => {
    const { idp, http } = await setup();
    for (let i = 0; i < 4; i++) expect((await postLogoutToken(http, await idp.logoutToken({ sid: 's' }, { unpublished: true }))).status).toBe(400);
    expect(idp.jwksRequests).toBe(1);
  });
});

describe('POST /oidc/backchannel-logout: the HTTP envelope', () => {
  it('415 for a body that is not form-encoded (JSON, none), 405 for GET; nothing ends', async () => {
    const { idp, http, svc } = await setup();
    const s = await createSession(svc, { idp_sid: 'sid-h' });
    const token = await idp.logoutToken({ sid: 'sid-h' });
    const json = await postLogoutToken(http, '', { body: JSON.stringify({ logout_token: token }), contentType: 'application/json' });
    expect(json.status).toBe(415);
    expect(JSON.parse(json.text)).toEqual({ error: 'invalid_request', error_description: 'Content-Type must be application/x-www-form-urlencoded' });
    expect((await postLogoutToken(http, '', { body: `logout_token=${token}` })).status).toBe(415);
    const get = await fetchRaw(`${http}/oidc/backchannel-logout`);
    expect(get.status).toBe(405);
    expect(get.headers.allow).toBe('POST');
    expect(await isValid(svc, s)).toBe(true);
    // A charset parameter is fine.
    const ok = await postLogoutToken(http, '', { body: `logout_token=${token}`, contentType: 'application/x-www-form-urlencoded; charset=UTF-8' });
    expect(ok.status).toBe(200);
    expect(await isValid(svc, s)).toBe(false);
  });

  it('400 exactly {"error":"invalid_request"} for a form that is not UTF-8; nothing ends', async () => {
    const { http, svc } = await setup();
    const s = await createSession(svc, { idp_sid: 'sid-u' });
    const notUtf8 = Buffer.concat([Buffer.from('logout_token='), Buffer.from([0xff])]);
    const a = await postLogoutToken(http, '', { body: notUtf8, contentType: 'application/x-www-form-urlencoded' });
    expect(a.status).toBe(400);
    expect(a.text).toBe(INVALID);
    expect(await isValid(svc, s)).toBe(true);
  });

  it('413 past GATEWAY_MAX_MESSAGE_BYTES, 408 for a body that does not arrive in time', async () => {
    const clock = new ManualClock(Date.now());
    const idp = await testIdp(clock);
    const { http } = await start({ ...idp.gatewayEnv, GATEWAY_MAX_MESSAGE_BYTES: '1024' }, { clock, httpBodyTimeoutMs: 300 });
    const big = await postLogoutToken(http, '', { body: `logout_token=${'a'.repeat(2000)}`, contentType: 'application/x-www-form-urlencoded' });
    expect(big.status).toBe(413);
    expect(JSON.parse(big.text)).toMatchObject({ error: 'invalid_request' });
    const slow = await new Promise<number>((resolve, reject) => {
      const req = request(
        `${http}/oidc/backchannel-logout`,
        { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': '100' } },
        (r) => {
          r.resume();
          resolve(r.statusCode!);
        },
      );
      req.on('error', reject);
      req.write('logout_token=ey');
    });
    expect(slow).toBe(408);
  });

  it('/openapi.json describes the route: form body, no service key, its statuses', async () => {
    const { http } = await start();
    const doc = (await fetch(`${http}/openapi.json`).then((r) => r.json())) as {
      paths: Record<string, { post: { security: unknown[]; requestBody: { content: Record<string, unknown> }; responses: Record<string, unknown> } }>;
    };
    const post = doc.paths['/oidc/backchannel-logout']!.post;
    expect(post.security).toEqual([]);
    expect(Object.keys(post.requestBody.content)).toEqual(['application/x-www-form-urlencoded']);
    expect(Object.keys(post.responses).sort()).toEqual(['200', '400', '404', '405', '408', '413', '415', '417', '429', '431', '503']);
  });

  it('404 when the GATEWAY_OIDC_* settings are absent, whatever the method', async () => {
    const { http } = await start();
    const answer = await postLogoutToken(http, 'x.y.z');
    expect(answer.status).toBe(404);
    expect((await fetchRaw(`${http}/oidc/backchannel-logout`)).status).toBe(404);
  });
});

describe('POST /oidc/backchannel-logout: fail closed', () => {
  it.each([
    ['claim', 'the store cannot claim the jti: 503, nothing ends'],
    ['indexMembers', 'the store fails after the claim: 503, and the jti is released'],
  ] as const)('%s fails: %s; back, the IdP delivers the same token again: 200', async (op, _what) => {
    const idp = await testIdp(new ManualClock(Date.now()));
    const { server, http, store } = await startWithStoreDouble(idp.gatewayEnv);
    const svc = service(server.url);
    await svc.opened;
    const s = await createSession(svc, { idp_sid: 'sid-f' });
    const token = await idp.logoutToken({ sid: 'sid-f' });
    store.fail(op);
    const down = await postLogoutToken(http, token);
    expect(down.status).toBe(503);
    expect(JSON.parse(down.text)).toEqual({ error: 'temporarily_unavailable', error_description: 'The store is unavailable' });
    expect(down.headers['retry-after']).toBe('1');
    store.restore();
    expect(await isValid(svc, s)).toBe(true);
    expect((await postLogoutToken(http, token)).status).toBe(200);
    expect(await isValid(svc, s)).toBe(false);
  });

  it('the store fails after the claim and refuses its release too: the release is tried again each second, so the IdP can deliver the token again', async () => {
    const idp = await testIdp(new ManualClock(Date.now()));
    const { server, http, store, clock } = await startWithStoreDouble(idp.gatewayEnv);
    const svc = service(server.url);
    await svc.opened;
    const s = await createSession(svc, { idp_sid: 'sid-r' });
    const token = await idp.logoutToken({ sid: 'sid-r' });
    store.fail('indexMembers');
    store.fail('delete');
    expect((await postLogoutToken(http, token)).status).toBe(503);
    store.restore();
    // Not yet released: the same token is a replay until the next try.
    expect((await postLogoutToken(http, token)).status).toBe(400);
    clock.advance(1_000);
    await vi.waitFor(async () => expect((await postLogoutToken(http, token)).status).toBe(200));
    expect(await isValid(svc, s)).toBe(false);
  });

  it('a drain waits for a logout in flight: it is answered 200 and its session ends before the store closes', async () => {
    const idp = await testIdp(new ManualClock(Date.now()));
    const { server, http, store } = await startWithStoreDouble(idp.gatewayEnv);
    const svc = service(server.url);
    await svc.opened;
    const s = await createSession(svc, { idp_sid: 'sid-d' });
    const key = sessionKey(server.gateway.sessions.hashOf(s));
    expect(await store.get(key)).toBeDefined();
    const held = store.hold('claim');
    const answer = postLogoutToken(http, await idp.logoutToken({ sid: 'sid-d' }));
    await held.reached;
    let drained = false;
    const draining = server.drain().then(() => (drained = true));
    // The drain cannot finish while the logout is held; released, it is served in full.
    await new Promise((r) => setTimeout(r, 100));
    expect(drained).toBe(false);
    held.release();
    expect((await answer).status).toBe(200);
    await draining;
    expect(drained).toBe(true);
    // The memory store under the double still reads after its close.
    expect(await store.get(key)).toBeUndefined();
  });

  it('a logout whose body is still arriving when a drain begins is read and answered 200 before its connection closes', async () => {
    const clock = new ManualClock(Date.now());
    const idp = await testIdp(clock);
    const { server } = await start(idp.gatewayEnv, { clock });
    const form = `logout_token=${await idp.logoutToken({ sid: 'sid-slow-body' })}`;
    const c = await rawHttpClient(server.port);
    await eventually(() => expect(server.pendingHeads.size).toBe(1));
    c.socket.write(
      `POST /oidc/backchannel-logout HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n` +
        `Content-Length: ${form.length}\r\n\r\n${form.slice(0, 20)}`,
    );
    // Its head is whole (and accepted) once the connection leaves the count of those still sending one.
    await eventually(() => expect(server.pendingHeads.size).toBe(0));
    const drained = server.drain();
    c.socket.write(form.slice(20));
    expect(await c.closed).toMatch(/^HTTP\/1\.1 200 /);
    await drained;
  });

  it('a token waiting its turn when a drain begins is answered 503 (the IdP delivers it again), the one in flight 200', async () => {
    const idp = await testIdp(new ManualClock(Date.now()));
    const { server, http, store } = await startWithStoreDouble({ ...idp.gatewayEnv, GATEWAY_FAILED_AUTH_LIMIT: '1' });
    const svc = service(server.url);
    await svc.opened;
    const first = await createSession(svc, { idp_sid: 'sid-w1' });
    const second = await createSession(svc, { idp_sid: 'sid-w2' });
    const held = store.hold('claim');
    const served = postLogoutToken(http, await idp.logoutToken({ sid: 'sid-w1' }));
    await held.reached;
    // The limit is 1: this one waits for the first to be answered.
    const waiting = postLogoutToken(http, await idp.logoutToken({ sid: 'sid-w2' }));
    // No WebSocket left, so the drain reaches the HTTP routes at once (their drain waits for the first).
    await svc.terminate();
    await vi.waitFor(() => expect(server.links.size).toBe(0));
    const draining = server.drain();
    await new Promise((r) => setTimeout(r, 100));
    held.release();
    expect((await served).status).toBe(200);
    const late = await waiting;
    expect(late.status).toBe(503);
    expect(late.headers['retry-after']).toBe('1');
    await draining;
    expect(await store.get(sessionKey(server.gateway.sessions.hashOf(first)))).toBeUndefined();
    expect(await store.get(sessionKey(server.gateway.sessions.hashOf(second)))).toBeDefined();
  });

  it('a burst of valid tokens past GATEWAY_FAILED_AUTH_LIMIT is served in turn, not refused: only refusals count', async () => {
    const { idp, http, svc } = await setup({ GATEWAY_FAILED_AUTH_LIMIT: '3' });
    const ids = await Promise.all(Array.from({ length: 12 }, (_, i) => createSession(svc, { idp_sid: `sid-burst-${i}` })));
    const answers = await Promise.all(ids.map(async (_, i) => postLogoutToken(http, await idp.logoutToken({ sid: `sid-burst-${i}` }))));
    expect(answers.map((a) => a.status)).toEqual(ids.map(() => 200));
    for (const id of ids) expect(await isValid(svc, id)).toBe(false);
  });

  it('tokens naming a key the set lacks (an IdP that just rotated) do not lock the address out of valid logouts', async () => {
    const { idp, http, svc } = await setup({ GATEWAY_FAILED_AUTH_LIMIT: '3' });
    const id = await createSession(svc, { idp_sid: 'sid-rot' });
    for (let i = 0; i < 6; i++) expect((await postLogoutToken(http, await idp.logoutToken({ sid: 'sid-x' }, { unpublished: true }))).status).toBe(400);
    expect((await postLogoutToken(http, await idp.logoutToken({ sid: 'sid-rot' }))).status).toBe(200);
    expect(await isValid(svc, id)).toBe(false);
  });

  it('a token naming a key of the set that jose will not use (RSA under 2048 bits) is refused with 400 and counted, never answered as an outage (503)', async () => {
    const clock = new ManualClock(Date.now());
    const idp = await testIdp(clock);
    const weak = { ...(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' }) as JWK), kid: 'legacy' };
    const file = join(dir, 'jwks-weak.json');
    writeFileSync(file, JSON.stringify({ keys: [...idp.jwks.keys, weak] }));
    const { server, http } = await start({ ...idp.gatewayEnv, GATEWAY_OIDC_JWKS: file, GATEWAY_FAILED_AUTH_LIMIT: '3' }, { clock });
    const svc = service(server.url);
    await svc.opened;
    const id = await createSession(svc, { idp_sid: 'sid-w' });
    const body = b64({ iss: idp.issuer, aud: idp.audience, iat: idp.seconds(), jti: 'j-w', sid: 'sid-w', events: { [BACKCHANNEL_LOGOUT_EVENT]: {} } });
    const forged = `${b64({ alg: 'RS256', kid: 'legacy' })}.${body}.AAAA`;
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push(await postLogoutToken(http, forged));
    expect(answers.map((a) => [a.status, a.text])).toEqual(answers.map(() => [400, INVALID]));
    // Counted: the limit is reached, and even a valid token waits for the window.
    expect((await postLogoutToken(http, await idp.logoutToken({ sid: 'sid-w' }))).status).toBe(429);
    expect(await isValid(svc, id)).toBe(true);
  });

  it("while the IdP's key set fails, tokens do not each make a request to it: 1 s doubling to a minute between tries", async () => {
    const { clock, idp, http } = await setup();
    idp.jwksFailing = true;
    const answers = [];
    for (let i = 0; i < 10; i++) answers.push((await postLogoutToken(http, await idp.logoutToken({ sid: `sid-f${i}` }))).status);
    expect(answers).toEqual(answers.map(() => 503));
    expect(idp.jwksRequests).toBe(1);
    clock.advance(1_000);
    expect((await postLogoutToken(http, await idp.logoutToken({ sid: 'sid-f' }))).status).toBe(503);
    expect(idp.jwksRequests).toBe(2);
    // The next wait is 2 s: 1 s later, still no request.
    clock.advance(1_000);
    expect((await postLogoutToken(http, await idp.logoutToken({ sid: 'sid-f' }))).status).toBe(503);
    expect(idp.jwksRequests).toBe(2);
    idp.jwksFailing = false;
    clock.advance(1_000);
    expect((await postLogoutToken(http, await idp.logoutToken({ sid: 'sid-f' }))).status).toBe(200);
    expect(idp.jwksRequests).toBe(3);
  });

  it('a forged token naming an unknown kid, whose refetch fails, does not block valid logouts: the keys already fetched still serve', async () => {
    const { idp, http, svc } = await setup();
    const [s1, s2] = [await createSession(svc, { idp_sid: 'sid-v1' }), await createSession(svc, { idp_sid: 'sid-v2' })];
    expect((await postLogoutToken(http, await idp.logoutToken({ sid: 'sid-v1' }))).status).toBe(200);
    expect(await isValid(svc, s1)).toBe(false);
    expect(idp.jwksRequests).toBe(1);
    idp.jwksFailing = true;
    // jose keeps its refetch cooldown on the wall clock: only Date is moved, past it.
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 61_000 });
    try {
      const forged = await idp.logoutToken({ sid: 'sid-v2' }, { unpublished: true });
      expect((await postLogoutToken(http, forged)).status).toBe(503);
      expect(idp.jwksRequests).toBe(2);
      // The refetch waits now; a valid token is judged by the set fetched before.
      const answer = await postLogoutToken(http, await idp.logoutToken({ sid: 'sid-v2' }));
      expect(answer.status).toBe(200);
      expect(idp.jwksRequests).toBe(2);
    } finally {
      vi.useRealTimers();
    }
    expect(await isValid(svc, s2)).toBe(false);
  });

  it("the IdP's key set cannot be fetched: 503, nothing ends", async () => {
    const clock = new ManualClock(Date.now());
    const idp = await testIdp(clock);
    await idp.close();
    const { server, http } = await start(idp.gatewayEnv, { clock });
    const svc = service(server.url);
    await svc.opened;
    const s = await createSession(svc, { idp_sid: 'sid-u' });
    const answer = await postLogoutToken(http, await idp.logoutToken({ sid: 'sid-u' }));
    expect(answer.status).toBe(503);
    expect(answer.headers['retry-after']).toBeDefined();
    expect(await isValid(svc, s)).toBe(true);
  });
});

describe('POST /oidc/backchannel-logout: two gateway nodes on one Redis', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await RedisServer.start();
  });
  afterAll(async () => redis?.stop());

  it('a logout posted to node A pushes the subscriber on node B; the jti replayed to node B is refused', async () => {
    const clock = new ManualClock(Date.now());
    const idp = await testIdp(clock);
    const env = { ...idp.gatewayEnv, GATEWAY_STORE: redis.url };
    const a = await start({ ...env, GATEWAY_NODE_ID: 'node-a' });
    const b = await start({ ...env, GATEWAY_NODE_ID: 'node-b' });
    const svcA = service(a.server.url);
    await svcA.opened;
    const s = await createSession(svcA, { idp_sid: 'sid-m', idp_sub: 'sub-m' });
    const kept = await createSession(svcA, { idp_sid: 'sid-n', idp_sub: 'sub-m' });
    const onB = await subscriber(b.server.url, s);
    const token = await idp.logoutToken({ sid: 'sid-m' });
    expect((await postLogoutToken(a.http, token)).status).toBe(200);
    expect((await expiredPush(onB, s)).body).toMatchObject({ type: 'session_expired', session_id: s, reason: 'revoked' });
    const svcB = service(b.server.url);
    await svcB.opened;
    expect(await isValid(svcB, s)).toBe(false);
    expect(await isValid(svcB, kept)).toBe(true);
    const replay = await postLogoutToken(b.http, token);
    expect(replay.status).toBe(400);
    expect(replay.text).toBe(INVALID);
    // One fetch of the key set per node.
    expect(idp.jwksRequests).toBe(2);
  });
});
