import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock.js';
import { BROWSER_TYPES } from '../../../src/protocol/messages.js';
import { sessionKey, type SessionRecord } from '../../../src/sessions/records.js';
import { createMemoryStore } from '../../../src/store/memory.js';
import { failingStore } from '../../helpers/failing-store.js';
import { Driver, makeGateway, settle } from '../harness.js';

const T0 = Date.UTC(2026, 0, 1);

describe('extend_session', () => {
  it('moves the end to now + ttl, never earlier than the current end, and the store keeps the record until then', async () => {
    const { gateway, clock, store } = makeGateway({ start: T0 });
    const s = await gateway.sessions.create('alice', undefined, 60);
    clock.advance(10_000);
    const v = await gateway.sessions.extend(s.hash, 600);
    expect(v).toMatchObject({ valid: true, end: T0 + 610_000, expiresIn: 600 });
    // Shorter than what is left: the end stays.
    const again = await gateway.sessions.extend(s.hash, 5);
    expect(again).toMatchObject({ valid: true, end: T0 + 610_000 });
    // Past the first end, the store still has it (its expiry moved with the end).
    clock.advance(120_000);
    expect((await gateway.sessions.validate(s.sessionId)).valid).toBe(true);
    expect(await store.get<SessionRecord>(sessionKey(s.hash))).toMatchObject({ u: 'alice', e: T0 + 610_000 });
    clock.advance(480_000);
    expect((await gateway.sessions.validate(s.sessionId)).valid).toBe(false);
    clock.advance(6_000);
    expect(await store.get(sessionKey(s.hash))).toBeUndefined();
  });

  it("without a ttl adds the session's own ttl, and stops at created_at + the maximum lifetime", async () => {
    const { gateway, clock } = makeGateway({ start: T0, sessionMaxLifetime: 300 });
    const s = await gateway.sessions.create('alice', undefined, 100);
    clock.advance(50_000);
    expect(await gateway.sessions.extend(s.hash)).toMatchObject({ valid: true, end: T0 + 150_000 });
    expect(await gateway.sessions.extend(s.hash, 3600)).toMatchObject({ valid: true, end: T0 + 300_000, expiresIn: 250 });
    clock.advance(250_000);
    expect((await gateway.sessions.validate(s.sessionId)).valid).toBe(false);
    expect(await gateway.sessions.extend(s.hash, 3600)).toEqual({ valid: false, error: 'Session not found or expired' });
  });

  it('maximum lifetime 0: no cap; a session created beyond the cap is never shortened by an extend', async () => {
    const free = makeGateway({ start: T0, sessionMaxLifetime: 0 });
    const a = await free.gateway.sessions.create('alice', undefined, 60);
    expect(await free.gateway.sessions.extend(a.hash, 31_536_000)).toMatchObject({ valid: true, end: T0 + 31_536_000_000 });
    const capped = makeGateway({ start: T0, sessionMaxLifetime: 100 });
    const b = await capped.gateway.sessions.create('alice', undefined, 1000);
    expect(await capped.gateway.sessions.extend(b.hash, 10)).toMatchObject({ valid: true, end: T0 + 1_000_000 });
  });

  it('counts as activity for the idle timeout', async () => {
    const { gateway, clock } = makeGateway({ start: T0, sessionIdleTimeout: 60 });
    const s = await gateway.sessions.create('alice', undefined, 3600);
    clock.advance(50_000);
    expect(await gateway.sessions.extend(s.hash, 3600)).toMatchObject({ valid: true, end: T0 + 110_000, endReason: 'idle' });
    clock.advance(50_000);
    expect((await gateway.sessions.peek(s.hash)).valid).toBe(true);
    clock.advance(11_000);
    expect((await gateway.sessions.peek(s.hash)).valid).toBe(false);
  });

  it('never brings back a session destroyed while it was being extended', async () => {
    const clock = new ManualClock(T0);
    const store = failingStore(createMemoryStore(clock), false);
    const { gateway } = makeGateway({ clock, store });
    const s = await gateway.sessions.create('alice', undefined, 60);
    const held = store.hold('swapIf', { once: true });
    const extending = gateway.sessions.extend(s.hash, 3600);
    await held.reached;
    expect(await gateway.sessions.destroy(s.sessionId)).toBe(true);
    held.release();
    expect(await extending).toEqual({ valid: false, error: 'Session not found or expired' });
    expect(await store.get(sessionKey(s.hash))).toBeUndefined();
    expect((await gateway.sessions.validate(s.sessionId)).valid).toBe(false);
  });

  it('an update between the read and the write of an extend keeps both (and the reverse)', async () => {
    const clock = new ManualClock(T0);
    const store = failingStore(createMemoryStore(clock), false);
    const { gateway } = makeGateway({ clock, store });
    const s = await gateway.sessions.create('alice', { role: 'member' }, 60);
    let held = store.hold('swapIf', { once: true });
    const extending = gateway.sessions.extend(s.hash, 3600);
    await held.reached;
    // The update's own swap is not held (once): it lands first.
    const updating = gateway.sessions.update(s.hash, { role: 'admin' });
    await settle();
    held.release();
    await Promise.all([extending, updating]);
    expect(await store.get(sessionKey(s.hash))).toMatchObject({ e: T0 + 3_600_000, d: { role: 'admin' } });

    held = store.hold('swapIf', { once: true });
    const updating2 = gateway.sessions.update(s.hash, { role: 'owner' });
    await held.reached;
    const extending2 = gateway.sessions.extend(s.hash, 7200);
    await settle();
    held.release();
    await Promise.all([extending2, updating2]);
    expect(await store.get(sessionKey(s.hash))).toMatchObject({ e: T0 + 7_200_000, d: { role: 'owner' } });
  });
});

