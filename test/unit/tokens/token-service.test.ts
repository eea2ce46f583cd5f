import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { checkShape } from '../../../src/tokens/jwt-shape.js';
import { Driver, makeGateway, SECRET, settle } from '../harness.js';

const T0 = Date.UTC(2026, 0, 1);
const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** An HS256 JWT over exactly these header and claims (the text is ours, the key is the gateway's). */
function sign(claims: Record<string, unknown> | string, secret = SECRET, header: Record<string, unknown> = { alg: 'HS256', typ: 'JWT' }): string {
  const head = `${b64(header)}.${b64(claims)}`;
  return `${head}.${createHmac('sha256', secret).update(head).digest('base64url')}`;
}

const claimsOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;

const SAMPLE = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyMTIzIiwiZW1haWwiOiJ1c2VyQGV4YW1wbGUuY29tIiwiaWF0IjoxNzA0MDY3MjAwfQ.signature';

describe('TokenService', () => {
  it('issues HS256 tokens with header {alg,typ}, claims = payload + iat, exp (iat + 900), jti', async () => {
    const { gateway } = makeGateway({ start: T0 + 700 });
    const pair = await gateway.tokens.generate({ sub: 'u1', roles: ['a'] });
    expect(pair).toMatchObject({ expires_in: 900, refresh_expires_in: 1_209_600 });
    const [h] = pair.access_token.split('.');
    expect(JSON.parse(Buffer.from(h!, 'base64url').toString())).toEqual({ alg: 'HS256', typ: 'JWT' });
    const c = claimsOf(pair.access_token);
    expect(c).toEqual({ sub: 'u1', roles: ['a'], iat: T0 / 1000, exp: T0 / 1000 + 900, jti: expect.stringMatching(/^[A-Za-z0-9_-]{16,}$/) });
    expect(pair.refresh_token).toMatch(/^[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}$/);
    expect(await gateway.tokens.verify(pair.access_token)).toEqual({ valid: true, payload: c });
    const other = await gateway.tokens.generate({ sub: 'u1', roles: ['a'] });
    expect(claimsOf(other.access_token).jti).not.toBe(c.jti);
  });

  it('stores refresh tokens only hashed', async () => {
    const { gateway, store } = makeGateway();
    const pair = await gateway.tokens.generate({ sub: 'u1' });
    expect(await store.get(`rt:${pair.refresh_token}`)).toBeUndefined();
  });

  it('a payload that sets iat, exp, nbf or jti is error 12 naming the claim', async () => {
    const { gateway } = makeGateway();
    const d = new Driver(gateway);
    for (const claim of ['iat', 'exp', 'nbf', 'jti']) {
      for (const value of [1, 'x', null, 0]) {
        const r = await d.call({ type: 'generate_access_token', payload: { sub: 'u', [claim]: value } });
        expect(r, `${claim}=${value}`).toMatchObject({ type: 'error', code: 12, text: expect.stringContaining(`"${claim}"`) });
      }
    }
    // Allowed: other registered claims the gateway does not own.
    expect((await d.call({ type: 'generate_access_token', payload: { sub: 'u', aud: 'x', iss: 'y', custom: { iat: 1 } } })).type).toBe('token_generated');
  });

  it('expires on the clock: valid 1 ms before exp, "Token expired" at exp', async () => {
    const { gateway, clock } = makeGateway();
    const { access_token } = await gateway.tokens.generate({ sub: 'u' });
    clock.advance(899_999);
    expect((await gateway.tokens.verify(access_token)).valid).toBe(true);
    clock.advance(1);
    expect(await gateway.tokens.verify(access_token)).toEqual({ valid: false, error: 'Token expired' });
  });

  it('"Token expired" only for a correctly signed token: forged or tampered expired tokens get other errors', async () => {
    const { gateway } = makeGateway();
    const now = T0 / 1000;
    const expired = { sub: 'u', iat: now - 2000, exp: now - 1100, jti: 'j-expired' };
    expect(await gateway.tokens.verify(sign(expired))).toEqual({ valid: false, error: 'Token expired' });
    const forged = await gateway.tokens.verify(sign(expired, 'another-secret-0123456789abcdef-0123456789'));
    expect(forged).toEqual({ valid: false, error: 'Invalid signature' });
    const good = sign({ sub: 'u', iat: now, exp: now + 900, jti: 'j1' });
    const [h, , s] = good.split('.');
    const tampered = `${h}.${b64(expired)}.${s}`;
    expect(await gateway.tokens.verify(tampered)).toEqual({ valid: false, error: 'Invalid signature' });
    const unsigned = `${h}.${b64(expired)}.`;
    expect((await gateway.tokens.verify(unsigned)).valid).toBe(false);
    expect(((await gateway.tokens.verify(unsigned)) as { error: string }).error).not.toBe('Token expired');
  });

  it('the sample token with the literal signature text "signature" is refused, never valid', async () => {
    const { gateway } = makeGateway();
    const d = new Driver(gateway);
    const r = await d.call({ type: 'verify_token', token: SAMPLE });
    expect(r).toEqual({ type: 'token_invalid', error: expect.stringMatching(/.+/), in_reply_to: 1 });
    expect(r).not.toHaveProperty('payload');
    expect(checkShape(SAMPLE).ok).toBe(false);
    // Even at a time when its claims would pass.
    const later = makeGateway({ start: 1_704_067_200_000 + 1000 });
    expect((await later.gateway.tokens.verify(SAMPLE)).valid).toBe(false);
  });

  it('requires exp, iat and jti', async () => {
    const { gateway } = makeGateway();
    const now = T0 / 1000;
    const full = { sub: 'u', iat: now, exp: now + 60, jti: 'j' };
    expect((await gateway.tokens.verify(sign(full))).valid).toBe(true);
    for (const claim of ['iat', 'exp', 'jti'] as const) {
      const c: Record<string, unknown> = { ...full };
      delete c[claim];
      expect((await gateway.tokens.verify(sign(c))).valid, claim).toBe(false);
    }
  });

  it('allows HS256 only', async () => {
    const { gateway } = makeGateway();
    const now = T0 / 1000;
    const c = { sub: 'u', iat: now, exp: now + 60, jti: 'j' };
    for (const alg of ['none', 'HS384', 'HS512', 'RS256', 'ES256', 'hs256']) {
      expect((await gateway.tokens.verify(sign(c, SECRET, { alg, typ: 'JWT' }))).valid, alg).toBe(false);
    }
    expect((await gateway.tokens.verify(sign(c, SECRET, { alg: 'HS256' }))).valid).toBe(true);
  });

  it('malformed tokens are token_invalid, never an error or valid', async () => {
    const { gateway } = makeGateway();
    const d = new Driver(gateway);
    for (const token of ['', 'a', 'a.b', 'a.b.c.d', '...', 'x'.repeat(10_000), '\u00e9.\u00e9.\u00e9', 'eyJ.eyJ.sig', `${b64('[]')}.${b64('{}')}.AAAA`]) {
      const r = await d.call({ type: 'verify_token', token });
      expect(r.type, JSON.stringify(token).slice(0, 40)).toBe('token_invalid');
      expect(r.error).toEqual(expect.any(String));
    }
  });

  describe('refresh', () => {
    it('rotates on every use: a new pair, the old refresh token single use', async () => {
      const { gateway } = makeGateway();
      const first = await gateway.tokens.generate({ sub: 'u', email: 'e' });
      const second = await gateway.tokens.refresh(first.refresh_token);
      if ('error' in second) throw new Error(second.error);
      expect(second.refresh_token).not.toBe(first.refresh_token);
      expect(second.refresh_token.split('.')[0]).toBe(first.refresh_token.split('.')[0]); // same family
      expect(claimsOf(second.access_token)).toMatchObject({ sub: 'u', email: 'e' });
      expect(claimsOf(second.access_token).jti).not.toBe(claimsOf(first.access_token).jti);
      const third = await gateway.tokens.refresh(second.refresh_token);
      expect('access_token' in third).toBe(true);
    });

    it('reuse of a spent refresh token revokes the whole family and its unexpired access tokens', async () => {
      const { gateway } = makeGateway();
      const unrelated = await gateway.tokens.generate({ sub: 'v' });
      const first = await gateway.tokens.generate({ sub: 'u' });
      const second = await gateway.tokens.refresh(first.refresh_token);
      if ('error' in second) throw new Error(second.error);
      const third = await gateway.tokens.refresh(second.refresh_token);
      if ('error' in third) throw new Error(third.error);
      expect(await gateway.tokens.refresh(first.refresh_token)).toEqual({ error: expect.stringContaining('already used') });
      for (const t of [first, second, third]) {
        expect(await gateway.tokens.verify(t.access_token)).toEqual({ valid: false, error: 'Token revoked' });
      }
      expect(await gateway.tokens.refresh(third.refresh_token)).toEqual({ error: expect.any(String) });
      expect((await gateway.tokens.verify(unrelated.access_token)).valid).toBe(true);
      expect('access_token' in (await gateway.tokens.refresh(unrelated.refresh_token))).toBe(true);
    });

    it('of concurrent refreshes with one token at most one succeeds', async () => {
      const { gateway } = makeGateway();
      const first = await gateway.tokens.generate({ sub: 'u' });
      const results = await Promise.all(Array.from({ length: 5 }, () => gateway.tokens.refresh(first.refresh_token)));
      expect(results.filter((r) => 'access_token' in r).length).toBeLessThanOrEqual(1);
    });

    it('expires after the refresh ttl, on the clock', async () => {
      const { gateway, clock } = makeGateway({ refreshTokenTtl: 3600 });
      const first = await gateway.tokens.generate({ sub: 'u' });
      clock.advance(3_600_000);
      expect(await gateway.tokens.refresh(first.refresh_token)).toEqual({ error: expect.any(String) });
    });

    it('forged or guessed refresh tokens are refused', async () => {
      const { gateway } = makeGateway();
      const first = await gateway.tokens.generate({ sub: 'u' });
      const [fam] = first.refresh_token.split('.');
      for (const rt of ['', 'x', `${fam}.${'A'.repeat(43)}`, `${'A'.repeat(22)}.${first.refresh_token.split('.')[1]}`, first.access_token]) {
        expect(await gateway.tokens.refresh(rt), rt.slice(0, 30)).toEqual({ error: expect.any(String) });
      }
      // The family is untouched.
      expect('access_token' in (await gateway.tokens.refresh(first.refresh_token))).toBe(true);
    });
  });

  describe('revoke', () => {
    it('denies by jti until exp: the token and any re-encoded copy of it', async () => {
      const { gateway, clock, store } = makeGateway();
      const { access_token } = await gateway.tokens.generate({ sub: 'u', a: 1 });
      expect(await gateway.tokens.revoke(access_token)).toEqual({ revoked: true });
      expect(await gateway.tokens.verify(access_token)).toEqual({ valid: false, error: 'Token revoked' });
      // Same claims, other text: reordered keys, whitespace in the JSON, a header spelled otherwise.
      const c = claimsOf(access_token);
      const reordered = Object.fromEntries(Object.entries(c).reverse());
      const copies = [sign(reordered), sign(JSON.stringify(c, null, 1)), sign(c, SECRET, { typ: 'JWT', alg: 'HS256' }), sign(c, SECRET, { alg: 'HS256' })];
      for (const copy of copies) {
        expect(copy).not.toBe(access_token);
        expect(await gateway.tokens.verify(copy)).toEqual({ valid: false, error: 'Token revoked' });
      }
      // The denial lasts until exp (plus tolerance), then the entry leaves the store.
      clock.advance(900_000 + 30_000);
      expect(await store.get(`jti:${c.jti}`)).toBeUndefined();
      expect(await gateway.tokens.verify(access_token)).toEqual({ valid: false, error: 'Token expired' });
    });

    it('a refresh token revokes its family', async () => {
      const { gateway } = makeGateway();
      const first = await gateway.tokens.generate({ sub: 'u' });
      expect(await gateway.tokens.revoke(first.refresh_token)).toEqual({ revoked: true });
      expect(await gateway.tokens.verify(first.access_token)).toEqual({ valid: false, error: 'Token revoked' });
      expect(await gateway.tokens.refresh(first.refresh_token)).toEqual({ error: expect.any(String) });
    });

    it('refuses what the gateway did not issue; the reply is token_invalid', async () => {
      const { gateway } = makeGateway();
      const d = new Driver(gateway);
      const now = T0 / 1000;
      for (const token of [SAMPLE, sign({ sub: 'u', iat: now, exp: now + 60, jti: 'j' }, 'some-other-secret-0123456789abcdef-012345'), 'nope']) {
        expect((await d.call({ type: 'revoke_token', token })).type).toBe('token_invalid');
      }
      const { access_token } = await gateway.tokens.generate({ sub: 'u' });
      expect(await d.call({ type: 'revoke_token', token: access_token })).toEqual({ type: 'token_revoked', in_reply_to: expect.any(Number) });
      expect(await d.call({ type: 'verify_token', token: access_token })).toMatchObject({ type: 'token_invalid', error: 'Token revoked' });
    });
  });

  it('a token verified before is checked again on every call: revocations, its user mark and a changed signature', async () => {
    const { gateway, clock } = makeGateway({ start: T0 });
    const d = new Driver(gateway);
    const a = await gateway.tokens.generate({ sub: 'alice' });
    const b = await gateway.tokens.generate({ sub: 'bob' });
    for (let i = 0; i < 3; i++) {
      expect((await gateway.tokens.verify(a.access_token)).valid).toBe(true);
      expect((await gateway.tokens.verify(b.access_token)).valid).toBe(true);
    }
    // The same header and payload under another signature is not the token verified before.
    const [h, p, sig] = a.access_token.split('.') as [string, string, string];
    const other = sig.startsWith('A') ? `B${sig.slice(1)}` : `A${sig.slice(1)}`;
    expect(await gateway.tokens.verify(`${h}.${p}.${other}`)).toEqual({ valid: false, error: 'Invalid signature' });
    expect(await d.call({ type: 'revoke_token', token: a.access_token })).toMatchObject({ type: 'token_revoked' });
    expect(await gateway.tokens.verify(a.access_token)).toEqual({ valid: false, error: 'Token revoked' });
    clock.advance(1000);
    expect(await d.call({ type: 'revoke_user_tokens', user_id: 'bob' })).toMatchObject({ type: 'tokens_revoked' });
    expect(await gateway.tokens.verify(b.access_token)).toEqual({ valid: false, error: 'Token revoked' });
  });

  describe('exchange_session', () => {
    it('issues tokens for the session user that die with the session', async () => {
      const { gateway } = makeGateway();
      const d = new Driver(gateway);
      const sid = (await d.call({ type: 'create_session', user_id: 'alice' })).session_id as string;
      const t = await d.call({ type: 'exchange_session', session_id: sid });
      expect(t).toMatchObject({ type: 'token_generated', expires_in: 900 });
      expect(await d.call({ type: 'verify_token', token: t.access_token })).toMatchObject({ type: 'token_valid', payload: { sub: 'alice' } });
      expect(JSON.stringify(claimsOf(t.access_token as string))).not.toContain(sid);
      await d.call({ type: 'destroy_session', session_id: sid });
      expect(await d.call({ type: 'verify_token', token: t.access_token })).toMatchObject({ type: 'token_invalid' });
      expect(await d.call({ type: 'refresh_token', refresh_token: t.refresh_token })).toMatchObject({ type: 'token_invalid' });
      expect(await d.call({ type: 'exchange_session', session_id: sid })).toMatchObject({ type: 'session_invalid' });
    });

    // The texts name the cause the same way whether or not someone followed the session (a
    // followed session's end is run by this node, which revokes the bound tokens at once).
    for (const followed of [false, true])
      it(`says "Token revoked" after a destroy and "Session ended" after the time ran out (${followed ? 'followed' : 'nobody following'})`, async () => {
        const { gateway, clock } = makeGateway({ start: T0 });
        const d = new Driver(gateway);
        const pairs: Record<string, { access_token: string; refresh_token: string }> = {};
        const ids: Record<string, string> = {};
        for (const name of ['destroyed', 'timed']) {
          ids[name] = (await d.call({ type: 'create_session', user_id: 'alice', ttl: name === 'timed' ? 60 : 3600 })).session_id as string;
          pairs[name] = (await d.call({ type: 'exchange_session', session_id: ids[name] })) as unknown as { access_token: string; refresh_token: string };
          if (followed) expect((await d.call({ type: 'subscribe_session', session_id: ids[name] }, 'watcher')).type).toBe('subscribed');
        }
        await d.call({ type: 'destroy_session', session_id: ids.destroyed });
        clock.advance(61_000);
        await settle();
        expect(d.pushes().map((p) => p.body.reason)).toEqual(followed ? ['destroyed', 'ttl'] : []);
        expect(await d.call({ type: 'verify_token', token: pairs.destroyed!.access_token })).toMatchObject({ type: 'token_invalid', error: 'Token revoked' });
        expect(await d.call({ type: 'verify_token', token: pairs.timed!.access_token })).toMatchObject({ type: 'token_invalid', error: 'Session ended' });
        expect(await d.call({ type: 'refresh_token', refresh_token: pairs.timed!.refresh_token })).toMatchObject({
          type: 'token_invalid',
          error: 'Session ended',
        });
        expect(await d.call({ type: 'refresh_token', refresh_token: pairs.destroyed!.refresh_token })).toMatchObject({
          type: 'token_invalid',
          error: 'Refresh token revoked',
        });
      });
  });
});

describe('concurrent refreshes of one refresh token (memory store)', () => {
  it('100 at once: exactly one rotation succeeds, the others are reuse, and the family ends up revoked', async () => {
    const { gateway } = makeGateway({ start: T0 });
    const pair = await gateway.tokens.generate({ sub: 'racer' });
    const results = await Promise.all(Array.from({ length: 100 }, () => gateway.tokens.refresh(pair.refresh_token)));
    const winners = results.filter((r) => 'access_token' in r) as { access_token: string; refresh_token: string }[];
    expect(winners).toHaveLength(1);
    expect(results.filter((r) => 'error' in r && /already used/.test(r.error))).toHaveLength(99);
    expect(await gateway.tokens.verify(winners[0]!.access_token)).toMatchObject({ valid: false, error: 'Token revoked' });
    expect(await gateway.tokens.verify(pair.access_token)).toMatchObject({ valid: false, error: 'Token revoked' });
    expect(await gateway.tokens.refresh(winners[0]!.refresh_token)).toHaveProperty('error');
  });

  it('a family revoked before the refresh is refused, even for an unspent token', async () => {
    const { gateway } = makeGateway({ start: T0 });
    const pair = await gateway.tokens.generate({ sub: 'x' });
    expect(await gateway.tokens.revoke(pair.refresh_token)).toEqual({ revoked: true });
    expect(await gateway.tokens.refresh(pair.refresh_token)).toEqual({ error: 'Refresh token revoked' });
  });
});

describe('refreshing in a loop', () => {
  it('past 1000 unexpired access tokens in a family, the current token is refused with 1002 and not spent; time lets it go on', async () => {
    const { gateway, clock } = makeGateway({ start: T0 });
    let rt = (await gateway.tokens.generate({ sub: 'looper' })).refresh_token;
    for (let i = 0; i < 999; i++) {
      const r = await gateway.tokens.refresh(rt);
      if (!('refresh_token' in r)) throw new Error(`refresh ${i}: ${JSON.stringify(r)}`);
      rt = r.refresh_token;
    }
    await expect(gateway.tokens.refresh(rt)).rejects.toMatchObject({ code: 'RATE_LIMITED' });
    // Not spent: once the oldest access tokens expire, the same token refreshes.
    clock.advance(901_000);
    expect(await gateway.tokens.refresh(rt)).toHaveProperty('access_token');
  });
});
