/**
 * The attack suite: tokens and sessions attacked the way real attackers do. Every
 * forged token below is refused with `token_invalid` and never echoes a payload.
 */
import { createHmac, generateKeyPairSync, randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { createLogRef } from '../../src/crypto.js';
import { silentLogger } from '../../src/log.js';
import { createMemoryStore } from '../../src/store/memory.js';
import { TokenService } from '../../src/tokens/token-service.js';
import { OTHER_SECRET, SECRET, claims, headerOf, jwt, malleate, payloadOf, startGateway, type Body, type Harness } from './harness.js';

// RFC 7515 appendix A.1: the HS256 example, with its JWK `k`.
const A1_TOKEN =
  'eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9' +
  '.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ' +
  '.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk';
const A1_KEY = Buffer.from('AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow', 'base64url');
const A1_EXP = 1300819380;
// RFC 7515 appendix A.5: the same claims, unsecured (`alg: none`, empty signature).
const A5_TOKEN = 'eyJhbGciOiJub25lIn0.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.';

const HS256 = { alg: 'HS256', typ: 'JWT' };

function tokenServiceWithKey(key: Buffer, clock: ManualClock): TokenService {
  return new TokenService({
    store: createMemoryStore(clock),
    clock,
    log: silentLogger(),
    logRef: createLogRef('test'),
    keys: [{ secret: key }],
    accessTtl: 900,
    refreshTtl: 1_209_600,
    clockTolerance: 30,
  });
}

let h: Harness;
afterEach(async () => {
  await h?.close();
});

async function expectRefused(token: string, error?: string | RegExp): Promise<Body> {
  const r = await h.call({ type: 'verify_token', token });
  expect(r.type).toBe('token_invalid');
  expect(r).not.toHaveProperty('payload');
  expect(r.error).toMatch(error ?? /./);
  return r;
}

describe('RFC 7515 examples', () => {
  it('A.1: the signature checks out with its own key at the JWS level, but the policy refuses the token', async () => {
    // JWS level: HMAC-SHA256 over the signing input, with node:crypto and the example key.
    const [h64, p64, s64] = A1_TOKEN.split('.') as [string, string, string];
    const mac = createHmac('sha256', A1_KEY).update(`${h64}.${p64}`).digest('base64url');
    expect(mac).toBe(s64);
    expect(headerOf(A1_TOKEN)).toEqual({ typ: 'JWT', alg: 'HS256' });
    expect(payloadOf(A1_TOKEN)).toEqual({ iss: 'joe', exp: A1_EXP, 'http://example.com/is_root': true });

    // Policy level, with the very same key: no iat, no jti.
    const before = new ManualClock((A1_EXP - 3600) * 1000);
    const tokens = tokenServiceWithKey(A1_KEY, before);
    expect(await tokens.verify(A1_TOKEN)).toEqual({ valid: false, error: 'Missing required claim' });
    // And expired, once its exp has passed.
    const after = new ManualClock((A1_EXP + 1) * 1000);
    expect((await tokenServiceWithKey(A1_KEY, after).verify(A1_TOKEN)).valid).toBe(false);

    // Control: the key itself is in use; a token with every required claim verifies.
    const iat = A1_EXP - 3600;
    const good = jwt(HS256, { iss: 'joe', iat, exp: iat + 900, jti: 'j1' }, A1_KEY);
    expect(await tokens.verify(good)).toMatchObject({ valid: true, payload: { iss: 'joe' } });
    // With iat and jti added but the A.1 exp, the policy says exactly why.
    const late = jwt(HS256, { iss: 'joe', iat: A1_EXP - 900, exp: A1_EXP, jti: 'j2' }, A1_KEY);
    expect(await tokenServiceWithKey(A1_KEY, after).verify(late)).toEqual({ valid: false, error: 'Token expired' });
  });

  it('A.1 at the gateway (other key): refused', async () => {
    h = await startGateway();
    await expectRefused(A1_TOKEN);
  });

  it('A.5: the unsecured token is refused, and so is alg none in any spelling', async () => {
    h = await startGateway();
    await expectRefused(A5_TOKEN, 'Missing signature');
    for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
      const unsigned = jwt({ alg: 'HS256' }, claims(h.clock)).split('.').slice(0, 2).join('.');
      const [, p] = unsigned.split('.');
      const head = Buffer.from(JSON.stringify({ alg, typ: 'JWT' })).toString('base64url');
      await expectRefused(`${head}.${p}.`, /Missing signature/);
      // ... and with a "signature" attached, refused for its algorithm.
      await expectRefused(`${head}.${p}.${randomBytes(32).toString('base64url')}`, 'Algorithm not allowed');
    }
  });
});

