import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import {
  closeKind,
  GatewayClient,
  GatewayConnectionError,
  GatewayRequestError,
  GatewayTimeoutError,
  type ClientEvents,
  type WebSocketConstructor,
} from '../src/index.js';
import { createSession, eventually, scriptedServer, SERVICE_KEY, service, silentServer, start, stopAll } from './helpers.js';

const clients: GatewayClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await stopAll();
});

const Ws = WebSocket as unknown as WebSocketConstructor;

function client(url: string, o: Partial<ConstructorParameters<typeof GatewayClient>[0]> = {}): GatewayClient {
  const c = new GatewayClient({ url, WebSocket: Ws, ...o });
  clients.push(c);
  return c;
}

/** A WebSocket constructor that sends a Cookie, as a browser would for its origin (read at each connect). */
const withCookie = (cookie: string | (() => string)): WebSocketConstructor =>
  class extends WebSocket {
    constructor(url: string) {
      super(url, { headers: { Cookie: typeof cookie === 'string' ? cookie : cookie() } });
    }
  } as unknown as WebSocketConstructor;

/** Collects a client's events of one kind. */
function record<K extends keyof ClientEvents>(c: GatewayClient, event: K): ClientEvents[K][] {
  const seen: ClientEvents[K][] = [];
  c.on(event, (v) => seen.push(v));
  return seen;
}

