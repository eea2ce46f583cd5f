/**
 * What an anonymous browser can make the gateway spend (issue 14): subscriptions, connections,
 * malformed and heavy frames, and guesses at the upgrade. Each test here failed before the fix.
 */
import { once } from 'node:events';
import { Agent } from 'node:http';
import { connect } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { httpPost } from '../helpers/http-post.js';
import {
  browser,
  createSession,
  eventually,
  fetchRaw,
  Peer,
  rawHttpClient,
  SERVICE_KEY,
  service,
  settle,
  start,
  startWithStoreDouble,
  stopAll,
  type RawHttpClient,
} from './helpers.js';

afterEach(stopAll);

const frame = (msgId: number, body: Record<string, unknown>) => JSON.stringify({ src: 'c1', dest: 'gateway', body: { msg_id: msgId, ...body } });

describe('subscriber fan-out (finding 1)', () => {
  it('a browser holds one subscription per session whatever src it names; the last src gets the push', async () => {
    const { server } = await start();
    const sid = await createSession(server.url);
    const b = browser(server.url);
    await b.opened;
    for (let i = 0; i < 50; i++) expect((await b.call('subscribe_session', { session_id: sid }, `src${i}`)).type).toBe('subscribed');
    const s = service(server.url);
    await s.opened;
    expect((await s.call('destroy_session', { session_id: sid })).type).toBe('session_destroyed');
    expect((await b.next((m) => m.body.type === 'session_expired')).dest).toBe('src49');
    // Another push would be on its way by now; one more round trip makes sure it is not.
    expect((await b.call('validate_session', { session_id: sid }, 'after')).type).toBe('session_invalid');
    const pushes = [...b.messages.filter((m) => m.body.type === 'session_expired')];
    expect(pushes).toEqual([]);
  });

  it("a browser subscribes under a src of at most 128 characters, counted as code points (the subscription keeps it); a service's is not capped", async () => {
    const { server } = await start();
    const sid = await createSession(server.url);
    const b = browser(server.url);
    await b.opened;
    expect(await b.call('subscribe_session', { session_id: sid }, 's'.repeat(129))).toMatchObject({
      type: 'error',
      code: 12,
      text: 'Field "src" must be at most 128 characters on a browser connection',
    });
    expect(server.gateway.hub.isFollowed(server.gateway.sessions.hashOf(sid))).toBe(false);
    expect((await b.call('subscribe_session', { session_id: sid }, 's'.repeat(128))).type).toBe('subscribed');
    // Characters are code points: 128 emoji (256 UTF-16 units) are 128 characters; 129 are too many.
    expect((await b.call('subscribe_session', { session_id: sid }, '\u{1F600}'.repeat(128))).type).toBe('subscribed');
    expect(await b.call('subscribe_session', { session_id: sid }, '\u{1F600}'.repeat(129))).toMatchObject({
      type: 'error',
      code: 12,
      text: 'Field "src" must be at most 128 characters on a browser connection',
    });
    const s = service(server.url);
    await s.opened;
    expect((await s.call('subscribe_session', { session_id: sid }, 'x'.repeat(5000))).type).toBe('subscribed');
  });

  it('a browser unsubscribing under any src ends its one subscription', async () => {
    const { server } = await start();
    const sid = await createSession(server.url);
    const b = browser(server.url);
    await b.opened;
    expect((await b.call('subscribe_session', { session_id: sid }, 'a')).type).toBe('subscribed');
    expect((await b.call('unsubscribe_session', { session_id: sid }, 'b')).type).toBe('unsubscribed');
    const hash = server.gateway.sessions.hashOf(sid);
    expect(server.gateway.hub.isFollowed(hash)).toBe(false);
  });

  it('caps browser subscribers per session (GATEWAY_MAX_SUBSCRIBERS_PER_SESSION): error 1002 beyond; a service still subscribes', async () => {
    const { server } = await start({ GATEWAY_MAX_SUBSCRIBERS_PER_SESSION: '3' });
    const sid = await createSession(server.url);
    const peers = [browser(server.url), browser(server.url), browser(server.url), browser(server.url)];
    for (const p of peers) await p.opened;
    for (const p of peers.slice(0, 3)) expect(await p.call('subscribe_session', { session_id: sid })).toMatchObject({ type: 'subscribed' });
    expect(await peers[3]!.call('subscribe_session', { session_id: sid })).toMatchObject({
      type: 'error',
      code: 1002,
      text: 'Too many subscribers of this session (limit 3)',
    });
    // A place freed is a place taken.
    expect((await peers[0]!.call('unsubscribe_session', { session_id: sid })).type).toBe('unsubscribed');
    expect((await peers[3]!.call('subscribe_session', { session_id: sid })).type).toBe('subscribed');
    const s = service(server.url);
    await s.opened;
    expect((await s.call('subscribe_session', { session_id: sid })).type).toBe('subscribed');
  });

  it('refuses browser upgrades past GATEWAY_MAX_CONNECTIONS_PER_ADDRESS with 429; services are not counted', async () => {
    const { server } = await start({ GATEWAY_MAX_CONNECTIONS_PER_ADDRESS: '3' });
    const open = [browser(server.url), browser(server.url), browser(server.url)];
    for (const p of open) await p.opened;
    await expect(browser(server.url).opened).rejects.toThrow('HTTP 429');
    const s = service(server.url);
    await s.opened;
    await open[0]!.terminate();
    await eventually(async () => {
      const p = browser(server.url);
      await p.opened;
    });
  });

  it('counts X-Forwarded-For addresses only behind GATEWAY_TRUSTED_PROXIES', async () => {
    const xff = (url: string, address: string) => new Peer(url, { headers: { 'X-Forwarded-For': `1.2.3.4, ${address}` } });
    const trusted = await start({ GATEWAY_MAX_CONNECTIONS_PER_ADDRESS: '2', GATEWAY_TRUSTED_PROXIES: '127.0.0.0/8,::1' });
    for (const p of [xff(trusted.server.url, '10.0.0.1'), xff(trusted.server.url, '10.0.0.1')]) await p.opened;
    await expect(xff(trusted.server.url, '10.0.0.1').opened).rejects.toThrow('HTTP 429');
    await xff(trusted.server.url, '10.0.0.2').opened;
    // Not behind a trusted proxy: the header is the client's own words; the peer's address counts.
    const direct = await start({ GATEWAY_MAX_CONNECTIONS_PER_ADDRESS: '2' });
    for (const p of [xff(direct.server.url, '10.0.0.1'), xff(direct.server.url, '10.0.0.2')]) await p.opened;
    await expect(xff(direct.server.url, '10.0.0.3').opened).rejects.toThrow('HTTP 429');
  });

  it('counts an IPv6 client by its /64 network: other addresses of the same block share its budget, another block has its own', async () => {
    const xff = (url: string, address: string) => new Peer(url, { headers: { 'X-Forwarded-For': address } });
    const { server, http } = await start({
      GATEWAY_MAX_CONNECTIONS_PER_ADDRESS: '2',
      GATEWAY_FAILED_AUTH_LIMIT: '2',
      GATEWAY_TRUSTED_PROXIES: '127.0.0.0/8,::1',
    });
    for (const p of [xff(server.url, '2001:db8:0:7::1'), xff(server.url, '2001:DB8:0:7:ffff::2')]) await p.opened;
    await expect(xff(server.url, '2001:db8::7:1:2:3:4').opened).rejects.toThrow('HTTP 429');
    await xff(server.url, '2001:db8:0:8::1').opened;
    // Wrong keys over HTTP from two addresses of one block: a third address of it is refused with the right key.
    const rpc = (address: string, key: string) =>
      httpPost(`${http}/v1/rpc`, '{"type":"list_sessions","user_id":"u"}', {
        'Content-Type': 'application/json',
        Authorization: `Bearer ${key}`,
        'X-Forwarded-For': address,
      });
    const wrong = '8nIho8M/eCRS7/p35vKxszNEUJ9AUp2Uzy+C/z2ew0M=';
    expect((await rpc('2001:db8:5:5::a', wrong)).status).toBe(401);
    expect((await rpc('2001:db8:5:5:1::b', wrong)).status).toBe(401);
    expect((await rpc('2001:db8:5:5:2::c', SERVICE_KEY)).status).toBe(429);
    expect((await rpc('2001:db8:5:6::c', SERVICE_KEY)).status).toBe(200);
  });
});