describe('forged and altered tokens', () => {
  it('a token the gateway issued verifies (control)', async () => {
    h = await startGateway();
    const g = await h.call({ type: 'generate_access_token', payload: { sub: 'alice', role: 'user' } });
    const r = await h.call({ type: 'verify_token', token: g.access_token as string });
    expect(r).toMatchObject({ type: 'token_valid', payload: { sub: 'alice', role: 'user' } });
  });

  it('tampered claims, same signature: refused', async () => {
    h = await startGateway();
    const g = await h.call({ type: 'generate_access_token', payload: { sub: 'alice', role: 'user' } });
    const [head, , sig] = (g.access_token as string).split('.');
    const p = payloadOf(g.access_token as string);
    for (const change of [{ role: 'admin' }, { sub: 'root' }, { exp: (p.exp as number) + 86_400 }, { jti: 'other' }]) {
      const forged = `${head}.${Buffer.from(JSON.stringify({ ...p, ...change })).toString('base64url')}.${sig}`;
      await expectRefused(forged, 'Invalid signature');
    }
  });

  it('re-signed with another secret: refused', async () => {
    h = await startGateway();
    await expectRefused(jwt(HS256, claims(h.clock), OTHER_SECRET), 'Invalid signature');
    await expectRefused(jwt(HS256, claims(h.clock), ''), 'Invalid signature');
  });

  it('HS384 and HS512 with the right secret: refused (HS256 allow-list)', async () => {
    h = await startGateway();
    for (const alg of ['HS384', 'HS512']) await expectRefused(jwt({ alg, typ: 'JWT' }, claims(h.clock), SECRET), 'Algorithm not allowed');
  });

  it('asymmetric algorithms, and an RS256 header over an HMAC of the secret: refused', async () => {
    h = await startGateway();
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const ed = generateKeyPairSync('ed25519').privateKey;
    await expectRefused(jwt({ alg: 'RS256', typ: 'JWT' }, claims(h.clock), rsa), 'Algorithm not allowed');
    await expectRefused(jwt({ alg: 'PS256', typ: 'JWT' }, claims(h.clock), rsa), 'Algorithm not allowed');
    await expectRefused(jwt({ alg: 'ES256', typ: 'JWT' }, claims(h.clock), ec), 'Algorithm not allowed');
    await expectRefused(jwt({ alg: 'EdDSA', typ: 'JWT' }, claims(h.clock), ed), 'Algorithm not allowed');
    // Key confusion: the HMAC computed with the secret, labelled as RS256.
    const hs = jwt(HS256, claims(h.clock));
    const [, p, sig] = hs.split('.');
    await expectRefused(`${Buffer.from(JSON.stringify({ alg: 'RS256', typ: 'JWT' })).toString('base64url')}.${p}.${sig}`, 'Algorithm not allowed');
  });

  it('headers that pick a key or change semantics (crit, jku, x5u, jwk, x5c, cty, zip, b64): refused even when correctly signed', async () => {
    h = await startGateway();
    const jwk = { kty: 'oct', k: Buffer.from(SECRET).toString('base64url') };
    const cases: Record<string, unknown> = {
      crit: ['exp'],
      jku: 'https://attacker.example/jwks.json',
      x5u: 'https://attacker.example/cert.pem',
      jwk,
      x5c: ['MIIB'],
      cty: 'JWT',
      zip: 'DEF',
      b64: false,
    };
    for (const [name, value] of Object.entries(cases)) {
      await expectRefused(jwt({ ...HS256, [name]: value }, claims(h.clock)), `Header parameter "${name}" not allowed`);
    }
    await expectRefused(jwt({ alg: 'HS256', typ: 'JWS+JOSE' }, claims(h.clock)), 'Token type not allowed');
  });

  it('typ names the media type JWT however spelled (RFC 7515 section 4.1.9: case-insensitive, "application/" optional); other types refused', async () => {
    h = await startGateway();
    for (const typ of ['JWT', 'jwt', 'Jwt', 'application/jwt', 'APPLICATION/JWT']) {
      expect((await h.call({ type: 'verify_token', token: jwt({ alg: 'HS256', typ }, claims(h.clock)) })).type, typ).toBe('token_valid');
    }
    for (const typ of ['at+jwt', 'application/at+jwt', 'JWT ', 'text/jwt', 'application/', 'jwt/application', '', 7]) {
      await expectRefused(jwt({ alg: 'HS256', typ }, claims(h.clock)), 'Token type not allowed');
    }
  });

  it('signed with the key, claims the gateway would never sign: a sub that is not a user_id, an empty jti, a __proto__ member: refused', async () => {
    h = await startGateway();
    const cases: [string, string, string][] = [
      ['sub a number (revoke_user_tokens could not name it)', jwt({ alg: 'HS256', typ: 'JWT' }, claims(h.clock, { sub: 42 })), 'Invalid claim type'],
      ['sub an object', jwt({ alg: 'HS256', typ: 'JWT' }, claims(h.clock, { sub: { id: 'u' } })), 'Invalid claim type'],
      ['sub empty', jwt({ alg: 'HS256', typ: 'JWT' }, claims(h.clock, { sub: '' })), 'Invalid claim value'],
      ['sub of 257 characters', jwt({ alg: 'HS256', typ: 'JWT' }, claims(h.clock, { sub: 'u'.repeat(257) })), 'Invalid claim value'],
      ['jti empty', jwt({ alg: 'HS256', typ: 'JWT' }, claims(h.clock, { jti: '' })), 'Invalid claim value'],
    ];
    // JSON text, so that "__proto__" is an own member as JSON.parse reads it.
    const proto = (json: string) => {
      const b64 = (s: string) => Buffer.from(s).toString('base64url');
      const signing = `${b64('{"alg":"HS256","typ":"JWT"}')}.${b64(json)}`;
      return `${signing}.${createHmac('sha256', SECRET).update(signing).digest('base64url')}`;
    };
    const c = claims(h.clock);
    const base = `"sub":"u","iat":${String(c.iat)},"exp":${String(c.exp)},"jti":"${String(c.jti)}"`;
    cases.push(['__proto__ at the top', proto(`{${base},"__proto__":{"admin":true}}`), 'Invalid claim value']);
    cases.push(['__proto__ nested', proto(`{${base},"roles":[{"__proto__":{"admin":true}}]}`), 'Invalid claim value']);
    for (const [what, token, error] of cases) {
      const r = await h.call({ type: 'verify_token', token });
      expect([r.type, r.error], what).toEqual(['token_invalid', error]);
    }
    // The same claims, well formed, verify: the key and the shape are right.
    expect((await h.call({ type: 'verify_token', token: proto(`{${base},"roles":[{"name":"x"}]}`) })).type).toBe('token_valid');
    expect((await h.call({ type: 'verify_token', token: jwt({ alg: 'HS256', typ: 'JWT' }, claims(h.clock, { sub: 'u'.repeat(256) })) })).type).toBe(
      'token_valid',
    );
  });

  it('empty signature, truncated and padded segments, wrong segment counts: refused', async () => {
    h = await startGateway();
    const g = await h.call({ type: 'generate_access_token', payload: { sub: 'alice' } });
    const token = g.access_token as string;
    const [a, b, c] = token.split('.') as [string, string, string];
    const bad = [
      `${a}.${b}.`, // empty signature
      `${a}.${b}`, // two segments
      `${a}.${b}.${c}.${c}`, // four segments
      `${a}.${b}.${c.slice(0, -1)}`, // truncated signature
      `${a}.${b}.${c.slice(0, 20)}`,
      `${a}.${b.slice(0, -1)}.${c}`, // truncated payload
      `${a.slice(0, -2)}.${b}.${c}`, // truncated header
      `${a}.${b}.${c}=`, // padding
      `${a}=.${b}.${c}`,
      `${a}.${b}==.${c}`,
      `${a}.${b}.${c}AA`, // extra signature bytes
      `${a}.${b}.${c} `, // whitespace
      ` ${token}`,
      `${token}\n`,
      `${a}.${b}.${c.replace(/-/g, '+').replace(/_/g, '/')}${/[-_]/.test(c) ? '' : '+'}`, // base64, not base64url
      `..`,
      '',
      malleate(token), // same signature bytes, other text
    ];
    for (const t of bad) await expectRefused(t);
    // The untouched token still verifies: nothing above was refused by accident.
    expect((await h.call({ type: 'verify_token', token })).type).toBe('token_valid');
  });

  it('swapped kid: a token signed with one key but naming another is refused; unknown kid refused', async () => {
    const k1 = 'ytmBmEdl/k6nwATfbWnEA0cvCL48prAzv0sTv7/jdNY=';
    const k2 = 'aq8UB38mIHSrhFdXvSDdF3D0X5RNzQJY9DQ/Bnx88qI=';
    h = await startGateway({ GATEWAY_JWT_SECRET: undefined, GATEWAY_JWT_SECRETS: `k1:${k1},k2:${k2}` });
    expect((await h.call({ type: 'verify_token', token: jwt({ ...HS256, kid: 'k2' }, claims(h.clock), k2) })).type).toBe('token_valid');
    await expectRefused(jwt({ ...HS256, kid: 'k1' }, claims(h.clock), k2), 'Invalid signature');
    await expectRefused(jwt({ ...HS256, kid: 'k2' }, claims(h.clock), k1), 'Invalid signature');
    await expectRefused(jwt({ ...HS256, kid: 'k3' }, claims(h.clock), k1), 'Unknown key id');
    await expectRefused(jwt(HS256, claims(h.clock), k1), 'Missing key id');
    await expectRefused(jwt({ ...HS256, kid: 7 }, claims(h.clock), k1), /kid/);
  });
});

