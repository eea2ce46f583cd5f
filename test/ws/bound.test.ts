import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { browser, createSession, rawUpgrade, service, settle, start, stopAll, type Msg } from './helpers.js';

afterEach(stopAll);

const isPush = (m: Msg) => m.body.in_reply_to === undefined;

describe('bound connections (browser upgrade with the session cookie)', () => {
  it('is told session_expired and closed with 4001 the moment the session is destroyed', async () => {
    const { server } = await start();
    const sid = await createSession(server.url);
    const b = browser(server.url, { cookie: `theme=dark; sid=${sid}` });
    await b.opened;
    const s = service(server.url);
    await s.opened;
    const t0 = performance.now();
    expect((await s.call('destroy_session', { session_id: sid })).type).toBe('session_destroyed');
    const push = await b.next(isPush);
    const ms = performance.now() - t0;
    expect(push).toMatchObject({ src: 'gateway', dest: 'client', body: { type: 'session_expired', bound: true, reason: 'destroyed' } });
    expect(typeof push.body.msg_id).toBe('number');
    // The cookie is HttpOnly: its value never reaches the page.
    expect(JSON.stringify(push)).not.toContain(sid);
    // It names the session by its handle (a store hash), which cannot be presented as an id.
    expect(push.body.session_id).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(push.body.session_id).not.toBe(sid);
    expect(await b.closed).toEqual({ code: 4001, reason: 'Session ended' });
    // At once, not at the session's end; the lateness figure itself is the benchmarks' (row 7).
    expect(ms).toBeLessThan(1000);
  });

  it('init tells a browser whether its connection is bound to a session; a service is told nothing of it', async () => {
    const { server } = await start();
    const sid = await createSession(server.url);
    const bound = browser(server.url, { cookie: `sid=${sid}` });
    const unbound = browser(server.url);
    const s = service(server.url);
    for (const p of [bound, unbound, s]) await p.opened;
    expect(await bound.call('init', { node_id: 'n1' })).toMatchObject({ type: 'init_ok', bound: true });
    expect(await unbound.call('init', { node_id: 'n1' })).toMatchObject({ type: 'init_ok', bound: false });
    const r = await s.call('init', { node_id: 'n1' });
    expect(r.type).toBe('init_ok');
    expect(r).not.toHaveProperty('bound');
  });

  it('ends its half of the TCP connection right after the close frame, without waiting for the peer to answer it', async () => {
    // A peer that reads but does not answer the close: the gateway's FIN follows its close
    // frame at once (not after the 60 s grace), and the socket closes once the peer ends too.
    const { server } = await start({}, { closeGraceMs: 60_000 });
    const sid = await createSession(server.url);
    const peer = await rawUpgrade(server.port, `sid=${sid}`);
    expect(peer.status).toMatch(/^HTTP\/1\.1 101 /);
    const s = service(server.url);
    await s.opened;
    expect((await s.call('destroy_session', { session_id: sid })).type).toBe('session_destroyed');
    await peer.ended;
    expect(peer.frames.map((f) => f.opcode)).toEqual([0x1, 0x8]);
    expect(JSON.parse(peer.frames[0]!.payload.toString())).toMatchObject({ body: { type: 'session_expired', bound: true } });
    expect(peer.frames[1]!.payload.readUInt16BE(0)).toBe(4001);
    // The FIN came before the peer wrote anything after its upgrade request.
    expect(peer.socket.bytesWritten).toBe(peer.requestBytes);
    // The peer answers the close and ends its half: the connection is gone on both sides.
    peer.socket.end(Buffer.from([0x88, 0x80, 0, 0, 0, 0]));
    await peer.closed;
    // Only the service connection is left.
    await linksDownTo(server.links, 1);
  });

  it('cuts a peer that never ends its half of the connection once the close grace is over', async () => {
    const { server } = await start({}, { closeGraceMs: 300 });
    const sid = await createSession(server.url);
    // A peer that keeps its half open after the gateway's FIN (allowHalfOpen) and never answers the close.
    const socket = connect({ port: server.port, host: '127.0.0.1', allowHalfOpen: true });
    await once(socket, 'connect');
    const ended = once(socket, 'end');
    const upgraded = once(socket, 'data');
    socket.write(
      `GET / HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\nCookie: sid=${sid}\r\n\r\n`,
    );
    expect(String((await upgraded)[0])).toMatch(/^HTTP\/1\.1 101 /);
    const s = service(server.url);
    await s.opened;
    const t0 = performance.now();
    expect((await s.call('destroy_session', { session_id: sid })).type).toBe('session_destroyed');
    await ended;
    await linksDownTo(server.links, 1);
    const ms = performance.now() - t0;
    // Not at once (the grace was given), and not ws's default of 30 s.
    expect(ms).toBeGreaterThanOrEqual(250);
    expect(ms).toBeLessThan(10_000);
    expect(socket.writableEnded).toBe(false);
    socket.destroy();
  });

  it('sends the push and the close frame in one write, then the FIN', async () => {
    const { server } = await start();
    const sid = await createSession(server.url);
    const peer = await rawUpgrade(server.port, `sid=${sid}`);
    const s = service(server.url);
    await s.opened;
    // The chunks of each write the gateway makes on this peer's socket.
    const writes: number[] = [];
    const proto = Socket.prototype as unknown as Record<'_write' | '_writev', (this: Socket, ...a: unknown[]) => void>;
    const { _write: write, _writev: writev } = proto;
    const mine = (sock: Socket) => sock.remotePort === peer.socket.localPort;
    proto._write = function (...a) {
      if (mine(this)) writes.push(1);
      write.apply(this, a);
    };
    proto._writev = function (...a) {
      if (mine(this)) writes.push((a[0] as unknown[]).length);
      writev.apply(this, a);
    };
    try {
      expect((await s.call('destroy_session', { session_id: sid })).type).toBe('session_destroyed');
      await peer.ended;
    } finally {
      Object.assign(proto, { _write: write, _writev: writev });
    }
    expect(peer.frames.map((f) => f.opcode)).toEqual([0x1, 0x8]);
    // The push, the close frame's head and its payload.
    expect(writes).toEqual([3]);
  });

  it('closes with 4002 when the session is regenerated, and never tells the new id', async () => {
    const { server } = await start();
    const sid = await createSession(server.url);
    const b = browser(server.url, { cookie: `sid=${sid}` });
    await b.opened;
    const s = service(server.url);
    await s.opened;
    const r = await s.call('regenerate_session', { old_session_id: sid });
    expect(r.type).toBe('session_regenerated');
    expect((await b.next(isPush)).body).toMatchObject({ type: 'session_expired', bound: true, reason: 'regenerated' });
    const closed = await b.closed;
    expect(closed.code).toBe(4002);
    expect(b.raw.join('\n')).not.toContain(r.new_session_id as string);
    // The page reconnects with its new cookie and is bound to the new session.
    const again = browser(server.url, { cookie: `sid=${r.new_session_id as string}` });
    await again.opened;
    await s.call('destroy_session', { session_id: r.new_session_id });
    expect((await again.closed).code).toBe(4001);
  });

  it('closes with 4001 on revoke_user_sessions (reason revoked)', async () => {
    const { server } = await start();
    const sid = await createSession(server.url, 3600, 'alice');
    const b = browser(server.url, { cookie: `sid=${sid}` });
    await b.opened;
    const s = service(server.url);
    await s.opened;
    expect(await s.call('revoke_user_sessions', { user_id: 'alice' })).toMatchObject({ type: 'sessions_revoked', count: 1 });
    expect((await b.next(isPush)).body).toMatchObject({ type: 'session_expired', reason: 'revoked' });
    expect((await b.closed).code).toBe(4001);
  });

  it('warns GATEWAY_EXPIRY_WARNING seconds before the end, then ends it at the ttl (ManualClock)', async () => {
    const { server, clock } = await start({ GATEWAY_EXPIRY_WARNING: '60' });
    const sid = await createSession(server.url, 120);
    const b = browser(server.url, { cookie: `sid=${sid}` });
    await b.opened;
    await settle();
    clock.advance(59_999);
    await settle();
    expect(b.messages).toEqual([]);
    clock.advance(1);
    const warn = await b.next(isPush);
    expect(warn.body).toEqual({ type: 'session_expiring', session_id: warn.body.session_id, bound: true, expires_in: 60, msg_id: warn.body.msg_id });
    expect(warn.body.session_id).toMatch(/^[A-Za-z0-9_-]{43}$/);
    clock.advance(59_999);
    await settle();
    expect(b.messages).toEqual([]);
    clock.advance(1);
    expect((await b.next(isPush)).body).toMatchObject({ type: 'session_expired', bound: true, reason: 'ttl' });
    expect((await b.closed).code).toBe(4001);
  });

  it('a session shorter than the warning is warned at once with what is left', async () => {
    const { server, clock } = await start({ GATEWAY_EXPIRY_WARNING: '60' });
    const sid = await createSession(server.url, 10);
    const b = browser(server.url, { cookie: `sid=${sid}` });
    await b.opened;
    clock.advance(1);
    expect((await b.next(isPush)).body).toMatchObject({ type: 'session_expiring', expires_in: 10 });
  });

  it('GATEWAY_EXPIRY_WARNING=0 sends no warning', async () => {
    const { server, clock } = await start({ GATEWAY_EXPIRY_WARNING: '0' });
    const sid = await createSession(server.url, 5);
    const b = browser(server.url, { cookie: `sid=${sid}` });
    await b.opened;
    clock.advance(5000);
    expect((await b.next(isPush)).body).toMatchObject({ type: 'session_expired', reason: 'ttl' });
    expect(b.messages).toEqual([]);
  });

  it('a cookie naming no live session: the socket opens, then closes with 4001', async () => {
    const { server } = await start();
    const b = browser(server.url, { cookie: 'sid=never-issued' });
    await b.opened;
    expect(await b.closed).toEqual({ code: 4001, reason: 'Session not found or expired' });
  });

  it('uses GATEWAY_SESSION_COOKIE, and a service connection is never bound', async () => {
    const { server } = await start({ GATEWAY_SESSION_COOKIE: '__Host-auth' });
    const sid = await createSession(server.url);
    const b = browser(server.url, { cookie: `sid=${sid}; __Host-auth=${sid}` });
    await b.opened;
    const plain = browser(server.url, { cookie: `sid=${sid}` });
    await plain.opened;
    const s = service(server.url);
    await s.opened;
    await s.call('destroy_session', { session_id: sid });
    expect((await b.closed).code).toBe(4001);
    await settle(50);
    expect(plain.messages).toEqual([]);
    expect(plain.ws.readyState).toBe(1);
  });

  it('a bound connection may still subscribe to sessions by id, with pushes to its src', async () => {
    const { server } = await start();
    const mine = await createSession(server.url);
    const other = await createSession(server.url);
    const b = browser(server.url, { cookie: `sid=${mine}` });
    await b.opened;
    expect((await b.call('subscribe_session', { session_id: other }, 'tab-1')).type).toBe('subscribed');
    const s = service(server.url);
    await s.opened;
    await s.call('destroy_session', { session_id: other });
    expect(await b.next(isPush)).toMatchObject({ dest: 'tab-1', body: { type: 'session_expired', session_id: other, reason: 'destroyed' } });
    expect(b.ws.readyState).toBe(1);
  });

  it('a bound connection that also subscribes to its own session is told the end in both forms before the close', async () => {
    const { server } = await start();
    const mine = await createSession(server.url);
    const b = browser(server.url, { cookie: `sid=${mine}` });
    await b.opened;
    expect((await b.call('subscribe_session', { session_id: mine }, 'tab-1')).type).toBe('subscribed');
    const s = service(server.url);
    await s.opened;
    await s.call('destroy_session', { session_id: mine });
    expect(await b.closed).toEqual({ code: 4001, reason: 'Session ended' });
    const ends = b.messages.filter((m) => m.body.type === 'session_expired');
    expect(ends.map((m) => m.dest).sort()).toEqual(['client', 'tab-1']);
    expect(ends.find((m) => m.dest === 'tab-1')!.body).toMatchObject({ session_id: mine, reason: 'destroyed' });
    expect(ends.find((m) => m.dest === 'client')!.body).toMatchObject({ bound: true, reason: 'destroyed' });
  });
});

async function linksDownTo(set: ReadonlySet<unknown>, n: number): Promise<void> {
  while (set.size > n) await settle(10);
}