describe('heavy and malformed frames (finding 2)', () => {
  it('charges malformed frames to the message rate limit', async () => {
    const { server } = await start({ GATEWAY_RATE_LIMIT: '10', GATEWAY_MALFORMED_LIMIT: '1000' });
    const b = browser(server.url);
    await b.opened;
    for (let i = 0; i < 10; i++) b.send('{not json');
    await b.count(10);
    expect(await b.call('unsubscribe_session', { session_id: 'x' })).toMatchObject({
      type: 'error',
      code: 1002,
      text: 'Rate limited: at most 10 messages a second',
    });
  });

  it('charges every frame its bytes before parsing (GATEWAY_RATE_LIMIT_BYTES); in debt, frames are refused unparsed', async () => {
    const { server, clock } = await start({ GATEWAY_RATE_LIMIT_BYTES: '4096' });
    const b = browser(server.url);
    await b.opened;
    const big = (id: number) => frame(id, { type: 'unsubscribe_session', session_id: 'x'.repeat(3000) });
    for (const id of [1, 2, 3]) b.send(big(id));
    const replies = (await b.count(3)).sort((x, y) => Number(x.body.in_reply_to) - Number(y.body.in_reply_to));
    expect(replies.map((m) => [m.body.in_reply_to, m.body.type])).toEqual([
      [1, 'unsubscribed'],
      [2, 'unsubscribed'],
      [3, 'error'],
    ]);
    expect(replies[2]!.body).toMatchObject({ code: 1002, text: 'Rate limited: at most 4096 bytes a second' });
    clock.advance(2000);
    expect((await b.call('unsubscribe_session', { session_id: 'y' })).type).toBe('unsubscribed');
  });

  it('closes a browser connection that keeps sending malformed frames with 1008 (GATEWAY_MALFORMED_LIMIT a minute)', async () => {
    const { server } = await start({ GATEWAY_MALFORMED_LIMIT: '5' });
    const b = browser(server.url);
    await b.opened;
    for (let i = 0; i < 5; i++) b.send('[');
    await b.count(5);
    expect(b.ws.readyState).toBe(WebSocket.OPEN);
    b.send('[');
    expect(await b.closed).toMatchObject({ code: 1008, reason: 'Too many malformed messages' });
    // A service connection is not held to it.
    const s = service(server.url);
    await s.opened;
    for (let i = 0; i < 20; i++) s.send('[');
    await s.count(20);
    expect(s.ws.readyState).toBe(WebSocket.OPEN);
  });

  it('refuses deep nesting from a scan, before parsing, keeping the msg_id', async () => {
    const { server } = await start();
    const b = browser(server.url);
    await b.opened;
    const deep = `{"src":"c1","dest":"gateway","body":{"type":"validate_session","msg_id":7,"session_id":"s","x":${'['.repeat(30_000)}${']'.repeat(30_000)}}}`;
    b.send(deep);
    expect((await b.next()).body).toEqual({ type: 'error', in_reply_to: 7, code: 12, text: 'Message nests deeper than 70 levels' });
  });

  it('reads only the head of an oversized frame: a msg_id after the first KiB is not looked for', async () => {
    const { server } = await start({ GATEWAY_MAX_MESSAGE_BYTES: '1024' });
    const b = browser(server.url);
    await b.opened;
    b.send(JSON.stringify({ src: 'c1', dest: 'gateway', body: { type: 'validate_session', session_id: 'x'.repeat(4000), msg_id: 9 } }));
    expect((await b.next()).body).toEqual({
      type: 'error',
      code: 12,
      text: expect.stringMatching(/^Message too large \(\d+ bytes\): the limit is 1024 bytes$/),
    });
  });

  it('refuses duplicate member names with error 12', async () => {
    const { server } = await start();
    const s = service(server.url);
    await s.opened;
    s.send('{"src":"c1","dest":"gateway","body":{"type":"validate_session","msg_id":3,"session_id":"a","session_id":"b"}}');
    expect((await s.next()).body).toEqual({ type: 'error', in_reply_to: 3, code: 12, text: 'Duplicate member name in a JSON object' });
  });
});