describe('session fixation', () => {
  it('a planted id never becomes valid, whatever happens around it', async () => {
    h = await startGateway();
    const planted = ['abc123', randomBytes(32).toString('base64url'), '', 'x'.repeat(300)];
    const probe = async (id: string) => {
      expect((await h.call({ type: 'validate_session', session_id: id })).type).toBe('session_invalid');
      expect((await h.call({ type: 'subscribe_session', session_id: id }, 'attacker')).type).toBe('session_invalid');
      expect((await h.call({ type: 'exchange_session', session_id: id })).type).toBe('session_invalid');
      expect((await h.call({ type: 'regenerate_session', old_session_id: id })).type).toBe('session_invalid');
    };
    for (const id of planted) await probe(id);
    // The victim logs in; an attempt to choose the id is ignored.
    for (const id of planted) {
      const c = await h.call({ type: 'create_session', user_id: 'victim', session_id: id });
      expect(c.type).toBe('session_created');
      expect(c.session_id).not.toBe(id);
      expect(Buffer.from(c.session_id as string, 'base64url').length).toBeGreaterThanOrEqual(32);
    }
    for (const id of planted) await probe(id);
  });

  it('a subscriber of a regenerated id is told it ended and never learns the new id', async () => {
    h = await startGateway();
    const c = await h.call({ type: 'create_session', user_id: 'victim' });
    const oldId = c.session_id as string;
    // The attacker knows the pre-login id and follows it.
    expect((await h.call({ type: 'subscribe_session', session_id: oldId }, 'attacker')).type).toBe('subscribed');
    const r = await h.call({ type: 'regenerate_session', old_session_id: oldId }, 'victim');
    const newId = r.new_session_id as string;
    expect(newId).not.toBe(oldId);
    await new Promise((res) => setImmediate(res));
    const pushes = h.pushesTo('attacker');
    expect(pushes.map((m) => m.body)).toEqual([expect.objectContaining({ type: 'session_expired', session_id: oldId, reason: 'regenerated' })]);
    const toAttacker = JSON.stringify(h.out.filter((m) => m.dest === 'attacker'));
    expect(toAttacker).not.toContain(newId);
    expect((await h.call({ type: 'validate_session', session_id: oldId }, 'attacker')).type).toBe('session_invalid');
    expect((await h.call({ type: 'validate_session', session_id: newId }, 'victim')).type).toBe('session_valid');
  });
});

