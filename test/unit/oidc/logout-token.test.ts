/**
 * The logout token verifier alone (no HTTP, no store): each refusal is refused for its own
 * reason, not for whatever check happened to run first; time comes from the injected clock.
 */
import { generateKeyPairSync } from 'node:crypto';
import { createLocalJWKSet, exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock.js';
import { createLogoutTokenVerifier, type LogoutRefusal } from '../../../src/oidc/logout-token.js';
import { BACKCHANNEL_LOGOUT_EVENT, startTestIdp, type LogoutClaims } from '../../helpers/test-idp.js';

const clock = new ManualClock(1_900_000_000_000);
const idp = await startTestIdp({ now: () => clock.now() });
afterAll(() => idp.close());
const verify = createLogoutTokenVerifier({ issuer: idp.issuer, audience: idp.audience, keys: createLocalJWKSet(idp.jwks), clock, clockTolerance: 30 });
/** Two RS256 key pairs of an IdP that rotates. */
const pairs = await Promise.all([0, 1].map(() => generateKeyPair('RS256')));
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

describe('logout token verifier', () => {
  it('accepts a valid token of each algorithm and returns its jti, sid, sub and iat', async () => {
    for (const alg of ['RS256', 'ES256', 'EdDSA'] as const) {
      const check = await verify(await idp.logoutToken({ sid: 's1', sub: 'u1', jti: `j-${alg}` }, { alg }));
      expect(check, alg).toEqual({ ok: true, token: { jti: `j-${alg}`, sid: 's1', sub: 'u1', iat: 1_900_000_000 } });
    }
    // aud as a list holding ours; sub alone.
    expect(await verify(await idp.logoutToken({ sub: 'u1', aud: ['other', idp.audience] }))).toMatchObject({ ok: true, token: { sub: 'u1' } });
  });

  it('refuses each invalid form for its own reason', async () => {
    const now = idp.seconds();
    const claims = { iss: idp.issuer, aud: idp.audience, iat: now, jti: 'j', sid: 's1', events: { [BACKCHANNEL_LOGOUT_EVENT]: {} } };
    const kid = idp.jwks.keys[0]!.kid;
    const token = (c: LogoutClaims) => idp.logoutToken({ sid: 's1', ...c });
    const cases: [string, string | Promise<string>, LogoutRefusal][] = [
      ['wrong issuer', token({ iss: 'https://elsewhere.example' }), 'issuer'],
      ['wrong audience', token({ aud: 'someone-else' }), 'audience'],
      ['alg none', `${b64({ alg: 'none' })}.${b64(claims)}.`, 'algorithm'],
      ['alg HS256', new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid }).sign(Buffer.alloc(32, 1)), 'algorithm'],
      ['unknown kid', idp.logoutToken({ sid: 's1' }, { unpublished: true }), 'unknown_key'],
      [
        'other claims under a valid signature',
        (async () => {
          const [h, , sig] = (await token({})).split('.');
          return `${h}.${b64({ ...claims, sub: 'admin' })}.${sig}`;
        })(),
        'signature',
      ],
      ['expired', token({ exp: now - 31 }), 'expired'],
      ['iat in the future', token({ iat: now + 31 }), 'iat'],
      ['iat older than the age limit', token({ iat: now - 600 - 31 }), 'too_old'],
      ['no iat', token({ iat: undefined }), 'iat'],
      ['no jti', token({ jti: undefined }), 'jti'],
      ['a nonce', token({ nonce: 'n' }), 'nonce'],
      ['no events', token({ events: undefined }), 'events'],
      ['events as a list', token({ events: [BACKCHANNEL_LOGOUT_EVENT] }), 'events'],
      ['another event', token({ events: { 'http://schemas.openid.net/event/other': {} } }), 'events'],
      ['neither sid nor sub', idp.logoutToken({}), 'no_subject'],
      ['empty sid', token({ sid: '' }), 'no_subject'],
      ['not a JWT', 'hello', 'malformed'],
      ['header not JSON', `${Buffer.from('{').toString('base64url')}.${b64(claims)}.x`, 'malformed'],
    ];
    for (const [name, t, reason] of cases) expect(await verify(await t), name).toMatchObject({ ok: false, refused: reason });
    // Within the tolerance: accepted.
    expect(await verify(await token({ exp: now - 29 })), 'exp within tolerance').toMatchObject({ ok: true });
    expect(await verify(await token({ iat: now + 29 })), 'iat within tolerance').toMatchObject({ ok: true });
  });

  it('reads the time from the clock: the same token expires when the clock moves', async () => {
    const t = await idp.logoutToken({ sid: 's1', exp: idp.seconds() + 60 });
    expect(await verify(t)).toMatchObject({ ok: true });
    clock.advance(91_000);
    expect(await verify(t)).toMatchObject({ ok: false, refused: 'expired' });
  });

  it('checks its options once, up front', () => {
    const keys = createLocalJWKSet(idp.jwks);
    expect(() => createLogoutTokenVerifier({ issuer: '', audience: 'a', keys, clock, clockTolerance: 0 })).toThrow(
      'The issuer option must be a non-empty string.',
    );
    expect(() => createLogoutTokenVerifier({ issuer: 'i', audience: 'a', keys, clock, clockTolerance: -1 })).toThrow(
      'The clockTolerance option must be a finite, non-negative number.',
    );
  });

  describe('a JWK Set where more than one key fits the token', () => {
    const publicJwk = async (i: number, kid: string | undefined): Promise<JWK> => ({
      ...(await exportJWK(pairs[i]!.publicKey)),
      ...(kid !== undefined && { kid }),
      alg: 'RS256',
      use: 'sig',
    });
    const now = () => Math.floor(clock.now() / 1000);
    const sign = (i: number, kid: string | undefined, jti: string) =>
      new SignJWT({ sid: 's1', jti, events: { [BACKCHANNEL_LOGOUT_EVENT]: {} } })
        .setProtectedHeader({ alg: 'RS256', ...(kid !== undefined && { kid }) })
        .setIssuer(idp.issuer)
        .setAudience(idp.audience)
        .setIssuedAt(now())
        .sign(pairs[i]!.privateKey);
    const verifierOf = (keys: JWK[]) =>
      createLogoutTokenVerifier({ issuer: idp.issuer, audience: idp.audience, keys: createLocalJWKSet({ keys }), clock, clockTolerance: 30 });

    it('a token without kid while two keys are published (rotation): checked against each, accepted whichever signed it', async () => {
      const verifyTwo = verifierOf([await publicJwk(0, 'old'), await publicJwk(1, 'new')]);
      for (const i of [0, 1])
        expect(await verifyTwo(await sign(i, undefined, `j${i}`)), `key ${i}`).toEqual({ ok: true, token: { jti: `j${i}`, sid: 's1', iat: now() } });
      // Signed by neither: a wrong signature, as with one key.
      const [h, p] = (await sign(0, undefined, 'x')).split('.');
      const [, , otherSig] = (await sign(1, undefined, 'y')).split('.');
      expect(await verifyTwo(`${h}.${p}.${otherSig}`)).toMatchObject({ ok: false, refused: 'signature' });
    });

    it('a kid published twice: the token is checked against both keys holding it', async () => {
      const verifyDup = verifierOf([await publicJwk(0, 'k'), await publicJwk(1, 'k')]);
      for (const i of [0, 1]) expect(await verifyDup(await sign(i, 'k', `d${i}`)), `key ${i}`).toMatchObject({ ok: true, token: { jti: `d${i}` } });
      for (const i of [0, 1])
        expect(await verifyDup(await sign(i, undefined, `n${i}`)), `key ${i}, no kid`).toMatchObject({ ok: true, token: { jti: `n${i}` } });
    });

    it('a key jose will not use (RSA under 2048 bits) is a refused token (unusable_key), never an unavailable key set; beside a good key, the good one still verifies', async () => {
      const weak = { ...(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' }) as JWK), kid: 'legacy' };
      const claims = { iss: idp.issuer, aud: idp.audience, iat: now(), jti: 'w', sid: 's1', events: { [BACKCHANNEL_LOGOUT_EVENT]: {} } };
      const verifyWeak = verifierOf([await publicJwk(0, 'good'), weak]);
      expect(await verifyWeak(`${b64({ alg: 'RS256', kid: 'legacy' })}.${b64(claims)}.AAAA`)).toMatchObject({ ok: false, refused: 'unusable_key' });
      // Without kid both keys fit: the weak one is passed over.
      expect(await verifyWeak(await sign(0, undefined, 'g'))).toMatchObject({ ok: true, token: { jti: 'g' } });
      expect(await verifyWeak(`${b64({ alg: 'RS256' })}.${b64(claims)}.AAAA`)).toMatchObject({ ok: false, refused: 'signature' });
      // The weak key alone: no key could check the token.
      expect(await verifierOf([weak])(`${b64({ alg: 'RS256' })}.${b64(claims)}.AAAA`)).toMatchObject({ ok: false, refused: 'unusable_key' });
    });
  });
});
