/**
 * exchange_session: tokens bound to a session die with it (RFC 9700 section 4.14,
 * OWASP session management: logout ends every credential derived from the session).
 * For every way a session ends, its bound access tokens are refused and its refresh
 * families are revoked.
 */
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { payloadOf, settle, startGateway, type Body, type Harness } from './harness.js';

let h: Harness;
afterEach(async () => {
  await h?.close();
});

interface Bound {
  sid: string;
  at: string;
  rt: string;
  family: string;
}

async function login(user = 'alice'): Promise<Bound> {
  const c = await h.call({ type: 'create_session', user_id: user });
  const sid = c.session_id as string;
  const g = await h.call({ type: 'exchange_session', session_id: sid });
  expect(g).toMatchObject({ type: 'token_generated', expires_in: expect.any(Number) });
  const rt = g.refresh_token as string;
  return { sid, at: g.access_token as string, rt, family: rt.split('.')[0]! };
}

async function familyRevoked(family: string): Promise<boolean> {
  return (await h.gateway.store.indexMembers(`rfr:${family}`, h.gateway.clock.now())).length > 0;
}

async function expectDead(b: Bound, eager: boolean): Promise<void> {
  if (eager) expect(await familyRevoked(b.family)).toBe(true);
  const v = await h.call({ type: 'verify_token', token: b.at });
  expect(v).toMatchObject({ type: 'token_invalid', error: expect.stringMatching(/^(Session ended|Token revoked)$/) });
  const r = await h.call({ type: 'refresh_token', refresh_token: b.rt });
  expect(r.type).toBe('token_invalid');
  expect(await familyRevoked(b.family)).toBe(true);
  // Still dead on a second try (nothing resurrects a revoked family).
  expect((await h.call({ type: 'refresh_token', refresh_token: b.rt })).type).toBe('token_invalid');
}

async function expectAlive(b: Bound): Promise<Body> {
  const v = await h.call({ type: 'verify_token', token: b.at });
  expect(v.type).toBe('token_valid');
  return v;
}

describe('exchange_session binds tokens to the session', () => {
  it('the binding claim is a hash, never the id or its store key', async () => {
    h = await startGateway();
    const b = await login();
    const v = await expectAlive(b);
    const payload = v.payload as Record<string, unknown>;
    expect(payload.sub).toBe('alice');
    const claim = payload.sid_hash as string;
    expect(claim).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const storeHash = createHash('sha256').update(b.sid).digest('base64url');
    expect(JSON.stringify(payloadOf(b.at))).not.toContain(b.sid);
    expect(claim).not.toBe(storeHash);
    expect(JSON.stringify(payloadOf(b.at))).not.toContain(storeHash);
  });

  it('a refresh of a bound family while the session lives gives tokens bound the same way', async () => {
    h = await startGateway();
    const b = await login();
    const r = await h.call({ type: 'refresh_token', refresh_token: b.rt });
    expect(r.type).toBe('token_refreshed');
    expect(payloadOf(r.access_token as string).sid_hash).toBe(payloadOf(b.at).sid_hash);
    await h.call({ type: 'destroy_session', session_id: b.sid });
    await expectDead({ ...b, at: r.access_token as string, rt: r.refresh_token as string }, true);
  });

  const ends: [string, (b: Bound) => Promise<unknown>][] = [
    ['destroy_session', (b) => h.call({ type: 'destroy_session', session_id: b.sid })],
    ['regenerate_session', (b) => h.call({ type: 'regenerate_session', old_session_id: b.sid })],
    ['revoke_user_sessions', () => h.call({ type: 'revoke_user_sessions', user_id: 'alice' })],
    [
      'destroy_session_handle',
      async () => {
        const list = await h.call({ type: 'list_sessions', user_id: 'alice' });
        const [s] = list.sessions as { handle: string }[];
        return h.call({ type: 'destroy_session_handle', user_id: 'alice', handle: s!.handle });
      },
    ],
  ];
  for (const [name, end] of ends) {
    it(`${name}: bound access tokens refused, refresh family revoked at once`, async () => {
      h = await startGateway();
      const b = await login();
      const second = await h.call({ type: 'exchange_session', session_id: b.sid });
      const other = await login('bob');
      await expectAlive(b);
      await end(b);
      await settle();
      await expectDead(b, true);
      const rt2 = second.refresh_token as string;
      await expectDead({ sid: b.sid, at: second.access_token as string, rt: rt2, family: rt2.split('.')[0]! }, true);
      // Another user's session and tokens are untouched.
      await expectAlive(other);
      expect((await h.call({ type: 'refresh_token', refresh_token: other.rt })).type).toBe('token_refreshed');
    });
  }

  it('regenerate: the new id does not carry the old binding (exchange again for new tokens)', async () => {
    h = await startGateway();
    const b = await login();
    const r = await h.call({ type: 'regenerate_session', old_session_id: b.sid });
    await expectDead(b, true);
    const g = await h.call({ type: 'exchange_session', session_id: r.new_session_id as string });
    expect((await h.call({ type: 'verify_token', token: g.access_token as string })).type).toBe('token_valid');
  });

  it('ttl, followed by a subscriber: revoked when the end is seen', async () => {
    h = await startGateway({ GATEWAY_SESSION_TTL: '600' });
    const b = await login();
    expect((await h.call({ type: 'subscribe_session', session_id: b.sid }, 'watcher')).type).toBe('subscribed');
    h.clock.advance(600_000);
    await settle(8);
    expect(h.pushesTo('watcher').map((m) => m.body.reason)).toEqual(['ttl']);
    await expectDead(b, true);
  });

  it('ttl, unobserved: refused on the next use, and the family revoked then', async () => {
    h = await startGateway({ GATEWAY_SESSION_TTL: '600', GATEWAY_ACCESS_TOKEN_TTL: '3600' });
    const b = await login();
    h.clock.advance(600_000);
    await expectDead(b, false);
  });

  it('idle timeout: activity keeps bound tokens usable; idleness ends them', async () => {
    h = await startGateway({ GATEWAY_SESSION_IDLE_TIMEOUT: '600' });
    const b = await login();
    // Active: validated every 500 s, so alive at 1000 s although 600 s have passed since the exchange.
    h.clock.advance(500_000);
    expect((await h.call({ type: 'validate_session', session_id: b.sid })).type).toBe('session_valid');
    h.clock.advance(500_000);
    const r = await h.call({ type: 'refresh_token', refresh_token: b.rt });
    expect(r.type).toBe('token_refreshed');
    const fresh = { ...b, at: r.access_token as string, rt: r.refresh_token as string };
    await expectAlive(fresh);
    // Then idle for longer than the timeout (nobody follows it: no end event at all).
    h.clock.advance(601_000);
    expect((await h.call({ type: 'verify_token', token: fresh.at })).error).toBe('Session ended');
    await expectDead(fresh, false);
    expect((await h.call({ type: 'validate_session', session_id: b.sid })).type).toBe('session_invalid');
  });

  it('tokens from generate_access_token (unbound) do not depend on any session', async () => {
    h = await startGateway();
    const b = await login();
    const g = await h.call({ type: 'generate_access_token', payload: { sub: 'alice' } });
    await h.call({ type: 'destroy_session', session_id: b.sid });
    expect((await h.call({ type: 'verify_token', token: g.access_token as string })).type).toBe('token_valid');
  });
});