describe('extend_session and tokens bound to the session', () => {
  it('tokens from exchange_session live on until the new end, and die with the session then', async () => {
    const { gateway, clock } = makeGateway({ start: T0 });
    const s = await gateway.sessions.create('alice', undefined, 60);
    const d = new Driver(gateway);
    const pair = await d.call({ type: 'exchange_session', session_id: s.sessionId });
    expect(pair).toMatchObject({ type: 'token_generated' });
    expect(await d.call({ type: 'extend_session', session_id: s.sessionId, ttl: 600 })).toMatchObject({ type: 'session_extended', expires_in: 600 });
    await settle();
    // Past the old end (60 s), within the new one and the access token's own 900 s.
    clock.advance(300_000);
    expect((await gateway.tokens.verify(pair.access_token as string)).valid).toBe(true);
    const next = await gateway.tokens.refresh(pair.refresh_token as string);
    expect(next).toHaveProperty('access_token');
    clock.advance(301_000);
    expect(await gateway.tokens.verify(pair.access_token as string)).toEqual({ valid: false, error: 'Session ended' });
  });
});

describe('update_session', () => {
  it('replaces the data, keeps the end; an ended session is session_invalid', async () => {
    const { gateway, clock } = makeGateway({ start: T0 });
    const s = await gateway.sessions.create('alice', { role: 'member', theme: 'dark' }, 60);
    clock.advance(10_000);
    expect(await gateway.sessions.update(s.hash, { role: 'admin' })).toMatchObject({ valid: true, end: T0 + 60_000, expiresIn: 50 });
    const v = await gateway.sessions.validate(s.sessionId);
    expect(v.valid && v.record.d).toEqual({ role: 'admin' });
    await gateway.sessions.destroy(s.sessionId);
    expect(await gateway.sessions.update(s.hash, {})).toEqual({ valid: false, error: 'Session not found or expired' });
  });
});

