import { afterEach, describe, expect, it } from 'vitest';
import { browser, createSession, service, start, stopAll, type Msg } from './helpers.js';

afterEach(stopAll);

const isPush = (m: Msg) => m.body.in_reply_to === undefined;

describe('extend_session and update_session over WebSocket', () => {
  it('a bound browser extends its own session by sending no id; its warning moves to the new end', async () => {
    const { server, clock } = await start({ GATEWAY_EXPIRY_WARNING: '60', GATEWAY_SESSION_MAX_LIFETIME: '86400' });
    const sid = await createSession(server.url, 120);
    const b = browser(server.url, { cookie: `sid=${sid}` });
    await b.opened;
    const t0 = clock.now();
    expect(await b.call('extend_session', { ttl: 600 })).toEqual({
      type: 'session_extended',
      in_reply_to: expect.any(Number),
      expires_at: Math.floor((t0 + 600_000) / 1000),
      expires_in: 600,
    });
    const extended = await b.next(isPush);
    expect(extended).toMatchObject({ dest: 'client', body: { type: 'session_extended', bound: true, expires_in: 600 } });
    // Named by its handle, never by the id of the HttpOnly cookie.
    expect(extended.body.session_id).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(b.raw.join('\n')).not.toContain(sid);
    // The old warning time (60 s before the old end, when 59 s would have been left) passes;
    // the one warning sent is the new one's, 5 s late here: 55 s left.
    clock.advance(61_000);
    clock.advance(484_000);
    const warned = await b.next(isPush);
    expect(warned.body).toMatchObject({ type: 'session_expiring', bound: true, expires_in: 55 });
    expect(b.messages.filter(isPush)).toEqual([]);
  });

  it('a browser naming a session is refused with 1001, bound or not; an unbound one naming none gets session_invalid', async () => {
    const { server } = await start();
    const sid = await createSession(server.url, 120);
    const bound = browser(server.url, { cookie: `sid=${sid}` });
    await bound.opened;
    expect(await bound.call('extend_session', { session_id: sid })).toMatchObject({ type: 'error', code: 1001 });
    const loose = browser(server.url);
    await loose.opened;
    expect(await loose.call('extend_session', { session_id: sid, ttl: 600 })).toMatchObject({ type: 'error', code: 1001 });
    expect(await loose.call('extend_session', {})).toMatchObject({ type: 'session_invalid', error: 'No session: this connection is not bound to one' });
    expect(await loose.call('update_session', { session_id: sid, data: {} })).toMatchObject({ type: 'error', code: 1001 });
    expect(await loose.call('revoke_user_tokens', { user_id: 'user-1' })).toMatchObject({ type: 'error', code: 1001 });
    const s = service(server.url);
    await s.opened;
    expect(await s.call('validate_session', { session_id: sid })).toMatchObject({ type: 'session_valid', expires_in: 120 });
  });

  it('update_session: a bound connection is told that its session changed, without the data; a subscriber gets the data', async () => {
    const { server } = await start();
    const sid = await createSession(server.url, 120);
    const b = browser(server.url, { cookie: `sid=${sid}` });
    await b.opened;
    const s = service(server.url);
    await s.opened;
    expect(await s.call('subscribe_session', { session_id: sid }, 'app')).toMatchObject({ type: 'subscribed' });
    expect(await s.call('update_session', { session_id: sid, data: { role: 'admin', secret: 'server-side' } })).toMatchObject({
      type: 'session_updated',
      expires_in: 120,
    });
    const told = await b.next(isPush);
    expect(told.body).toEqual({ type: 'session_updated', session_id: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/), bound: true, msg_id: expect.any(Number) });
    expect(b.raw.join('\n')).not.toContain('server-side');
    expect((await s.next(isPush)).body).toMatchObject({ type: 'session_updated', session_id: sid, data: { role: 'admin', secret: 'server-side' } });
  });
});