describe('GatewayClient', () => {
  it('refuses bad options at construction', () => {
    expect(() => new GatewayClient({ url: 'http://x' })).toThrow('The url option must be a ws:// or wss:// URL.');
    expect(() => new GatewayClient({ url: 'ws://x' })).toThrow(/No WebSocket available/);
    const bad: [Partial<ConstructorParameters<typeof GatewayClient>[0]>, string][] = [
      [{ timeoutMs: 0 }, 'The timeoutMs option must be a positive number of ms, at most 2147483647.'],
      [{ timeoutMs: 2 ** 31 }, 'The timeoutMs option must be a positive number of ms, at most 2147483647.'],
      [{ heartbeat: { intervalMs: Number.NaN } }, 'The heartbeat.intervalMs option must be a positive number of ms, at most 2147483647.'],
      [{ regenerationWindowMs: -1 }, 'The regenerationWindowMs option must be a non-negative number of ms, at most 2147483647.'],
      [{ reconnect: { initialDelayMs: -100 } }, 'The reconnect.initialDelayMs option must be a positive number of ms, at most 2147483647.'],
      [{ reconnect: { maxDelayMs: Infinity } }, 'The reconnect.maxDelayMs option must be a positive number of ms, at most 2147483647.'],
      [{ reconnect: { restartJitterMs: -1 } }, 'The reconnect.restartJitterMs option must be a non-negative number of ms, at most 2147483647.'],
      [{ reconnect: { factor: 0.5 } }, 'The reconnect.factor option must be a number from 1 to 100.'],
      // Conflicting: the first delay would silently be the cap.
      [{ reconnect: { initialDelayMs: 5000, maxDelayMs: 1000 } }, 'The reconnect.initialDelayMs option (5000) must not exceed reconnect.maxDelayMs (1000).'],
      [{ reconnect: { initialDelayMs: 60_000 } }, 'The reconnect.initialDelayMs option (60000) must not exceed reconnect.maxDelayMs (30000).'],
    ];
    for (const [o, message] of bad) expect(() => new GatewayClient({ url: 'ws://x', WebSocket: Ws, ...o })).toThrow(message);
    expect(() => new GatewayClient({ url: 'ws://x', WebSocket: Ws, reconnect: { resetAfterMs: -1 } })).toThrow(
      'The reconnect.resetAfterMs option must be a non-negative number of ms, at most 2147483647.',
    );
    expect(() => new GatewayClient({ url: 'ws://x', WebSocket: Ws, timeoutMs: 2 ** 31 - 1, reconnect: { factor: 1, restartJitterMs: 0 } })).not.toThrow();
    // A cap alone below the default first delay is a cap from the first delay on.
    expect(() => new GatewayClient({ url: 'ws://x', WebSocket: Ws, reconnect: { maxDelayMs: 100 } })).not.toThrow();
  });

  it('close() while the socket is still connecting ends quietly: connect() rejects, no error escapes', async () => {
    const { server } = await start();
    const c = client(server.url, { serviceKey: SERVICE_KEY });
    const connecting = c.connect().then(
      () => 'opened',
      (e: unknown) => e,
    );
    c.close();
    expect(await connecting).toBeInstanceOf(GatewayConnectionError);
    // Node's ws reports the aborted handshake on a later tick: with no listener it would end the process.
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(c.connected).toBe(false);
  });

  it('connect() waits through failed attempts while the gateway is unreachable; connect({ timeoutMs }) gives up, saying why, and the client goes on trying', async () => {
    const { server } = await start();
    const port = server.port;
    await stopAll(); // nothing listens there now
    const c = client(`ws://127.0.0.1:${port}/`, { serviceKey: SERVICE_KEY, reconnect: { initialDelayMs: 20, maxDelayMs: 40 } });
    const closes = record(c, 'close');
    let waitingSettled = false;
    const waiting = c.connect().then(
      () => (waitingSettled = true),
      () => (waitingSettled = true),
    );
    const started = Date.now();
    const err = await c.connect({ timeoutMs: 300 }).then(
      () => 'opened',
      (e: unknown) => e,
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(err).toBeInstanceOf(GatewayConnectionError);
    expect((err as Error).message).toBe(
      'The connection did not open within 300 ms (the last attempt closed with code 1006); the client goes on trying until close()',
    );
    expect(closes.length).toBeGreaterThanOrEqual(2);
    expect(closes.every((x) => x.willReconnect)).toBe(true);
    // Only that caller gave up: a connect() without a limit still waits, and the retries go on.
    expect(waitingSettled).toBe(false);
    const before = closes.length;
    await eventually(() => expect(closes.length).toBeGreaterThan(before));
    c.close();
    await waiting;
    // A limit that is not a positive number of ms rejects (never throws).
    await expect(c.connect({ timeoutMs: -1 })).rejects.toThrow('The timeoutMs option must be a positive number of ms, at most 2147483647.');
    c.close();
  });

  it('connect({ timeoutMs }) resolves as connect() does once the socket opens in time', async () => {
    const { server } = await start();
    const c = client(server.url, { serviceKey: SERVICE_KEY });
    await c.connect({ timeoutMs: 5000 });
    expect(c.connected).toBe(true);
    await c.connect({ timeoutMs: 1 }); // already open
  });

  it('has a typed method for every request (service role)', async () => {
    const { server } = await start();
    const c = client(server.url, { serviceKey: SERVICE_KEY });
    await c.connect();
    expect(await c.init('n1', ['n1'])).toMatchObject({ type: 'init_ok' });
    const s = await c.createSession('alice', { data: { plan: 'pro' }, ttl: 600 });
    expect(s).toMatchObject({ type: 'session_created', expires_in: 600 });
    expect(await c.validateSession(s.session_id)).toMatchObject({ type: 'session_valid', user_id: 'alice', data: { plan: 'pro' } });
    const g = await c.regenerateSession(s.session_id);
    if (g.type !== 'session_regenerated') throw new Error(g.error);
    const sid = g.new_session_id;
    expect(await c.subscribeSession(sid)).toMatchObject({ type: 'subscribed', session_id: sid });
    expect(c.subscriptions.has(sid)).toBe(true);
    expect(await c.unsubscribeSession(sid)).toMatchObject({ type: 'unsubscribed' });
    const list = await c.listSessions('alice');
    expect(list.sessions).toHaveLength(1);
    const t = await c.exchangeSession(sid);
    if (t.type !== 'token_generated') throw new Error(t.error);
    expect(await c.verifyToken(t.access_token)).toMatchObject({ type: 'token_valid', payload: { sub: 'alice' } });
    expect(await c.refreshToken(t.refresh_token)).toMatchObject({ type: 'token_refreshed' });
    expect(await c.refreshToken(t.refresh_token)).toMatchObject({ type: 'token_invalid' }); // reuse
    const a = await c.generateAccessToken({ sub: 'bob' });
    expect(await c.revokeToken(a.access_token)).toEqual({ type: 'token_revoked', in_reply_to: expect.any(Number) });
    expect(await c.verifyToken(a.access_token)).toMatchObject({ type: 'token_invalid', error: 'Token revoked' });
    expect(await c.destroySessionHandle('alice', list.sessions[0]!.handle)).toMatchObject({ type: 'session_destroyed' });
    const s2 = await c.createSession('alice');
    expect(await c.revokeUserSessions('alice')).toMatchObject({ type: 'sessions_revoked', count: 1 });
    expect(await c.destroySession(s2.session_id)).toMatchObject({ type: 'session_destroyed' });
  });

  it('rejects with a clear GatewayRequestError on a protocol error', async () => {
    const { server } = await start();
    const c = client(server.url);
    await c.connect();
    const err = await c.createSession('u').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatewayRequestError);
    expect(err).toMatchObject({ kind: 'request', code: 1001, codeName: 'FORBIDDEN', requestType: 'create_session' });
    expect((err as Error).message).toBe('create_session failed: error 1001 (FORBIDDEN): Message type "create_session" is not allowed on this connection');
  });

  it("a request over the size limit is rejected with the gateway's error 12, whatever the size of its fields", async () => {
    const { server } = await start({ GATEWAY_MAX_MESSAGE_BYTES: '4096' });
    for (const [serviceKey, size] of [
      [undefined, 5000],
      [undefined, 40_000],
      [SERVICE_KEY, 40_000],
    ] as const) {
      const c = client(server.url, serviceKey === undefined ? { timeoutMs: 5000 } : { timeoutMs: 5000, serviceKey });
      const unreadable = record(c, 'error');
      await c.connect();
      // msg_id and type are not overridden by fields of the same names either.
      const err = await c.request('verify_token', { token: 'x'.repeat(size), msg_id: 'no', type: 'no' } as never).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GatewayRequestError);
      expect(err).toMatchObject({ code: 12, requestType: 'verify_token' });
      expect(unreadable).toEqual([]);
    }
  });

  it('fields that JSON cannot encode reject the request: a promise, never a throw', async () => {
    const { server } = await start();
    const c = client(server.url);
    await c.connect();
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    for (const fields of [{ token: 1n }, { token: cycle }]) {
      const reply = c.request('verify_token', fields as never);
      await expect(reply).rejects.toBeInstanceOf(TypeError);
    }
    expect(await c.verifyToken('abc')).toMatchObject({ type: 'token_invalid' });
  });

  it('rejects with GatewayTimeoutError when no reply comes in time', async () => {
    const c = client(await silentServer(), { timeoutMs: 100 });
    await c.connect();
    const err = await c.validateSession('x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatewayTimeoutError);
    expect((err as Error).message).toBe('validate_session got no reply within 100 ms');
  });

  it('emits session_expired for subscribed sessions', async () => {
    const { server } = await start();
    const sid = await createSession(server.url);
    const c = client(server.url);
    const ended = record(c, 'session_expired');
    await c.connect();
    await c.subscribeSession(sid);
    const s = service(server.url);
    await s.opened;
    await s.call('destroy_session', { session_id: sid });
    await eventually(() => expect(ended).toEqual([{ sessionId: sid, bound: false, reason: 'destroyed', pushed: true }]));
    expect(c.subscriptions.has(sid)).toBe(false);
  });

  it('bound (cookie) connection: session_expiring, then session_expired; no reconnect after 4001', async () => {
    const { server, clock } = await start({ GATEWAY_EXPIRY_WARNING: '5' });
    const sid = await createSession(server.url, 10);
    const c = client(server.url, { WebSocket: withCookie(`sid=${sid}`), reconnect: { initialDelayMs: 10 } });
    const expiring = record(c, 'session_expiring');
    const ended = record(c, 'session_expired');
    const closes = record(c, 'close');
    await c.connect();
    clock.advance(5000);
    await eventually(() => expect(expiring).toEqual([{ bound: true, expiresIn: 5 }]));
    clock.advance(5000);
    await eventually(() => expect(closes).toEqual([{ code: 4001, reason: 'Session ended', kind: 'ended', willReconnect: false }]));
    expect(ended).toEqual([{ bound: true, reason: 'ttl', pushed: true }]);
    expect(c.connected).toBe(false);
    await expect(c.validateSession('x')).rejects.toBeInstanceOf(GatewayConnectionError);
  });

  it('extendSession from the bound browser: every follower told (session_extended); updateSession and revokeUserTokens (service)', async () => {
    const { server } = await start();
    const sid = await createSession(server.url, 600);
    const page = client(server.url, { WebSocket: withCookie(`sid=${sid}`) });
    const svc = client(server.url, { serviceKey: SERVICE_KEY });
    const extended = record(page, 'session_extended');
    const updated = record(page, 'session_updated');
    const svcUpdated = record(svc, 'session_updated');
    await page.connect();
    await svc.connect();
    await svc.subscribeSession(sid);
    const r = await page.extendSession({ ttl: 1200 });
    expect(r).toMatchObject({ type: 'session_extended', expires_in: 1200 });
    await eventually(() => expect(extended).toEqual([{ bound: true, expiresIn: 1200 }]));
    expect(await svc.updateSession(sid, { role: 'admin' })).toMatchObject({ type: 'session_updated' });
    // The bound page is told of the change, never the data; the subscriber that named the id gets it.
    await eventually(() => expect(updated).toEqual([{ bound: true }]));
    await eventually(() => expect(svcUpdated).toEqual([{ sessionId: sid, bound: false, data: { role: 'admin' } }]));
    expect(await svc.revokeUserTokens('user-1')).toMatchObject({ type: 'tokens_revoked', before: expect.any(Number) });
  });

  it('classifies close codes: 4001 final, 4002 regenerated, the rest retried', () => {
    expect(closeKind(4001)).toBe('ended');
    expect(closeKind(4002)).toBe('regenerated');
    for (const code of [1001, 1006, 1011, 1012, 1013]) expect(closeKind(code)).toBe('retry');
  });

  it('after 4002: session_regenerated, not an end; 4001 means "not yet" until the new cookie arrives', async () => {
    const { server } = await start();
    const sid = await createSession(server.url);
    let cookie = `sid=${sid}`;
    const sent: string[] = []; // the cookie of every socket, in order
    const c = client(server.url, { WebSocket: withCookie(() => (sent.push(cookie), cookie)) });
    const opens = record(c, 'open');
    const closes = record(c, 'close');
    const ended = record(c, 'session_expired');
    const regenerated = record(c, 'session_regenerated');
    await c.connect();
    const s = service(server.url);
    const r = await s.call('regenerate_session', { old_session_id: sid });
    expect(r.type).toBe('session_regenerated');
    await eventually(() => expect(regenerated).toEqual([{ bound: true }]));
    // The new cookie reaches the browser 400 ms later: meanwhile the old one is refused (4001).
    await eventually(() => expect(closes.filter((x) => x.code === 4001).length).toBeGreaterThanOrEqual(1), 3000);
    cookie = `sid=${r.new_session_id as string}`;
    // Open on a socket that carried the new cookie: bound to the new session.
    await eventually(() => expect([c.connected, sent.at(-1)]).toEqual([true, cookie]), 5000);
    expect(opens.at(-1)).toEqual({ reconnected: true });
    expect(closes[0]).toEqual({ code: 4002, reason: 'Session regenerated: reconnect with the new cookie', kind: 'regenerated', willReconnect: true });
    expect(closes.slice(1).every((x) => x.code === 4001 && x.willReconnect)).toBe(true);
    expect(ended).toEqual([]);
    // Bound to the new session: its end is pushed.
    await s.call('destroy_session', { session_id: r.new_session_id });
    await eventually(() => expect(ended).toEqual([{ bound: true, reason: 'destroyed', pushed: true }]));
  });

  it('after 4002, when the new cookie never comes: the end is reported once the window is over', async () => {
    const { server } = await start();
    const sid = await createSession(server.url);
    const c = client(server.url, { WebSocket: withCookie(`sid=${sid}`), regenerationWindowMs: 600 });
    const ended = record(c, 'session_expired');
    const closes = record(c, 'close');
    await c.connect();
    const s = service(server.url);
    await s.call('regenerate_session', { old_session_id: sid });
    await eventually(() => expect(ended).toEqual([{ bound: true, reason: 'regenerated', pushed: false }]), 5000);
    expect(closes.at(-1)).toMatchObject({ code: 4001, kind: 'ended', willReconnect: false });
  });

  it('a stale cookie on the first connection is no session: no session_expired', async () => {
    const { server } = await start();
    const sid = await createSession(server.url);
    await service(server.url).call('destroy_session', { session_id: sid });
    const c = client(server.url, { WebSocket: withCookie(`sid=${sid}`) });
    const ended = record(c, 'session_expired');
    const closes = record(c, 'close');
    await c.connect().catch(() => undefined);
    await eventually(() => expect(closes).toEqual([{ code: 4001, reason: 'Session not found or expired', kind: 'ended', willReconnect: false }]));
    expect(ended).toEqual([]);
    expect(c.hasSession).toBe(false);
    // The same close when the page knew it held a session is that session's end.
    const d = client(server.url, { WebSocket: withCookie(`sid=${sid}`) });
    const endedD = record(d, 'session_expired');
    await d.connect({ session: true }).catch(() => undefined);
    await eventually(() => expect(endedD).toEqual([{ bound: true, reason: 'unknown', pushed: false }]));
  });

  it('re-checks the session before a reconnect: an end while away (cookie gone) is reported', async () => {
    const { server } = await start();
    let live = true;
    const c = client(server.url, { checkSession: () => Promise.resolve(live), reconnect: { initialDelayMs: 20 } });
    const ended = record(c, 'session_expired');
    const opens = record(c, 'open');
    await c.connect();
    expect(c.hasSession).toBe(true);
    live = false; // the session ended while the link was down, and the browser dropped its cookie
    [...server.links].find((l) => l.role === 'browser')!.close(1012, 'Service restart', 'test');
    await eventually(() => expect(opens).toHaveLength(2));
    expect(ended).toEqual([{ bound: true, reason: 'unknown', pushed: false }]);
  });

  it('a socket that opens unbound where a session was known (the browser dropped its expired cookie) reports the end', async () => {
    const { server } = await start();
    const sid = await createSession(server.url);
    let cookie = `sid=${sid}`;
    const c = client(server.url, { WebSocket: withCookie(() => cookie), reconnect: { initialDelayMs: 20 } });
    const ended = record(c, 'session_expired');
    const bound = record(c, 'bound');
    await c.connect({ session: true });
    await eventually(() => expect(bound).toEqual([{ bound: true }]));
    cookie = ''; // its Max-Age passed while the link was down: no 4001 at the next open, and no push
    [...server.links].find((l) => l.role === 'browser')!.close(1012, 'Service restart', 'test');
    await eventually(() => expect(bound).toEqual([{ bound: true }, { bound: false }]));
    expect(ended).toEqual([{ bound: true, reason: 'unknown', pushed: false }]);
    expect(c.hasSession).toBe(false);
    expect(c.connected).toBe(true);
    // A page that knew of no session learns only that it has none; one opened with a cookie learns it has one.
    const d = client(server.url);
    const boundD = record(d, 'bound');
    await d.connect();
    await eventually(() => expect(boundD).toEqual([{ bound: false }]));
    expect(d.hasSession).toBe(false);
    const e = client(server.url, { WebSocket: withCookie(`sid=${sid}`) });
    const boundE = record(e, 'bound');
    await e.connect();
    await eventually(() => expect(boundE).toEqual([{ bound: true }]));
    expect(e.hasSession).toBe(true);
  });

  it('heartbeat: a link that answers nothing is declared dead and replaced', async () => {
    const c = client(await silentServer(), { heartbeat: { intervalMs: 100, timeoutMs: 150 }, reconnect: { initialDelayMs: 10_000, maxDelayMs: 10_000 } });
    const closes = record(c, 'close');
    await c.connect();
    const t0 = Date.now();
    await eventually(() => expect(closes).toEqual([{ code: 1006, reason: 'heartbeat timeout', kind: 'retry', willReconnect: true }]), 3000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(200);
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('heartbeat: a gateway that answers keeps the link', async () => {
    const { server } = await start();
    const c = client(server.url, { heartbeat: { intervalMs: 50, timeoutMs: 200 } });
    const closes = record(c, 'close');
    await c.connect();
    const before = await server.metrics.text();
    const inits = (t: string) => Number(/gateway_messages_total\{type="init",outcome="init_ok"\} (\d+)/.exec(t)?.[1] ?? 0);
    await eventually(async () => expect(inits(await server.metrics.text()) - inits(before)).toBeGreaterThanOrEqual(5), 5000);
    expect(closes).toEqual([]);
    expect(c.connected).toBe(true);
  });

  it('reconnects with backoff, re-subscribes to live sessions only, and reports ends it missed', async () => {
    const { server } = await start();
    const live = await createSession(server.url);
    const endedEarlier = await createSession(server.url);
    const endedWhileAway = await createSession(server.url);
    const c = client(server.url, { reconnect: { initialDelayMs: 300, maxDelayMs: 300 } });
    const ended = record(c, 'session_expired');
    const reconnecting = record(c, 'reconnecting');
    const opens = record(c, 'open');
    await c.connect();
    for (const id of [live, endedEarlier, endedWhileAway]) await c.subscribeSession(id);
    const s = service(server.url);
    await s.opened;
    await s.call('destroy_session', { session_id: endedEarlier });
    await eventually(() => expect(ended).toHaveLength(1));
    const before = await server.metrics.text();
    const subs = (t: string) => Number(/gateway_messages_total\{type="subscribe_session",outcome="subscribed"\} (\d+)/.exec(t)?.[1] ?? 0);
    const invalid = (t: string) => Number(/gateway_messages_total\{type="subscribe_session",outcome="session_invalid"\} (\d+)/.exec(t)?.[1] ?? 0);

    // The server drops the socket (an internal error; 1012, a restart, has its own jitter: below).
    const pending = c.validateSession(live);
    [...server.links].find((l) => l.role === 'browser')!.close(1011, 'Internal error', 'test');
    await expect(pending).rejects.toBeInstanceOf(GatewayConnectionError);
    await eventually(() => expect(reconnecting).toHaveLength(1));
    expect(reconnecting[0]!.delayMs).toBeGreaterThanOrEqual(150);
    expect(reconnecting[0]!.delayMs).toBeLessThanOrEqual(300);
    await s.call('destroy_session', { session_id: endedWhileAway });
    // A request made while away waits for the new socket.
    const queued = c.validateSession(live);

    await eventually(() => expect(opens).toEqual([{ reconnected: false }, { reconnected: true }]));
    expect((await queued).type).toBe('session_valid');
    await eventually(() => expect(ended).toHaveLength(2));
    expect(ended[1]).toEqual({ sessionId: endedWhileAway, bound: false, reason: 'unknown', pushed: false });
    expect([...c.subscriptions]).toEqual([live]);
    const after = await server.metrics.text();
    expect(subs(after) - subs(before)).toBe(1); // `live` only: `endedEarlier` was not asked for again
    expect(invalid(after) - invalid(before)).toBe(1); // `endedWhileAway`, found ended
    // And the re-subscription works: the next end is pushed.
    await s.call('destroy_session', { session_id: live });
    await eventually(() => expect(ended[2]).toEqual({ sessionId: live, bound: false, reason: 'destroyed', pushed: true }));
  });

  it('an unsubscribe made while the subscribe waits for its reply wins: not followed, not subscribed again after a reconnect', async () => {
    const { server } = await start();
    const [dropped, kept] = [await createSession(server.url), await createSession(server.url)];
    const c = client(server.url, { reconnect: { initialDelayMs: 20, maxDelayMs: 20 } });
    const ended = record(c, 'session_expired');
    const opens = record(c, 'open');
    await c.connect();
    const subscribing = c.subscribeSession(dropped);
    await c.unsubscribeSession(dropped);
    expect((await subscribing).type).toBe('subscribed');
    await c.subscribeSession(kept);
    expect([...c.subscriptions]).toEqual([kept]);
    const subs = async () => Number(/gateway_messages_total\{type="subscribe_session",outcome="subscribed"\} (\d+)/.exec(await server.metrics.text())?.[1]);
    const before = await subs();
    [...server.links].find((l) => l.role === 'browser')!.close(1011, 'Internal error', 'test');
    await eventually(() => expect(opens).toHaveLength(2));
    await eventually(async () => expect(await subs()).toBe(before + 1));
    // Pushed on the one connection in the order of the ends: had `dropped` been followed, its end would come first.
    const s = service(server.url);
    await s.opened;
    await s.call('destroy_session', { session_id: dropped });
    await s.call('destroy_session', { session_id: kept });
    await eventually(() => expect(ended).toContainEqual({ sessionId: kept, bound: false, reason: 'destroyed', pushed: true }));
    expect(ended).toHaveLength(1);
    expect([...c.subscriptions]).toEqual([]);
  });

  it('resubscribe: false: the subscriptions are forgotten at the close, and none is sent again after the reconnect', async () => {
    const { server } = await start();
    const id = await createSession(server.url);
    const c = client(server.url, { reconnect: { initialDelayMs: 20, maxDelayMs: 20 }, resubscribe: false });
    const opens = record(c, 'open');
    await c.connect();
    expect(await c.subscribeSession(id)).toMatchObject({ type: 'subscribed' });
    expect([...c.subscriptions]).toEqual([id]);
    const subs = async () =>
      Number(/gateway_messages_total\{type="subscribe_session",outcome="subscribed"\} (\d+)/.exec(await server.metrics.text())?.[1] ?? 0);
    const before = await subs();

    [...server.links].find((l) => l.role === 'browser')!.close(1011, 'Internal error', 'test');
    await eventually(() => expect(opens).toHaveLength(2));
    expect(c.subscriptions.size).toBe(0);
    // A request after the reconnect is answered: anything re-sent before it would have been counted by then.
    expect((await c.validateSession(id)).type).toBe('session_valid');
    expect(await subs()).toBe(before);
  });

  it('a re-subscription that fails after a reconnect (the store away: error 11) is tried again on that connection until it takes', async () => {
    // Connection 1 takes the subscription and drops; on connection 2 the first try is error 11,
    // the next one (1 s later) is taken, and the session's end is then pushed.
    const subscribes: number[] = [];
    const url = await scriptedServer((ws, n) => {
      ws.on('message', (data: Buffer) => {
        const m = JSON.parse(data.toString()) as { src: string; body: { type: string; msg_id: number; session_id: string } };
        if (m.body.type !== 'subscribe_session') return;
        subscribes.push(n);
        const reply = (body: Record<string, unknown>) =>
          ws.send(JSON.stringify({ src: 'gateway', dest: m.src, body: { ...body, in_reply_to: m.body.msg_id } }));
        if (n === 1) {
          reply({ type: 'subscribed', session_id: m.body.session_id, expires_in: 60 });
          setTimeout(() => ws.terminate(), 10);
        } else if (subscribes.filter((k) => k === 2).length === 1) {
          reply({ type: 'error', code: 11, text: 'Store unavailable' });
        } else {
          reply({ type: 'subscribed', session_id: m.body.session_id, expires_in: 60 });
          setTimeout(
            () =>
              ws.send(JSON.stringify({ src: 'gateway', dest: m.src, body: { type: 'session_expired', session_id: m.body.session_id, reason: 'destroyed' } })),
            10,
          );
        }
      });
    });
    const c = client(url, { reconnect: { initialDelayMs: 20, maxDelayMs: 20 } });
    const ended = record(c, 'session_expired');
    const errors = record(c, 'error');
    await c.connect();
    expect(await c.subscribeSession('s-1')).toMatchObject({ type: 'subscribed' });
    await eventually(() => expect(ended).toEqual([{ sessionId: 's-1', bound: false, reason: 'destroyed', pushed: true }]), 5000);
    expect(subscribes).toEqual([1, 2, 2]);
    expect(errors.map((e) => (e as GatewayRequestError).code)).toEqual([11]);
  });

  it('an upgrade never answered (a silent path) is given up after timeoutMs and tried again: requests waiting for it are served once a path answers', async () => {
    const { server } = await start();
    // A TCP proxy that accepts and stays silent until `through` is set, then passes new connections on.
    const accepted: Socket[] = [];
    let through = false;
    const proxy = createServer((a) => {
      accepted.push(a);
      if (!through) return;
      const b = connect(server.port, '127.0.0.1');
      accepted.push(b);
      a.pipe(b).pipe(a);
      a.on('error', () => b.destroy());
      b.on('error', () => a.destroy());
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const c = client(`ws://127.0.0.1:${(proxy.address() as AddressInfo).port}/`, { timeoutMs: 400, reconnect: { initialDelayMs: 50, maxDelayMs: 50 } });
      const closes = record(c, 'close');
      const opened = c.connect();
      await eventually(() => expect(closes).toContainEqual({ code: 1006, reason: 'connect timeout', kind: 'retry', willReconnect: true }), 2000);
      await eventually(() => expect(accepted.length).toBeGreaterThanOrEqual(2), 2000);
      through = true;
      // Longer than one attempt's limit: it waits for the socket through the attempt still hanging.
      const reply = c.request('verify_token', { token: 'abc' }, { timeoutMs: 3000 });
      await opened;
      expect(await reply).toMatchObject({ type: 'token_invalid' });
    } finally {
      for (const sock of accepted) sock.destroy();
      proxy.close();
    }
  });

  it('backs off exponentially while the gateway is down', async () => {
    const { server } = await start();
    const c = client(server.url, { reconnect: { initialDelayMs: 20, maxDelayMs: 80, factor: 2, restartJitterMs: 50 } });
    const reconnecting = record(c, 'reconnecting');
    await c.connect();
    await stopAll(); // the server goes away (closing with 1012) and stays away
    await eventually(() => expect(reconnecting.length).toBeGreaterThanOrEqual(5), 3000);
    c.close();
    // The first wait is the restart jitter (1012: 0 to restartJitterMs); then the backoff.
    expect(reconnecting[0]!.delayMs).toBeLessThanOrEqual(50);
    const delays = reconnecting.slice(1).map((r) => r.delayMs);
    expect(delays[0]).toBeLessThanOrEqual(20);
    expect(delays[1]).toBeGreaterThanOrEqual(20);
    expect(delays[2]).toBeGreaterThanOrEqual(40);
    expect(Math.max(...delays)).toBeLessThanOrEqual(80);
  });

  it('a gateway that accepts and closes at once meets a growing backoff, not a reconnect every few ms; attempt counts from 1', async () => {
    const url = await scriptedServer((ws) => ws.close(1008, 'Too many connections follow this session'));
    const c = client(url, { reconnect: { initialDelayMs: 20, maxDelayMs: 5000 } });
    const reconnecting = record(c, 'reconnecting');
    const opens = record(c, 'open');
    await c.connect();
    await eventually(() => expect(reconnecting.length).toBeGreaterThanOrEqual(6), 10_000);
    c.close();
    expect(opens.length).toBeGreaterThanOrEqual(6); // each attempt opened: an open alone does not reset the backoff
    expect(reconnecting.slice(0, 6).map((r) => r.attempt)).toEqual([1, 2, 3, 4, 5, 6]);
    // Each delay is half to all of 20 ms × 2^n.
    reconnecting.slice(0, 6).forEach((r, n) => {
      expect(r.delayMs).toBeGreaterThanOrEqual(10 * 2 ** n);
      expect(r.delayMs).toBeLessThanOrEqual(20 * 2 ** n);
    });
  });

  it('the backoff starts again once a connection has stayed open reconnect.resetAfterMs', async () => {
    // Connections 1 to 3 are closed at once, the 4th after 700 ms, the 5th is kept.
    const url = await scriptedServer((ws, n) => {
      if (n <= 3) ws.close(1011, 'Internal error');
      else if (n === 4) setTimeout(() => ws.close(1011, 'Internal error'), 700);
    });
    const c = client(url, { reconnect: { initialDelayMs: 20, maxDelayMs: 5000, resetAfterMs: 400 } });
    const reconnecting = record(c, 'reconnecting');
    const opens = record(c, 'open');
    await c.connect();
    await eventually(() => expect(opens).toHaveLength(5), 10_000);
    expect(reconnecting.map((r) => r.attempt)).toEqual([1, 2, 3, 1]);
    expect(reconnecting[2]!.delayMs).toBeGreaterThanOrEqual(40);
    expect(reconnecting[3]!.delayMs).toBeLessThanOrEqual(20);
  });

  it('1012: the first reconnect waits the restart jitter; a 1012 right after the open backs off', async () => {
    const url = await scriptedServer((ws) => ws.close(1012, 'Service restart'));
    const c = client(url, { reconnect: { initialDelayMs: 20, maxDelayMs: 5000, restartJitterMs: 0 } });
    const reconnecting = record(c, 'reconnecting');
    await c.connect();
    await eventually(() => expect(reconnecting.length).toBeGreaterThanOrEqual(4), 10_000);
    c.close();
    expect(reconnecting.slice(0, 4).map((r) => r.attempt)).toEqual([1, 2, 3, 4]);
    expect(reconnecting[0]!.delayMs).toBe(0); // restartJitterMs: 0
    expect(reconnecting[1]!.delayMs).toBeGreaterThanOrEqual(10);
    expect(reconnecting[3]!.delayMs).toBeGreaterThanOrEqual(40);
  });

  it('a frame whose body is null, or whose type is not a string, is an error event (nothing thrown)', async () => {
    const url = await scriptedServer((ws) => {
      ws.send('{"body":null}');
      ws.send('null');
      ws.send('{"body":{"type":5}}');
    });
    const c = client(url, { reconnect: false });
    const errors = record(c, 'error');
    await c.connect();
    await eventually(() => expect(errors).toHaveLength(3));
    expect(errors.map((e) => e.message)).toEqual(Array(3).fill('The gateway sent a frame that is not a message'));
  });

  it('a malformed error reply rejects with a clear error; a push without its fields is an error event, not a session event', async () => {
    const url = await scriptedServer((ws) =>
      ws.on('message', (d: Buffer) => {
        const m = JSON.parse(String(d)) as { body: { type: string; msg_id: number } };
        if (m.body.type === 'verify_token') ws.send(JSON.stringify({ body: { type: 'error', in_reply_to: m.body.msg_id } }));
        if (m.body.type === 'validate_session') {
          ws.send(JSON.stringify({ body: { type: 'session_expired' } }));
          ws.send(JSON.stringify({ body: { type: 'session_expired', session_id: 's-1' } }));
          ws.send(JSON.stringify({ body: { type: 'session_expiring', bound: true } }));
          ws.send(JSON.stringify({ body: { type: 'session_extended', session_id: 's-1' } }));
          ws.send(JSON.stringify({ body: { type: 'session_updated', bound: 'yes' } }));
          ws.send(JSON.stringify({ body: { type: 'session_expired', session_id: 's-2', reason: 'ttl' } }));
        }
      }),
    );
    const c = client(url, { serviceKey: SERVICE_KEY, reconnect: false });
    const errors = record(c, 'error');
    const ended = record(c, 'session_expired');
    const expiring = record(c, 'session_expiring');
    const extended = record(c, 'session_extended');
    const updated = record(c, 'session_updated');
    await c.connect();
    const err = await c.verifyToken('abc').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatewayRequestError);
    expect((err as Error).message).toBe('verify_token failed: error 0 (UNKNOWN): the gateway sent an error reply without its code or text');
    void c.validateSession('x').catch(() => undefined);
    await eventually(() => expect(ended).toEqual([{ sessionId: 's-2', bound: false, reason: 'ttl', pushed: true }]));
    expect(errors.map((e) => e.message)).toEqual([
      'The gateway sent a session_expired push without its fields',
      'The gateway sent a session_expired push without its fields',
      'The gateway sent a session_expiring push without its fields',
      'The gateway sent a session_extended push without its fields',
      'The gateway sent a session_updated push without its fields',
    ]);
    expect([expiring, extended, updated]).toEqual([[], [], []]);
  });

  it('checkSession: an answer asked for before a login (reconnect) is not applied to the new session', async () => {
    const { server } = await start();
    let cookie = 'sid=none';
    let answerFirst!: (live: boolean) => void;
    let calls = 0;
    const checkSession = () => (++calls === 1 ? new Promise<boolean>((resolve) => (answerFirst = resolve)) : Promise.resolve(true));
    const c = client(server.url, { WebSocket: withCookie(() => cookie), checkSession });
    const ended = record(c, 'session_expired');
    const opens = record(c, 'open');
    void c.connect().catch(() => undefined); // the page loaded: nobody logged in yet; the backend is slow
    await eventually(() => expect(calls).toBe(1));
    const sid = await createSession(server.url);
    cookie = `sid=${sid}`; // the login
    const rebound = c.reconnect({ session: true });
    answerFirst(false); // the answer of before the login arrives now
    await rebound;
    expect(calls).toBe(2); // the new connect asked for itself
    expect(opens).toEqual([{ reconnected: false }]);
    expect(ended).toEqual([]);
    expect(c.hasSession).toBe(true);
    // Bound to the new session: its end is pushed, and reported once.
    await service(server.url).call('destroy_session', { session_id: sid });
    await eventually(() => expect(ended).toEqual([{ bound: true, reason: 'destroyed', pushed: true }]));
  });

  it('a stale cookie is no end even when the first attempt to connect failed', async () => {
    const { server } = await start();
    const sid = await createSession(server.url);
    await service(server.url).call('destroy_session', { session_id: sid });
    let n = 0;
    // The first socket goes to a port where nothing listens (the gateway unreachable); the next to the gateway.
    const Ctor = class extends WebSocket {
      constructor(url: string) {
        super(n++ === 0 ? 'ws://127.0.0.1:1/' : url, { headers: { Cookie: `sid=${sid}` } });
      }
    } as unknown as WebSocketConstructor;
    const c = client(server.url, { WebSocket: Ctor, reconnect: { initialDelayMs: 20 } });
    const ended = record(c, 'session_expired');
    const closes = record(c, 'close');
    await c.connect().catch(() => undefined);
    await eventually(() => expect(closes.at(-1)).toMatchObject({ code: 4001, kind: 'ended', willReconnect: false }), 5000);
    expect(closes[0]).toMatchObject({ code: 1006, kind: 'retry', willReconnect: true });
    expect(ended).toEqual([]);
  });

  it('after a regeneration that completed, an end found later without a push is reason unknown', async () => {
    const { server } = await start();
    const sid = await createSession(server.url);
    let cookie = `sid=${sid}`;
    const sent: string[] = [];
    const c = client(server.url, {
      WebSocket: withCookie(() => (sent.push(cookie), cookie)),
      regenerationWindowMs: 1000,
      reconnect: { initialDelayMs: 600, maxDelayMs: 600 },
    });
    const ended = record(c, 'session_expired');
    const closes = record(c, 'close');
    const regenerated = record(c, 'session_regenerated');
    await c.connect({ session: true });
    const s = service(server.url);
    const r = await s.call('regenerate_session', { old_session_id: sid });
    await eventually(() => expect(regenerated).toHaveLength(1));
    cookie = `sid=${r.new_session_id as string}`;
    await eventually(() => expect([c.connected, sent.at(-1)]).toEqual([true, cookie]), 5000);
    // Bound to the new cookie: once a socket has stayed open a second, the regeneration is over.
    await new Promise((res) => setTimeout(res, 1500));
    const before = closes.length;
    [...server.links].find((l) => l.role === 'browser')!.close(1011, 'Internal error', 'test');
    await eventually(() => expect(closes).toHaveLength(before + 1));
    // The session ends while the client is away (reconnect in 300-600 ms): found at the reconnect.
    await s.call('destroy_session', { session_id: r.new_session_id });
    await eventually(() => expect(ended).toEqual([{ bound: true, reason: 'unknown', pushed: false }]), 5000);
  });

  it('after 4002: retries at 250 ms doubling to 3 s, so the old cookie is presented only a handful of times', { timeout: 20_000 }, async () => {
    const { server } = await start();
    const sid = await createSession(server.url);
    const c = client(server.url, { WebSocket: withCookie(`sid=${sid}`), regenerationWindowMs: 5000 });
    const reconnecting = record(c, 'reconnecting');
    const ended = record(c, 'session_expired');
    await c.connect({ session: true });
    await service(server.url).call('regenerate_session', { old_session_id: sid });
    await eventually(() => expect(ended).toHaveLength(1), 12_000);
    // Tried at about 0.25, 0.75, 1.75 and 3.75 s (4001: not yet), then 6.75 s: the window is over, the end.
    expect(reconnecting.map((x) => x.delayMs)).toEqual([250, 500, 1000, 2000, 3000]);
    expect(reconnecting.map((x) => x.attempt)).toEqual([1, 2, 3, 4, 5]);
    expect(ended).toEqual([{ bound: true, reason: 'regenerated', pushed: false }]);
  });

  it("the regeneration retries of three tabs do not use up the address's failed authentications", { timeout: 40_000 }, async () => {
    const { server } = await start(); // GATEWAY_FAILED_AUTH_LIMIT: 30 a minute (the gateway's clock does not move)
    const sid = await createSession(server.url);
    const tabs = [0, 1, 2].map(() => client(server.url, { WebSocket: withCookie(`sid=${sid}`) }));
    const ended = tabs.map((t) => record(t, 'session_expired'));
    for (const t of tabs) await t.connect({ session: true });
    // Regenerated; the new cookie never reaches this browser: each tab retries with the old one for 10 s.
    await service(server.url).call('regenerate_session', { old_session_id: sid });
    await eventually(() => expect(ended.map((e) => e.length)).toEqual([1, 1, 1]), 20_000);
    // The user logs in again: the page connects with its new cookie (not refused with 429).
    const fresh = await createSession(server.url);
    const again = client(server.url, { WebSocket: withCookie(`sid=${fresh}`), reconnect: false });
    await again.connect({ session: true });
    expect(again.connected).toBe(true);
  });

  it('close() while checkSession has not answered leaves no timer running (a Node process can exit)', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      let asked = 0;
      const c = client('ws://127.0.0.1:9/', { timeoutMs: 60_000, checkSession: () => (asked++, new Promise<boolean>(() => undefined)) });
      const opened = c.connect().then(
        () => 'opened',
        (e: unknown) => e,
      );
      await Promise.resolve();
      expect(asked).toBe(1);
      expect(vi.getTimerCount()).toBe(1); // checkSession's time limit
      c.close();
      expect(await opened).toBeInstanceOf(GatewayConnectionError);
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  describe('close(), reconnect() or connect() called from an event listener is obeyed', () => {
    /** A server that closes its first connection with 1011 and keeps the others; counts them. */
    async function closesFirst(): Promise<{ url: string; conns: () => number; open: () => number }> {
      const socks: import('ws').WebSocket[] = [];
      const url = await scriptedServer((ws, n) => {
        socks.push(ws);
        if (n === 1) setTimeout(() => ws.close(1011, 'Internal error'), 20);
      });
      return { url, conns: () => socks.length, open: () => socks.filter((w) => w.readyState === w.OPEN).length };
    }
    const settle = () => new Promise((r) => setTimeout(r, 300));

    it("close() in a 'close' listener: no reconnect is scheduled (no 'reconnecting' after it, no new connection)", async () => {
      const srv = await closesFirst();
      const c = client(srv.url, { serviceKey: SERVICE_KEY, reconnect: { initialDelayMs: 50, maxDelayMs: 50 } });
      const reconnecting = record(c, 'reconnecting');
      c.on('close', () => c.close());
      await c.connect();
      await eventually(() => expect(c.connected).toBe(false));
      await settle();
      expect(reconnecting).toEqual([]);
      expect(srv.conns()).toBe(1);
    });

    it("reconnect() in a 'close' listener opens one socket, not two", async () => {
      const srv = await closesFirst();
      const c = client(srv.url, { serviceKey: SERVICE_KEY, reconnect: { initialDelayMs: 50, maxDelayMs: 50 } });
      const opens = record(c, 'open');
      let again: Promise<void> | undefined;
      c.once('close', () => {
        again = c.reconnect();
      });
      await c.connect();
      await eventually(() => expect(opens).toHaveLength(2));
      await again;
      await settle();
      expect(srv.conns()).toBe(2);
      expect(srv.open()).toBe(1);
      expect(c.connected).toBe(true);
    });

    it("reconnect() in a 'reconnecting' listener opens one socket, not two", async () => {
      const srv = await closesFirst();
      const c = client(srv.url, { serviceKey: SERVICE_KEY, reconnect: { initialDelayMs: 50, maxDelayMs: 50 } });
      const opens = record(c, 'open');
      c.once('reconnecting', () => void c.reconnect());
      await c.connect();
      await eventually(() => expect(opens).toHaveLength(2));
      await settle();
      expect(srv.conns()).toBe(2);
      expect(srv.open()).toBe(1);
    });

    it("reconnect() in a 'session_expired' listener after a 4001 (a login right away): its promise resolves, the client stays connected", async () => {
      const socks: import('ws').WebSocket[] = [];
      const url = await scriptedServer((ws, n) => {
        socks.push(ws);
        if (n === 1) setTimeout(() => ws.close(4001, 'Session ended'), 20);
      });
      const c = client(url, { reconnect: { initialDelayMs: 50, maxDelayMs: 50 } });
      let again: Promise<unknown> | undefined;
      c.once('session_expired', () => {
        again = c.reconnect({ session: true }).then(
          () => 'opened',
          (e: unknown) => e,
        );
      });
      await c.connect({ session: true });
      await eventually(() => expect(again).toBeDefined());
      expect(await again).toBe('opened');
      await settle();
      expect(socks).toHaveLength(2);
      expect(c.connected).toBe(true);
    });

    it("close() in a 'session_expired' listener when checkSession finds the session gone: no socket is opened", async () => {
      const srv = await closesFirst();
      const c = client(srv.url, { checkSession: () => Promise.resolve(false) });
      const ended = record(c, 'session_expired');
      c.on('session_expired', () => c.close());
      const opened = c.connect({ session: true }).then(
        () => 'opened',
        (e: unknown) => e,
      );
      expect(await opened).toBeInstanceOf(GatewayConnectionError);
      await settle();
      expect(ended).toEqual([{ bound: true, reason: 'unknown', pushed: false }]);
      expect(srv.conns()).toBe(0);
      expect(c.connected).toBe(false);
    });
  });
});