describe('pushes of extend and update to followers', () => {
  it('a subscriber gets session_extended with the seconds left, and session_updated with the data', async () => {
    const { gateway } = makeGateway({ start: T0 });
    const s = await gateway.sessions.create('alice', undefined, 60);
    const follower = new Driver(gateway);
    expect(await follower.call({ type: 'subscribe_session', session_id: s.sessionId }, 'app')).toMatchObject({ type: 'subscribed' });
    const service = new Driver(gateway);
    expect(await service.call({ type: 'extend_session', session_id: s.sessionId, ttl: 600 })).toEqual({
      type: 'session_extended',
      in_reply_to: 1,
      expires_at: T0 / 1000 + 600,
      expires_in: 600,
    });
    expect(await service.call({ type: 'update_session', session_id: s.sessionId, data: { role: 'admin' } })).toEqual({
      type: 'session_updated',
      in_reply_to: 2,
      expires_in: 600,
    });
    expect(follower.pushes().map((p) => [p.dest, p.body])).toEqual([
      ['app', { type: 'session_extended', session_id: s.sessionId, expires_in: 600, msg_id: 1 }],
      ['app', { type: 'session_updated', session_id: s.sessionId, data: { role: 'admin' }, msg_id: 2 }],
    ]);
  });

  it("a browser's extend that would move the end by less than a second changes nothing: no write, no push; a service's always extends", async () => {
    const { gateway, clock, store } = makeGateway({ start: T0, sessionMaxLifetime: 1000 });
    const s = await gateway.sessions.create('alice', undefined, 60);
    const follower = new Driver(gateway);
    expect(await follower.call({ type: 'subscribe_session', session_id: s.sessionId }, 'app')).toMatchObject({ type: 'subscribed' });
    const page = new Driver(gateway, { allowed: BROWSER_TYPES, untrusted: true });
    page.conn.bindSession(s.hash);
    const extend = () => page.call({ type: 'extend_session', ttl: 600 });
    expect(await extend()).toMatchObject({ type: 'session_extended', expires_at: T0 / 1000 + 600, expires_in: 600 });
    const written = await store.get<SessionRecord>(sessionKey(s.hash));
    // Sent again and again within the second: the same answer, the record as it was.
    for (let i = 0; i < 10; i++) {
      clock.advance(90);
      expect(await extend()).toMatchObject({ type: 'session_extended', expires_at: T0 / 1000 + 600 });
    }
    expect(await store.get<SessionRecord>(sessionKey(s.hash))).toEqual(written);
    clock.advance(100); // a second after the first: the end moves again
    expect(await extend()).toMatchObject({ type: 'session_extended', expires_at: T0 / 1000 + 601, expires_in: 600 });
    // At the maximum lifetime the end cannot move: nothing is written or pushed.
    clock.advance(500_000);
    expect(await extend()).toMatchObject({ type: 'session_extended', expires_at: T0 / 1000 + 1000 });
    expect(await extend()).toMatchObject({ type: 'session_extended', expires_at: T0 / 1000 + 1000 });
    await settle();
    expect(follower.pushes().map((p) => p.body.expires_in)).toEqual([600, 600, 499]);
    // A service's extend is written and told even when it moves the end by a few milliseconds.
    const service = new Driver(gateway);
    clock.advance(10);
    expect(await service.call({ type: 'extend_session', session_id: s.sessionId, ttl: 400 })).toMatchObject({ type: 'session_extended', expires_in: 499 });
    await settle();
    expect(follower.pushes().map((p) => p.body.expires_in)).toEqual([600, 600, 499, 499]);
  });

  it('the expiry warning of a follower is armed again for the new end', async () => {
    const { gateway, clock } = makeGateway({ start: T0 });
    const s = await gateway.sessions.create('alice', undefined, 120);
    const d = new Driver(gateway);
    const seen: string[] = [];
    d.conn.follow('bound', s.hash, '(cookie)', T0 + 120_000, 'ttl', {
      onEnded: (r) => seen.push(`end:${r}`),
      onExpiring: (left) => seen.push(`warn:${left}@${(clock.now() - T0) / 1000}`),
      onExtended: (left) => seen.push(`extended:${left}`),
      warnBefore: 60_000,
    });
    clock.advance(61_000);
    await settle();
    expect(seen).toEqual(['warn:59@61']);
    await gateway.sessions.extend(s.hash, 300);
    await settle();
    clock.advance(200_000);
    await settle();
    expect(seen).toEqual(['warn:59@61', 'extended:300']);
    clock.advance(40_000);
    await settle();
    expect(seen).toEqual(['warn:59@61', 'extended:300', 'warn:60@301']);
    clock.advance(60_000);
    await settle();
    expect(seen).toEqual(['warn:59@61', 'extended:300', 'warn:60@301', 'end:ttl']);
  });
});

