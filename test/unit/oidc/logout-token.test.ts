/**
 * The logout token verifier alone (no HTTP, no store): each refusal is refused for its own
 * reason, not for whatever check happened to run first; time comes from the injected clock.
 */
import { createLocalJWKSet, SignJWT } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock.js';
import { createLogoutTokenVerifier, type LogoutRefusal } from '../../../src/oidc/logout-token.js';
import { BACKCHANNEL_LOGOUT_EVENT, startTestIdp, type LogoutClaims } from '../../helpers/test-idp.js';

const clock = new ManualClock(1_900_000_000_000);
const idp = await startTestIdp({ now: () => clock.now() });
afterAll(() => idp.close());
const verify = createLogoutTokenVerifier({ issuer: idp.issuer, audience: idp.audience, keys: createLocalJWKSet(idp.jwks), clock, clockTolerance: 30 });
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
});
