/**
 * The token verification policy (RFC 8725, OWASP JWT cheat sheet): required claims,
 * clock tolerance, issuer and audience, key rotation by kid, maximum length, reserved
 * claims, and the optional EdDSA mode with its JWK Set.
 */
import { createHmac, createPublicKey, generateKeyPairSync, verify as cryptoVerify } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { ConfigError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { MAX_TOKEN_LENGTH } from '../../src/tokens/jwt-shape.js';
import { SECRET, b64url, captureLogger, claims, headerOf, jwt, payloadOf, startGateway, type Body, type Harness } from './harness.js';

const HS256 = { alg: 'HS256', typ: 'JWT' };
let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const dir = mkdtempSync(join(tmpdir(), 'gw-keys-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function pemFile(name: string, type: 'ed25519' | 'rsa' = 'ed25519'): string {
  const { privateKey } = type === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ed25519');
  const path = join(dir, name);
  writeFileSync(path, privateKey.export({ format: 'pem', type: 'pkcs8' }));
  return path;
}

async function verify(token: string): Promise<Body> {
  return h!.call({ type: 'verify_token', token });
}

async function refused(token: string, error: string | RegExp): Promise<void> {
  const r = await verify(token);
  expect(r.type).toBe('token_invalid');
  expect(r).not.toHaveProperty('payload');
  expect(r.error).toMatch(error);
}

describe('duplicate member names inside a signed token (docs/security.md, Known limits)', () => {
  /** A token signed with the gateway's secret over exactly these header and payload texts. */
  const raw = (header: string, payload: string) => {
    const head = `${b64url(header)}.${b64url(payload)}`;
    return `${head}.${createHmac('sha256', SECRET).update(head).digest('base64url')}`;
  };

  it('are not refused: the last one counts (JSON.parse), and the header allow-list judges the alg kept', async () => {
    h = await startGateway();
    const text = JSON.stringify(claims(h.clock)).slice(0, -1);
    expect(await verify(raw('{"alg":"HS256","typ":"JWT"}', `${text},"sub":"first","sub":"kept"}`))).toMatchObject({
      type: 'token_valid',
      payload: { sub: 'kept' },
    });
    expect((await verify(raw('{"alg":"none","typ":"JWT","alg":"HS256"}', `${text}}`))).type).toBe('token_valid');
    await refused(raw('{"alg":"HS256","typ":"JWT","alg":"none"}', `${text}}`), 'Algorithm not allowed');
  });
});

describe('required claims', () => {
  it('exp, iat and jti are required; each missing one is refused', async () => {
    h = await startGateway();
    expect((await verify(jwt(HS256, claims(h.clock)))).type).toBe('token_valid');
    for (const missing of ['exp', 'iat', 'jti']) {
      const c = claims(h.clock);
      delete c[missing];
      await refused(jwt(HS256, c), 'Missing required claim');
    }
  });

  it('claims of the wrong type are refused', async () => {
    h = await startGateway();
    const now = Math.floor(h.clock.now() / 1000);
    for (const bad of [{ exp: String(now + 900) }, { iat: String(now) }, { jti: 42 }, { exp: null }, { iat: [now] }]) {
      const r = await verify(jwt(HS256, claims(h.clock, bad)));
      expect(r.type).toBe('token_invalid');
    }
    // A payload that is not a JSON object.
    for (const p of ['[1,2,3]', '"text"', '42', 'null', '{"a":']) await refused(jwt(HS256, p), /Malformed|payload|Invalid/);
  });

  it('registered claims out of type or range are refused even when signed with the key: nbf as a string, exp 1e300, fractions, negatives', async () => {
    h = await startGateway();
    const now = Math.floor(h.clock.now() / 1000);
    const cases: [Record<string, unknown>, string][] = [
      [{ nbf: String(now + 3600) }, 'Invalid claim type'],
      [{ nbf: [now] }, 'Invalid claim type'],
      [{ nbf: null }, 'Invalid claim type'],
      [{ exp: 1e300 }, 'Invalid claim value'],
      [{ exp: Number.MAX_SAFE_INTEGER }, 'Invalid claim value'],
      [{ exp: now + 900.5 }, 'Invalid claim value'],
      [{ iat: now - 0.25 }, 'Invalid claim value'],
      [{ iat: -1, exp: 899 }, 'Invalid claim value'],
      [{ nbf: -5 }, 'Invalid claim value'],
      [{ nbf: 1e300 }, 'Invalid claim value'],
      [{ exp: now, iat: now }, 'Invalid claim value'],
    ];
    for (const [bad, error] of cases) await refused(jwt(HS256, claims(h.clock, bad)), error);
    // An integral nbf in the past is fine.
    expect((await verify(jwt(HS256, claims(h.clock, { nbf: now - 10 })))).type).toBe('token_valid');
    // revoke_token refuses them as well: a deny marker never gets a lifetime from such a claim.
    expect(await h.call({ type: 'revoke_token', token: jwt(HS256, claims(h.clock, { exp: 1e300 })) })).toMatchObject({
      type: 'token_invalid',
      error: 'Invalid claim value',
    });
  });

  it('a key-signed token may live up to the longer TTL plus the clock tolerance; a longer one is refused, even when signed with the key', async () => {
    h = await startGateway({ GATEWAY_ACCESS_TOKEN_TTL: '900', GATEWAY_REFRESH_TOKEN_TTL: '86400', GATEWAY_CLOCK_TOLERANCE: '30' });
    const now = Math.floor(h.clock.now() / 1000);
    // Longer than the access TTL, within the refresh TTL: the contract's "any unexpired token signed with the key".
    expect((await verify(jwt(HS256, claims(h.clock, { exp: now + 3600 })))).type).toBe('token_valid');
    expect((await verify(jwt(HS256, claims(h.clock, { iat: now - 10, exp: now - 10 + 86_430 })))).type).toBe('token_valid');
    // One second longer than a revocation by user is kept: refused.
    await refused(jwt(HS256, claims(h.clock, { iat: now - 10, exp: now - 10 + 86_431 })), 'Token lifetime exceeds what a revocation covers');
    // A forged year-long token, the attack of the weak-secret finding.
    await refused(jwt(HS256, claims(h.clock, { exp: now + 31_536_000 })), 'Token lifetime exceeds what a revocation covers');
    // The gateway's own tokens pass.
    const own = await h.call({ type: 'generate_access_token', payload: { sub: 'u' } });
    expect((await verify(own.access_token as string)).type).toBe('token_valid');
  });

  it('the longest token accepted is refused after revoke_user_tokens until its very end: the mark outlives it', async () => {
    h = await startGateway({ GATEWAY_ACCESS_TOKEN_TTL: '900', GATEWAY_REFRESH_TOKEN_TTL: '7200', GATEWAY_CLOCK_TOLERANCE: '30' });
    const now = Math.floor(h.clock.now() / 1000);
    const longest = jwt(HS256, claims(h.clock, { sub: 'long-lived', exp: now + 7230 }));
    expect((await verify(longest)).type).toBe('token_valid');
    expect(await h.call({ type: 'revoke_user_tokens', user_id: 'long-lived' })).toMatchObject({ type: 'tokens_revoked', before: now });
    await refused(longest, 'Token revoked');
    // One second before its exp (the in-memory store has dropped every other expired entry by then).
    h.clock.advance(7229_000);
    await refused(longest, 'Token revoked');
    h.clock.advance(1000);
    await refused(longest, 'Token expired');
  });

  it('expired at exp exactly; valid one second before', async () => {
    h = await startGateway();
    const now = Math.floor(h.clock.now() / 1000);
    await refused(jwt(HS256, claims(h.clock, { iat: now - 900, exp: now })), 'Token expired');
    expect((await verify(jwt(HS256, claims(h.clock, { iat: now - 899, exp: now + 1 })))).type).toBe('token_valid');
  });

  it('a payload may not set the claims the gateway owns (error 12)', async () => {
    h = await startGateway({ GATEWAY_JWT_ISSUER: 'https://auth.example', GATEWAY_JWT_AUDIENCE: 'api' });
    for (const claim of ['iat', 'exp', 'nbf', 'jti', 'sid_hash', 'iss', 'aud']) {
      const r = await h.call({ type: 'generate_access_token', payload: { sub: 'a', [claim]: 1 } });
      expect(r).toMatchObject({ type: 'error', code: 12, text: expect.stringContaining(claim) });
    }
  });

  it('a sub that revoke_user_tokens could not name is refused at issue (error 12); one it can name is revoked with its user', async () => {
    h = await startGateway();
    const text = 'Field "payload" must set "sub", when it sets it, to a string of 1 to 256 characters (a user_id)';
    for (const sub of ['u'.repeat(257), '😀'.repeat(257), '', 42, null, true, ['a'], { id: 'a' }]) {
      const r = await h.call({ type: 'generate_access_token', payload: { sub } });
      expect(r, JSON.stringify(sub)).toMatchObject({ type: 'error', code: 12, text });
    }
    // 256 characters (512 UTF-16 units of emoji among them): issued, and revoke_user_tokens reaches it.
    for (const sub of ['u'.repeat(256), '😀'.repeat(256)]) {
      const g = await h.call({ type: 'generate_access_token', payload: { sub } });
      expect(g.type).toBe('token_generated');
      expect((await h.call({ type: 'revoke_user_tokens', user_id: sub })).type).toBe('tokens_revoked');
      expect(await h.call({ type: 'verify_token', token: g.access_token })).toMatchObject({ type: 'token_invalid', error: 'Token revoked' });
      expect(await h.call({ type: 'refresh_token', refresh_token: g.refresh_token })).toMatchObject({ type: 'token_invalid', error: 'Refresh token revoked' });
    }
    // A payload without sub is still issued (no user to revoke it by).
    expect((await h.call({ type: 'generate_access_token', payload: { role: 'x' } })).type).toBe('token_generated');
  });
});

describe('clock tolerance (GATEWAY_CLOCK_TOLERANCE, default 30 s)', () => {
  it('defaults to 30 seconds', () => {
    expect(loadConfig({}).clockTolerance).toBe(30);
    expect(() => loadConfig({ GATEWAY_CLOCK_TOLERANCE: '301' })).toThrow(ConfigError);
    expect(() => loadConfig({ GATEWAY_CLOCK_TOLERANCE: '-1' })).toThrow(ConfigError);
  });

  it('iat up to 30 s ahead is accepted (skew), beyond it refused', async () => {
    h = await startGateway();
    const now = Math.floor(h.clock.now() / 1000);
    expect((await verify(jwt(HS256, claims(h.clock, { iat: now + 30, exp: now + 930 })))).type).toBe('token_valid');
    await refused(jwt(HS256, claims(h.clock, { iat: now + 31, exp: now + 931 })), 'Token issued in the future');
    await refused(jwt(HS256, claims(h.clock, { iat: now + 86_400 * 365, exp: now + 86_400 * 366 })), 'Token issued in the future');
    await refused(jwt(HS256, claims(h.clock, { nbf: now + 31 })), 'Token not yet valid');
  });

  it('with tolerance 0, one second ahead is refused', async () => {
    h = await startGateway({ GATEWAY_CLOCK_TOLERANCE: '0' });
    const now = Math.floor(h.clock.now() / 1000);
    expect((await verify(jwt(HS256, claims(h.clock, { iat: now })))).type).toBe('token_valid');
    await refused(jwt(HS256, claims(h.clock, { iat: now + 1 })), 'Token issued in the future');
  });
});

describe('issuer and audience', () => {
  it('are set on signing and checked on verify', async () => {
    h = await startGateway({ GATEWAY_JWT_ISSUER: 'https://auth.example', GATEWAY_JWT_AUDIENCE: 'api' });
    const g = await h.call({ type: 'generate_access_token', payload: { sub: 'alice' } });
    expect(payloadOf(g.access_token as string)).toMatchObject({ iss: 'https://auth.example', aud: 'api' });
    expect((await verify(g.access_token as string)).type).toBe('token_valid');
    const ok = { iss: 'https://auth.example', aud: 'api' };
    expect(await verify(jwt(HS256, claims(h.clock, ok)))).toMatchObject({ type: 'token_valid' });
    await refused(jwt(HS256, claims(h.clock, { aud: 'api' })), /claim/);
    await refused(jwt(HS256, claims(h.clock, { iss: 'https://auth.example' })), /claim/);
    await refused(jwt(HS256, claims(h.clock, { ...ok, iss: 'https://evil.example' })), 'Invalid claim value');
    await refused(jwt(HS256, claims(h.clock, { ...ok, aud: 'other-service' })), 'Invalid claim value');
  });

  it('are not required when not configured', async () => {
    h = await startGateway();
    const g = await h.call({ type: 'generate_access_token', payload: { sub: 'alice' } });
    expect(payloadOf(g.access_token as string)).not.toHaveProperty('iss');
    expect(payloadOf(g.access_token as string)).not.toHaveProperty('aud');
  });
});

describe('key rotation (GATEWAY_JWT_SECRETS=kid:secret,...)', () => {
  const s1 = 'N5JKUVS9HgrRW1UyvF1DN3VT+v8To7U89nM6h7ST4iI=';
  const s2 = 'mNc5rBTntbENFUd9PtX+CbAJeGAUgtsSzlfujzOPn1o=';

  it('the first key signs with its kid; all keys verify; unknown kid refused', async () => {
    // Before: every node has k1 only.
    h = await startGateway({ GATEWAY_JWT_SECRET: undefined, GATEWAY_JWT_SECRETS: `k1:${s1}` });
    const old = await h.call({ type: 'generate_access_token', payload: { sub: 'alice' } });
    expect(headerOf(old.access_token as string)).toEqual({ alg: 'HS256', typ: 'JWT', kid: 'k1' });
    await refused(jwt({ ...HS256, kid: 'k2' }, claims(h.clock), s2), 'Unknown key id');
    await h.close();

    // During: k2 signs, k1 still verifies.
    h = await startGateway({ GATEWAY_JWT_SECRET: undefined, GATEWAY_JWT_SECRETS: `k2:${s2},k1:${s1}` });
    const fresh = await h.call({ type: 'generate_access_token', payload: { sub: 'alice' } });
    expect(headerOf(fresh.access_token as string).kid).toBe('k2');
    expect((await verify(old.access_token as string)).type).toBe('token_valid');
    expect((await verify(fresh.access_token as string)).type).toBe('token_valid');
    await h.close();

    // After: k1 retired.
    h = await startGateway({ GATEWAY_JWT_SECRET: undefined, GATEWAY_JWT_SECRETS: `k2:${s2}` });
    await refused(old.access_token as string, 'Unknown key id');
    expect((await verify(fresh.access_token as string)).type).toBe('token_valid');
  });

  it('refuses bad lists and weak keys at start, naming the kid and never the secret', () => {
    const bad = [
      { GATEWAY_JWT_SECRETS: 'no-colon-here' },
      { GATEWAY_JWT_SECRETS: `:${s1}` },
      { GATEWAY_JWT_SECRETS: `k1:${s1},k1:${s2}` },
      { GATEWAY_JWT_SECRETS: `k1:${s1},k2:short` },
      { GATEWAY_JWT_SECRETS: `k1:${s1},k2:a-string-secret-at-least-256-bits-long` },
      { GATEWAY_JWT_SECRETS: `k1:${s1}`, GATEWAY_JWT_SECRET: s2 },
    ];
    for (const env of bad) {
      let err: unknown;
      try {
        loadConfig(env);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      const msg = (err as Error).message;
      expect(msg).not.toContain(s1);
      expect(msg).not.toContain(s2);
      expect(msg).not.toContain('a-string-secret');
      expect(msg.split('\n')).toHaveLength(1);
    }
  });
});

describe('weak secrets refuse to start', () => {
  const weak = [
    'short',
    'x'.repeat(31),
    'a'.repeat(64),
    'abababababababababababababababababab',
    'your-256-bit-secret',
    'a-string-secret-at-least-256-bits-long',
    'your-super-secret-jwt-token-with-at-least-32-characters-long',
    'AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow',
  ];
  it.each(weak)('GATEWAY_JWT_SECRET=%s', (secret) => {
    expect(() => loadConfig({ GATEWAY_JWT_SECRET: secret })).toThrow(ConfigError);
    try {
      loadConfig({ GATEWAY_JWT_SECRET: secret });
    } catch (e) {
      expect((e as Error).message).not.toContain(secret);
      expect((e as Error).message).toMatch(/^GATEWAY_JWT_SECRET /);
    }
  });

  it('a 32-byte random secret is accepted', () => {
    expect(loadConfig({ GATEWAY_JWT_SECRET: SECRET }).jwtKeys[0]!.secret.toString()).toBe(SECRET);
  });
});

describe('maximum token length', () => {
  it('a token over the limit is refused before any cryptography, even when correctly signed', async () => {
    h = await startGateway();
    await refused('a'.repeat(MAX_TOKEN_LENGTH + 1), 'Token too long');
    const big = jwt(HS256, claims(h.clock, { pad: 'p'.repeat(MAX_TOKEN_LENGTH) }));
    expect(big.length).toBeGreaterThan(MAX_TOKEN_LENGTH);
    await refused(big, 'Token too long');
  });

  it('the limit counts characters as code points (an emoji is one): 4097 emoji are judged on their form, 8193 are too long', async () => {
    h = await startGateway();
    const emoji = (n: number) => '\u{1F600}'.repeat(n);
    await refused(emoji(MAX_TOKEN_LENGTH / 2 + 1), /^Malformed token/); // 8194 UTF-16 units
    await refused(emoji(MAX_TOKEN_LENGTH), /^Malformed token/);
    await refused(emoji(MAX_TOKEN_LENGTH + 1), 'Token too long');
    expect(await h.call({ type: 'revoke_token', token: emoji(MAX_TOKEN_LENGTH / 2 + 1) })).toMatchObject({
      type: 'token_invalid',
      error: expect.stringMatching(/^Malformed token/),
    });
    expect(await h.call({ type: 'revoke_token', token: emoji(MAX_TOKEN_LENGTH + 1) })).toMatchObject({ type: 'token_invalid', error: 'Token too long' });
  });

  it('the gateway never issues a token it would refuse for its length', async () => {
    h = await startGateway();
    const r = await h.call({ type: 'generate_access_token', payload: { sub: 'a', pad: 'p'.repeat(MAX_TOKEN_LENGTH) } });
    expect(r).toMatchObject({ type: 'error', code: 12, text: expect.stringMatching(/too large/) });
    const ok = await h.call({ type: 'generate_access_token', payload: { sub: 'a', pad: 'p'.repeat(MAX_TOKEN_LENGTH / 2) } });
    expect(ok.type).toBe('token_generated');
    expect((await verify(ok.access_token as string)).type).toBe('token_valid');
  });
});

describe('EdDSA (GATEWAY_JWT_ALG=EdDSA) and the JWK Set', () => {
  it('signs with Ed25519, kid = JWK thumbprint, and a backend verifies with the published JWK alone', async () => {
    const key = pemFile('ed1.pem');
    h = await startGateway({ GATEWAY_JWT_SECRET: undefined, GATEWAY_JWT_ALG: 'EdDSA', GATEWAY_JWT_ED25519_KEY: key });
    const g = await h.call({ type: 'generate_access_token', payload: { sub: 'alice' } });
    const token = g.access_token as string;
    const header = headerOf(token);
    expect(header).toMatchObject({ alg: 'EdDSA', typ: 'JWT', kid: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/) });
    expect((await verify(token)).type).toBe('token_valid');

    const jwks = h.gateway.tokens.jwks();
    expect(jwks.keys).toHaveLength(1);
    const jwk = jwks.keys[0]!;
    expect(jwk).toEqual({ kty: 'OKP', crv: 'Ed25519', x: expect.any(String), kid: header.kid, alg: 'EdDSA', use: 'sig' });
    expect(jwk).not.toHaveProperty('d');
    // A backend: node:crypto, the JWK, nothing shared.
    const [a, b, c] = token.split('.') as [string, string, string];
    const pub = createPublicKey({ key: jwk, format: 'jwk' });
    expect(cryptoVerify(null, Buffer.from(`${a}.${b}`), pub, Buffer.from(c, 'base64url'))).toBe(true);
    // ... and the refresh path signs EdDSA too.
    const r = await h.call({ type: 'refresh_token', refresh_token: g.refresh_token as string });
    expect(headerOf(r.access_token as string).alg).toBe('EdDSA');
  });

  it('refuses HS256 (no secret configured), a foreign Ed25519 key under our kid, and key confusion', async () => {
    h = await startGateway({ GATEWAY_JWT_SECRET: undefined, GATEWAY_JWT_ALG: 'EdDSA', GATEWAY_JWT_ED25519_KEY: pemFile('ed2.pem') });
    const jwk = h.gateway.tokens.jwks().keys[0]!;
    await refused(jwt(HS256, claims(h.clock)), 'Algorithm not allowed');
    const foreign = generateKeyPairSync('ed25519').privateKey;
    await refused(jwt({ alg: 'EdDSA', typ: 'JWT', kid: jwk.kid }, claims(h.clock), foreign), 'Invalid signature');
    await refused(jwt({ alg: 'EdDSA', typ: 'JWT', kid: 'nope' }, claims(h.clock), foreign), 'Unknown key id');
    await refused(jwt({ alg: 'EdDSA', typ: 'JWT' }, claims(h.clock), foreign), 'Missing key id');
    // HMAC keyed with the public key (PEM or raw x), labelled HS256 with our kid.
    const pem = createPublicKey({ key: jwk, format: 'jwk' }).export({ format: 'pem', type: 'spki' }).toString();
    await refused(jwt({ ...HS256, kid: jwk.kid }, claims(h.clock), pem), 'Algorithm not allowed');
    await refused(jwt({ ...HS256, kid: jwk.kid }, claims(h.clock), Buffer.from(jwk.x!, 'base64url')), 'Algorithm not allowed');
  });

  it('with a secret configured as well, HS256 tokens still verify (migration) but EdDSA signs', async () => {
    h = await startGateway({ GATEWAY_JWT_ALG: 'EdDSA', GATEWAY_JWT_ED25519_KEY: pemFile('ed3.pem') });
    expect((await verify(jwt(HS256, claims(h.clock)))).type).toBe('token_valid');
    const g = await h.call({ type: 'generate_access_token', payload: { sub: 'alice' } });
    expect(headerOf(g.access_token as string).alg).toBe('EdDSA');
  });

  it('rotates: the first file signs, every file verifies and is published', async () => {
    const k1 = pemFile('rot1.pem');
    const k2 = pemFile('rot2.pem');
    h = await startGateway({ GATEWAY_JWT_SECRET: undefined, GATEWAY_JWT_ALG: 'EdDSA', GATEWAY_JWT_ED25519_KEY: k1 });
    const old = (await h.call({ type: 'generate_access_token', payload: { sub: 'alice' } })).access_token as string;
    await h.close();
    h = await startGateway({ GATEWAY_JWT_SECRET: undefined, GATEWAY_JWT_ALG: 'EdDSA', GATEWAY_JWT_ED25519_KEY: `${k2},${k1}` });
    const fresh = (await h.call({ type: 'generate_access_token', payload: { sub: 'alice' } })).access_token as string;
    const kids = h.gateway.tokens.jwks().keys.map((k) => k.kid);
    expect(kids).toEqual([headerOf(fresh).kid, headerOf(old).kid]);
    expect((await verify(old)).type).toBe('token_valid');
    expect((await verify(fresh)).type).toBe('token_valid');
  });

  it('without a key file: a per-process key, with a warning', async () => {
    const { log, lines } = captureLogger('warn');
    h = await startGateway({ GATEWAY_JWT_SECRET: undefined, GATEWAY_JWT_ALG: 'EdDSA' }, { log });
    expect(h.gateway.tokens.jwks().keys).toHaveLength(1);
    expect(lines.join('')).toMatch(/GATEWAY_JWT_ED25519_KEY is not set/);
    expect(lines.join('')).not.toMatch(/GATEWAY_JWT_SECRET is not set/);
  });

  it('with HS256 the JWK Set is empty: a shared secret is never published', async () => {
    h = await startGateway();
    expect(h.gateway.tokens.jwks()).toEqual({ keys: [] });
  });

  it('configuration errors are one clear line', async () => {
    expect(() => loadConfig({ GATEWAY_JWT_ALG: 'RS256' })).toThrow(/^GATEWAY_JWT_ALG must be HS256 or EdDSA/);
    expect(() => loadConfig({ GATEWAY_JWT_ALG: 'none' })).toThrow(ConfigError);
    expect(() => loadConfig({ GATEWAY_JWT_ED25519_KEY: '/x.pem' })).toThrow(/GATEWAY_JWT_ALG is not EdDSA/);
    const rsa = pemFile('rsa.pem', 'rsa');
    const junk = join(dir, 'junk.pem');
    writeFileSync(junk, 'not a key at all');
    for (const [file, msg] of [
      [join(dir, 'missing.pem'), /cannot read .*ENOENT/],
      [rsa, /rsa key, not Ed25519/],
      [junk, /not a PEM private key/],
    ] as const) {
      const config = loadConfig({ GATEWAY_JWT_ALG: 'EdDSA', GATEWAY_JWT_ED25519_KEY: file });
      await expect(createApp(config, { log: silentLogger() })).rejects.toThrow(msg);
      await expect(createApp(config, { log: silentLogger() })).rejects.toBeInstanceOf(ConfigError);
    }
  });
});