describe('guesses at the upgrade (finding 5)', () => {
  it('dead session cookies count against GATEWAY_FAILED_AUTH_LIMIT; past it the address gets 429', async () => {
    const { server, clock } = await start({ GATEWAY_FAILED_AUTH_LIMIT: '5' });
    for (let i = 0; i < 5; i++) {
      const p = browser(server.url, { cookie: `sid=guess-${i}` });
      await p.opened;
      expect((await p.closed).code).toBe(4001);
    }
    await expect(browser(server.url, { cookie: 'sid=guess-5' }).opened).rejects.toThrow('HTTP 429');
    await expect(browser(server.url).opened).rejects.toThrow('HTTP 429');
    const r = await fetchRaw(server.url.replace(/^ws/, 'http'), {
      headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==' },
    }).catch((e: Error) => e);
    expect(r).toMatchObject({ status: 429, headers: { 'retry-after': '60' } });
    clock.advance(60_001);
    await browser(server.url).opened;
  });

  it('wrong service keys count too: 401 up to the limit, then 429', async () => {
    const { server } = await start({ GATEWAY_FAILED_AUTH_LIMIT: '5' });
    for (let i = 0; i < 5; i++)
      await expect(new Peer(server.url, { headers: { Authorization: `Bearer wrong-key-${i}-0123456789` } }).opened).rejects.toThrow('HTTP 401');
    await expect(new Peer(server.url, { headers: { Authorization: `Bearer ${SERVICE_KEY}x` } }).opened).rejects.toThrow('HTTP 429');
  });

  it("browsers' failures from an address never lock out a backend with the right key behind it; wrong keys still lock out every key", async () => {
    const { server, http } = await start({ GATEWAY_FAILED_AUTH_LIMIT: '3' });
    const b = browser(server.url);
    await b.opened;
    for (let i = 0; i < 3; i++) expect((await b.call('validate_session', { session_id: `guess-${i}` })).type).toBe('session_invalid');
    expect(await b.call('validate_session', { session_id: 'guess-3' })).toMatchObject({ type: 'error', code: 1002 });
    const p = browser(server.url, { cookie: 'sid=guess-4' });
    await expect(p.opened).rejects.toThrow('HTTP 429');
    // The backend on the same address: its upgrade and its HTTP calls are served.
    const s = service(server.url);
    await s.opened;
    expect((await s.call('validate_session', { session_id: 'x' })).type).toBe('session_invalid');
    const rpc = () =>
      fetchRaw(`${http}/v1/rpc`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${SERVICE_KEY}`, 'Content-Type': 'application/json' },
        body: '{"type":"validate_session","session_id":"x"}',
      });
    expect((await rpc()).status).toBe(200);
    // Wrong keys: past the limit the right key is refused too (a guess must not learn it was right).
    for (let i = 0; i < 3; i++)
      await expect(new Peer(server.url, { headers: { Authorization: `Bearer wrong-key-${i}-0123456789` } }).opened).rejects.toThrow('HTTP 401');
    await expect(service(server.url).opened).rejects.toThrow('HTTP 429');
    expect((await rpc()).status).toBe(429);
  });
});

describe('the two failed-auth tallies agree with docs/protocol.md', () => {
  it('dead cookies fill the browser tally only: browser upgrades get 429, while a wrong key stays 401 and the right key is served (upgrade and /v1/rpc); never a wrong key 429 with the right key 200', async () => {
    const { server, http } = await start({ GATEWAY_FAILED_AUTH_LIMIT: '3' });
    for (let i = 0; i < 3; i++) {
      const p = browser(server.url, { cookie: `sid=dead-${i}` });
      await p.opened;
      expect((await p.closed).code).toBe(4001);
    }
    await expect(browser(server.url, { cookie: 'sid=dead-3' }).opened).rejects.toThrow('HTTP 429');
    const rpc = (key: string) =>
      fetchRaw(`${http}/v1/rpc`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
        body: '{"type":"validate_session","session_id":"x"}',
      });
    // One wrong key on each route: under the key tally's limit, 401 (the same as before the cookies).
    await expect(new Peer(server.url, { headers: { Authorization: 'Bearer wrong-key-0-0123456789' } }).opened).rejects.toThrow('HTTP 401');
    expect((await rpc('wrong-key-1-0123456789')).status).toBe(401);
    const s = service(server.url);
    await s.opened;
    expect((await rpc(SERVICE_KEY)).status).toBe(200);
    // The third wrong key fills the key tally: from then on every key is 429, the right one included.
    expect((await rpc('wrong-key-2-0123456789')).status).toBe(401);
    expect([(await rpc('wrong-key-3-0123456789')).status, (await rpc(SERVICE_KEY)).status]).toEqual([429, 429]);
    await expect(service(server.url).opened).rejects.toThrow('HTTP 429');
  });
});

describe('proxies, cookies and metrics (issue 14, small items)', () => {
  it('over https behind a trusted proxy the dev login sets __Host-sid with Secure; a forged X-Forwarded-Proto does not', async () => {
    const { http } = await start({ GATEWAY_DEV: '1', GATEWAY_TRUSTED_PROXIES: '127.0.0.1' });
    const https = await fetchRaw(`${http}/autosession`, { method: 'POST', headers: { 'X-Forwarded-Proto': 'https' } });
    expect(String(https.headers['set-cookie'])).toMatch(/^__Host-sid=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/; Max-Age=3600; Secure$/);
    const plain = await fetchRaw(`${http}/autosession`, { method: 'POST' });
    expect(String(plain.headers['set-cookie'])).toMatch(/^sid=[^;]+; HttpOnly; SameSite=Strict; Path=\/; Max-Age=3600$/);
    const untrusted = await start({ GATEWAY_DEV: '1' });
    const forged = await fetchRaw(`${untrusted.http}/autosession`, { method: 'POST', headers: { 'X-Forwarded-Proto': 'https' } });
    expect(String(forged.headers['set-cookie'])).not.toMatch(/Secure|__Host-/);
  });

  it('over https an upgrade is bound by __Host-sid only (a plain sid could be planted by a sibling domain)', async () => {
    const { server } = await start({ GATEWAY_TRUSTED_PROXIES: '127.0.0.1' });
    const sid = await createSession(server.url);
    const headers = (cookie: string) => ({ headers: { 'X-Forwarded-Proto': 'https', Cookie: cookie } });
    const hostBound = new Peer(server.url, headers(`__Host-sid=${sid}`));
    const plain = new Peer(server.url, headers(`sid=${sid}`));
    await Promise.all([hostBound.opened, plain.opened]);
    const s = service(server.url);
    await s.opened;
    await s.call('destroy_session', { session_id: sid });
    expect((await hostBound.closed).code).toBe(4001);
    expect(plain.messages.filter((m) => m.body.type === 'session_expired')).toEqual([]);
    expect(plain.ws.readyState).toBe(WebSocket.OPEN);
  });

  it('GATEWAY_METRICS_ADDR serves /metrics on its own address, and the main port no longer does', async () => {
    const { server, http } = await start({ GATEWAY_METRICS_ADDR: '127.0.0.1:0' });
    expect(server.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    expect((await fetchRaw(`${http}/metrics`)).status).toBe(404);
    const m = await fetchRaw(server.metricsUrl!);
    expect(m.status).toBe(200);
    expect(m.body).toContain('gateway_connections');
    expect((await fetchRaw(server.metricsUrl!.replace('/metrics', '/healthz'))).status).toBe(404);
  });
});

/** Writes `request` on a fresh connection to `port`; resolves with all that came back once the server closed it. */
function rawHttp(port: number, request: string | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    let got = '';
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => (got += d));
    sock.on('end', () => resolve(got));
    sock.on('error', reject);
    sock.write(request);
  });
}

describe('HTTP requests that are not what a route reads (probe findings)', () => {
  it('a request target that is not a URL gets 400 and a close, on the main port and on GATEWAY_METRICS_ADDR; both keep serving, and nothing of it is logged', async () => {
    const lines: string[] = [];
    const log = pino({ level: 'trace' }, { write: (l: string) => void lines.push(l) });
    const { server, http } = await start({ GATEWAY_METRICS_ADDR: '127.0.0.1:0' }, { log });
    const metricsPort = Number(new URL(server.metricsUrl!).port);
    for (const target of ['//a:99999/metrics', 'http://[/x', '//gw:99999/oauth2/introspect?token=SECRET-IN-QUERY']) {
      for (const port of [server.port, metricsPort]) {
        expect(await rawHttp(port, `GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`)).toMatch(/^HTTP\/1\.1 400 .*Connection: close/s);
      }
    }
    expect((await fetchRaw(server.metricsUrl!)).status).toBe(200);
    expect((await fetchRaw(`${http}/healthz`)).status).toBe(200);
    expect(lines.join('\n')).not.toContain('SECRET-IN-QUERY');
    expect(lines.filter((l) => JSON.parse(l).level >= 50)).toEqual([]);
  });

  it('a body sent to a route that reads none is not read: the answer closes the connection', async () => {
    const { server } = await start();
    // A declared 50 MB body, of which only the head is sent: the answer comes, then the close.
    for (const path of ['/healthz', '/nope', '/oidc/backchannel-logout', '/openapi.json', '/metrics']) {
      const got = await rawHttp(server.port, `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n${'x'.repeat(1000)}`);
      expect(got).toMatch(/^HTTP\/1\.1 40[45] .*Connection: close/s);
    }
    const chunked = await rawHttp(server.port, `POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n${'y'.repeat(16)}\r\n`);
    expect(chunked).toMatch(/^HTTP\/1\.1 405 .*Connection: close/s);
  });
});

describe('connections that never finish their request head (slowloris)', () => {
  it('past GATEWAY_MAX_CONNECTIONS_PER_ADDRESS of them from one address, more are answered 429 and closed at once; one that finishes its head and closes leaves the count', async () => {
    const { server } = await start({ GATEWAY_MAX_CONNECTIONS_PER_ADDRESS: '20' });
    const held: ReturnType<typeof connect>[] = [];
    const open = () =>
      new Promise<{ sock: ReturnType<typeof connect>; closed: Promise<string> }>((resolve) => {
        const sock = connect(server.port, '127.0.0.1', () => {
          sock.write('GET /healthz HTTP/1.1\r\nHost: x\r\n'); // the head never ends
          let got = '';
          sock.on('data', (d: Buffer) => (got += d.toString('latin1')));
          resolve({ sock, closed: new Promise((r) => sock.once('close', () => r(got))) });
        });
        sock.on('error', () => undefined);
        held.push(sock);
      });
    try {
      const first = await Promise.all(Array.from({ length: 20 }, open));
      await eventually(() => expect(server.pendingHeads.size).toBe(1));
      const over = await open();
      expect(await over.closed).toMatch(/^HTTP\/1\.1 429 Too Many Requests\r\n.*\r\nRetry-After: 1\r\n/s);
      expect(server.pendingHeads.refused).toBe(1);
      // The 20 are still open; one of them finishes its head (asking for the close) and is served.
      expect(first.every(({ sock }) => !sock.destroyed)).toBe(true);
      const answered = new Promise<string>((resolve) => first[0]!.sock.once('data', (d: Buffer) => resolve(d.toString('latin1'))));
      first[0]!.sock.write('Connection: close\r\n\r\n');
      expect(await answered).toMatch(/^HTTP\/1\.1 200 /);
      await first[0]!.closed;
      // Its place is free: a new connection is not refused.
      await open();
      await settle(50);
      expect(server.pendingHeads.refused).toBe(1);
    } finally {
      for (const s of held) s.destroy();
    }
    await eventually(() => expect(server.pendingHeads.size).toBe(0));
  });

  it('a kept-alive connection owes its next head and counts again: one quick request on each does not lift the cap', async () => {
    const { server } = await start({ GATEWAY_MAX_CONNECTIONS_PER_ADDRESS: '5' });
    const warm: RawHttpClient[] = [];
    try {
      for (let i = 0; i < 5; i++) {
        const c = await rawHttpClient(server.port);
        warm.push(c);
        c.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
        await eventually(() => expect(c.received()).toMatch(/^HTTP\/1\.1 200 .*Connection: keep-alive.*\r\n\r\nok\n$/s));
        c.socket.write('GET /healthz HTTP/1.1\r\n'); // the next head, never finished
      }
      const over = await rawHttpClient(server.port);
      expect(await over.closed).toMatch(/^HTTP\/1\.1 429 /);
      expect(server.pendingHeads.refused).toBe(1);
      expect(server.pendingHeads.evicted).toBe(0);
      expect(warm.every((c) => !c.socket.destroyed)).toBe(true);
    } finally {
      for (const c of warm) c.socket.destroy();
    }
  });

  it('at the cap, the answer that would leave a connection owing a head says Connection: close and comes whole; pipelined requests are all answered first', async () => {
    const { server, store } = await startWithStoreDouble({ GATEWAY_MAX_CONNECTIONS_PER_ADDRESS: '2' });
    const body = JSON.stringify({ type: 'validate_session', session_id: 'x' });
    const request = `POST /v1/rpc HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${SERVICE_KEY}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    const held = store.hold('get');
    const pipelined = await rawHttpClient(server.port);
    pipelined.socket.write(request + request);
    await held.reached;
    // Two others fill the address's count while the pipelined answers wait.
    const slow = [await rawHttpClient(server.port), await rawHttpClient(server.port)];
    try {
      for (const c of slow) c.socket.write('GET /healthz HTTP/1.1\r\n');
      await eventually(() => expect(server.pendingHeads.size).toBe(1));
      held.release();
      const answers = (await pipelined.closed).split(/(?=HTTP\/1\.1 )/);
      expect(answers.map((a) => a.split('\r\n', 1)[0])).toEqual(['HTTP/1.1 200 OK', 'HTTP/1.1 200 OK']);
      expect(answers[0]).toMatch(/\r\nConnection: keep-alive\r\n/);
      expect(answers[1]).toMatch(/\r\nConnection: close\r\n/);
      for (const a of answers) expect(JSON.parse(a.slice(a.indexOf('\r\n\r\n') + 4))).toMatchObject({ type: 'session_invalid' });
      expect(server.pendingHeads.refused).toBe(1);
    } finally {
      for (const c of slow) c.socket.destroy();
    }
  });

  it('idle kept-alive connections never keep a new one out: at the cap the longest idle is closed to make room, and a service upgrade and new /v1/rpc connections are served', async () => {
    const { server, http } = await start({ GATEWAY_MAX_CONNECTIONS_PER_ADDRESS: '2' });
    const body = JSON.stringify({ type: 'validate_session', session_id: 'x' });
    const request = `POST /v1/rpc HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${SERVICE_KEY}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    const idle: RawHttpClient[] = [];
    try {
      for (let i = 0; i < 2; i++) {
        const c = await rawHttpClient(server.port);
        idle.push(c);
        c.socket.write(request);
        await eventually(() => expect(c.received()).toMatch(/^HTTP\/1\.1 200 .*Connection: keep-alive.*"session_invalid"/s));
      }
      // Both idle now fill the address's count; a service's upgrade takes the place of the older.
      const s = service(server.url);
      await s.opened;
      expect((await s.call('validate_session', { session_id: 'x' })).type).toBe('session_invalid');
      expect(await idle[0]!.closed).toMatch(/^HTTP\/1\.1 200 /);
      expect(idle[1]!.socket.destroyed).toBe(false);
      // Another keep-alive request fills the count again; a new /v1/rpc connection takes the place of the longer idle.
      const third = await rawHttpClient(server.port);
      idle.push(third);
      third.socket.write(request);
      await eventually(() => expect(third.received()).toMatch(/^HTTP\/1\.1 200 .*Connection: keep-alive.*"session_invalid"/s));
      const answer = await httpPost(`${http}/v1/rpc`, body, {
        Authorization: `Bearer ${SERVICE_KEY}`,
        'Content-Type': 'application/json',
        Connection: 'close',
      });
      expect(answer.status).toBe(200);
      await idle[1]!.closed;
      expect(third.socket.destroyed).toBe(false);
      expect([server.pendingHeads.evicted, server.pendingHeads.refused]).toEqual([2, 0]);
    } finally {
      for (const c of idle) c.socket.destroy();
    }
  });

  it('a kept-alive connection still taking a large answer is not idle: a new connection at the cap never cuts that answer short', async () => {
    const { server } = await start({ GATEWAY_MAX_CONNECTIONS_PER_ADDRESS: '2', GATEWAY_MAX_MESSAGE_BYTES: String(3 * 1024 * 1024) });
    const s = service(server.url);
    await s.opened;
    // An answer far larger than the sockets' buffers: most of it waits in the gateway while its reader reads nothing.
    for (let i = 0; i < 4; i++) await s.call('create_session', { user_id: 'large', data: { x: 'y'.repeat(2_000_000) } });
    const body = JSON.stringify({ type: 'list_sessions', user_id: 'large' });
    const reader = connect(server.port, '127.0.0.1');
    reader.on('error', () => undefined);
    reader.write(
      `POST /v1/rpc HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${SERVICE_KEY}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    );
    // No 'data' listener yet: the socket buffers what arrives and reads no more.
    await eventually(() => expect(reader.readableLength).toBeGreaterThan(0));
    const slow = await rawHttpClient(server.port);
    try {
      slow.socket.write('GET /healthz HTTP/1.1\r\n'); // a head never finished: not idle either
      await eventually(() => expect(server.pendingHeads.size).toBe(1));
      const over = await rawHttpClient(server.port);
      await eventually(() => expect(server.pendingHeads.refused + server.pendingHeads.evicted).toBe(1));
      expect([server.pendingHeads.refused, server.pendingHeads.evicted]).toEqual([1, 0]);
      expect(await over.closed).toMatch(/^HTTP\/1\.1 429 /);
      // The reader takes its answer, whole.
      const raw = await new Promise<string>((resolve) => {
        const chunks: Buffer[] = [];
        let size = 0;
        let whole = Infinity;
        const done = () => resolve(Buffer.concat(chunks).toString('latin1'));
        reader.on('data', (d: Buffer) => {
          chunks.push(d);
          size += d.length;
          if (whole === Infinity) {
            const head = Buffer.concat(chunks).toString('latin1');
            const end = head.indexOf('\r\n\r\n');
            if (end >= 0) whole = end + 4 + Number(/\r\nContent-Length: (\d+)\r\n/i.exec(head.slice(0, end + 2))?.[1]);
          }
          if (size >= whole) done();
        });
        reader.once('close', done);
      });
      const answer = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)) as { type: string; sessions: unknown[] };
      expect([answer.type, answer.sessions.length]).toEqual(['sessions', 4]);
    } finally {
      reader.destroy();
      slow.socket.destroy();
    }
  });

  it('a connection refused at the cap gets 429 with Retry-After and the gateway headers, and a request already sent on it is not served', async () => {
    const { server } = await start({ GATEWAY_MAX_CONNECTIONS_PER_ADDRESS: '2' });
    const slow = [await rawHttpClient(server.port), await rawHttpClient(server.port)];
    try {
      for (const c of slow) c.socket.write('GET /healthz HTTP/1.1\r\n'); // heads never finished: nothing to evict
      await eventually(() => expect(server.pendingHeads.size).toBe(1));
      const body = JSON.stringify({ type: 'create_session', user_id: 'refused' });
      const over = await rawHttpClient(server.port);
      over.socket.write(
        `POST /v1/rpc HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${SERVICE_KEY}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
      );
      const answer = await over.closed;
      expect(answer).toMatch(/^HTTP\/1\.1 429 Too Many Requests\r\n/);
      for (const h of [
        'Cache-Control: no-store',
        'X-Content-Type-Options: nosniff',
        'Retry-After: 1',
        'Connection: close',
        'Content-Type: application/json; charset=utf-8',
      ])
        expect(answer).toContain(`\r\n${h}\r\n`);
      expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toEqual({ error: 'Too many connections from this address; try again later' });
      expect(server.pendingHeads.refused).toBe(1);
    } finally {
      for (const c of slow) c.socket.destroy();
    }
    // The request sent on the refused connection was never served.
    await eventually(() => expect(server.pendingHeads.size).toBe(0));
    const s = service(server.url);
    await s.opened;
    expect(await s.call('list_sessions', { user_id: 'refused' })).toMatchObject({ type: 'sessions', sessions: [] });
  });

  it('a connection refused at the cap is cut within its grace even while it keeps sending (it cannot stay open past the cap)', async () => {
    const { server } = await start({ GATEWAY_MAX_CONNECTIONS_PER_ADDRESS: '1' });
    const slow = await rawHttpClient(server.port);
    slow.socket.write('GET /healthz HTTP/1.1\r\n'); // a head never finished: nothing to evict
    await eventually(() => expect(server.pendingHeads.size).toBe(1));
    const over = connect({ port: server.port, host: '127.0.0.1', allowHalfOpen: true });
    over.on('error', () => undefined);
    let answer = '';
    over.on('data', (d: Buffer) => (answer += d.toString('latin1')));
    const closed = new Promise<void>((resolve) => over.once('close', () => resolve()));
    // A byte every 100 ms: never idle for the 1 s grace, and its own half never ends.
    const trickle = setInterval(() => over.writable && over.write('x'), 100);
    try {
      await eventually(() => expect(answer).toMatch(/^HTTP\/1\.1 429 /));
      await eventually(() => expect(over.destroyed).toBe(true), 5000);
      await closed;
      expect(server.pendingHeads.refused).toBe(1);
    } finally {
      clearInterval(trickle);
      over.destroy();
      slow.socket.destroy();
    }
  });

  it('connections refused at the cap do not pile up while they read their 429: past GATEWAY_MAX_CONNECTIONS_PER_ADDRESS of them, the longest refused is cut', async () => {
    const { server } = await start({ GATEWAY_MAX_CONNECTIONS_PER_ADDRESS: '2' });
    const slow = await Promise.all([rawHttpClient(server.port), rawHttpClient(server.port)]);
    for (const c of slow) c.socket.write('GET /healthz HTTP/1.1\r\n'); // heads never finished: nothing to evict
    await eventually(() => expect(server.pendingHeads.size).toBe(1));
    const over: ReturnType<typeof connect>[] = [];
    const answers: string[] = [];
    // A byte every 20 ms, and never its own half closed: each would stay open for the whole grace.
    const trickle = setInterval(() => {
      for (const s of over) if (s.writable) s.write('x');
    }, 20);
    try {
      for (let i = 0; i < 10; i++) {
        const s = connect({ port: server.port, host: '127.0.0.1', allowHalfOpen: true });
        over.push(s);
        s.on('error', () => undefined);
        answers[i] = '';
        s.on('data', (d: Buffer) => (answers[i] += d.toString('latin1')));
        await once(s, 'end');
      }
      expect(answers.map((a) => a.split('\r\n', 1)[0])).toEqual(Array(10).fill('HTTP/1.1 429 Too Many Requests'));
      expect(server.pendingHeads.refused).toBe(10);
      // Each refused connection past the second cut the longest refused one.
      expect(server.pendingHeads.refusing).toBe(2);
    } finally {
      clearInterval(trickle);
      for (const s of [...over, ...slow.map((c) => c.socket)]) s.destroy();
    }
  });

  it('a backend reusing a pool of keep-alive connections within the cap is served on them throughout', async () => {
    const { server, http } = await start({ GATEWAY_MAX_CONNECTIONS_PER_ADDRESS: '4' });
    const agent = new Agent({ keepAlive: true, maxSockets: 4 });
    const headers = { Authorization: `Bearer ${SERVICE_KEY}`, 'Content-Type': 'application/json' };
    const pool = () => new Set(Object.values(agent.freeSockets).flat());
    try {
      let first: Set<unknown> | undefined;
      for (let round = 0; round < 3; round++) {
        const answers = await Promise.all(
          Array.from({ length: 12 }, () => httpPost(`${http}/v1/rpc`, JSON.stringify({ type: 'validate_session', session_id: 'x' }), headers, { agent })),
        );
        expect(answers.map((a) => [a.status, a.headers.connection])).toEqual(answers.map(() => [200, 'keep-alive']));
        first ??= pool();
        // The same four connections, none closed and replaced.
        expect([...pool()].filter((socket) => !first!.has(socket))).toEqual([]);
      }
      expect(first!.size).toBe(4);
      expect(server.pendingHeads.refused).toBe(0);
    } finally {
      agent.destroy();
    }
  });
});