describe('refresh token reuse', () => {
  it('presenting a spent refresh token revokes the whole family and its access tokens', async () => {
    h = await startGateway();
    const g = await h.call({ type: 'generate_access_token', payload: { sub: 'alice' } });
    const r1 = await h.call({ type: 'refresh_token', refresh_token: g.refresh_token as string });
    expect(r1.type).toBe('token_refreshed');
    const r2 = await h.call({ type: 'refresh_token', refresh_token: r1.refresh_token as string });
    expect(r2.type).toBe('token_refreshed');
    expect((await h.call({ type: 'verify_token', token: r2.access_token as string })).type).toBe('token_valid');

    // The attacker replays the first (stolen, spent) refresh token.
    const replay = await h.call({ type: 'refresh_token', refresh_token: g.refresh_token as string }, 'attacker');
    expect(replay).toMatchObject({ type: 'token_invalid', error: expect.stringMatching(/revoked/) });

    // The legitimate holder's current refresh token is dead too, and every access token of the family.
    expect((await h.call({ type: 'refresh_token', refresh_token: r2.refresh_token as string })).type).toBe('token_invalid');
    for (const at of [g.access_token, r1.access_token, r2.access_token]) {
      expect(await h.call({ type: 'verify_token', token: at as string })).toMatchObject({ type: 'token_invalid', error: 'Token revoked' });
    }
    // Other families are untouched.
    const other = await h.call({ type: 'generate_access_token', payload: { sub: 'bob' } });
    expect((await h.call({ type: 'verify_token', token: other.access_token as string })).type).toBe('token_valid');
    expect((await h.call({ type: 'refresh_token', refresh_token: other.refresh_token as string })).type).toBe('token_refreshed');
  });

  it('forged, truncated or guessed refresh tokens are refused without touching a family', async () => {
    h = await startGateway();
    const g = await h.call({ type: 'generate_access_token', payload: { sub: 'alice' } });
    const rt = g.refresh_token as string;
    const [fam, secret] = rt.split('.') as [string, string];
    for (const t of [`${fam}.${randomBytes(32).toString('base64url')}`, rt.slice(0, -1), `${rt}A`, `${fam}.`, secret, '', g.access_token as string]) {
      expect((await h.call({ type: 'refresh_token', refresh_token: t })).type).toBe('token_invalid');
    }
    // A guess at the family id did not revoke it.
    expect((await h.call({ type: 'refresh_token', refresh_token: rt })).type).toBe('token_refreshed');
  });
});