describe('extend_session from a browser connection', () => {
  const browser = (gateway: ReturnType<typeof makeGateway>['gateway']) => new Driver(gateway, { allowed: BROWSER_TYPES, untrusted: true });

  it('naming a session is error 1001; a bound one extends its own by sending no id', async () => {
    const { gateway } = makeGateway({ start: T0 });
    const s = await gateway.sessions.create('alice', undefined, 60);
    const b = browser(gateway);
    expect(await b.call({ type: 'extend_session', session_id: s.sessionId })).toMatchObject({ type: 'error', code: 1001 });
    b.conn.bindSession(s.hash);
    expect(await b.call({ type: 'extend_session', session_id: s.sessionId })).toMatchObject({ type: 'error', code: 1001 });
    expect(await b.call({ type: 'extend_session', ttl: 600 })).toEqual({
      type: 'session_extended',
      in_reply_to: 3,
      expires_at: T0 / 1000 + 600,
      expires_in: 600,
    });
  });

  it('an unbound browser sending no id gets session_invalid; update_session and revoke_user_tokens are 1001', async () => {
    const { gateway } = makeGateway({ start: T0 });
    const s = await gateway.sessions.create('alice', undefined, 60);
    const b = browser(gateway);
    expect(await b.call({ type: 'extend_session' })).toEqual({
      type: 'session_invalid',
      in_reply_to: 1,
      error: 'No session: this connection is not bound to one',
    });
    expect(await b.call({ type: 'update_session', session_id: s.sessionId, data: {} })).toMatchObject({ type: 'error', code: 1001 });
    expect(await b.call({ type: 'revoke_user_tokens', user_id: 'alice' })).toMatchObject({ type: 'error', code: 1001 });
    expect(await gateway.sessions.peek(s.hash)).toMatchObject({ valid: true, end: T0 + 60_000 });
  });
});

describe('sessions by identity provider login (back-channel logout)', () => {
  it('endByIdp ends every session of an idp sid, or of an idp sub, with reason revoked; the index goes with the sessions', async () => {
    const { gateway, clock, store } = makeGateway({ start: T0 });
    const a = await gateway.sessions.create('alice', undefined, 60, { sid: 'idp-1', sub: 'sub-a' });
    const b = await gateway.sessions.create('alice', undefined, 60, { sid: 'idp-1', sub: 'sub-a' });
    const c = await gateway.sessions.create('alice', undefined, 60, { sid: 'idp-2', sub: 'sub-a' });
    const other = await gateway.sessions.create('bob', undefined, 60, { sid: 'idp-3', sub: 'sub-b' });
    const d = new Driver(gateway);
    await d.call({ type: 'subscribe_session', session_id: a.sessionId });
    expect(await gateway.sessions.endByIdp({ sid: 'idp-1' })).toBe(2);
    await settle();
    expect(d.pushes().map((p) => p.body)).toEqual([{ type: 'session_expired', session_id: a.sessionId, reason: 'revoked', msg_id: 1 }]);
    expect((await gateway.sessions.peek(c.hash)).valid).toBe(true);
    expect(await gateway.sessions.endByIdp({ sid: 'idp-1' })).toBe(0);
    expect(await gateway.sessions.endByIdp({ sub: 'sub-a' })).toBe(1);
    expect((await gateway.sessions.peek(b.hash)).valid).toBe(false);
    expect((await gateway.sessions.peek(other.hash)).valid).toBe(true);
    expect(await gateway.sessions.endByIdp({})).toBe(0);
    // What is left expires with the last session: nothing stays behind.
    clock.advance(66_000);
    await settle();
    expect(store.size()).toBe(0);
  });
});
