import { connect } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { waitForCount } from '../helpers/wait-for.js';
import { browser, fetchRaw, Peer, SERVICE_KEY, service, start, startWithStoreDouble, stopAll } from './helpers.js';

afterEach(stopAll);

/** The HTTP status an upgrade is refused with. */
async function refusal(p: Peer): Promise<string> {
  return p.opened.then(
    () => 'opened',
    (err: Error) => err.message,
  );
}

describe('upgrade: origins', () => {
  it('refuses an Origin that is not allowed with 403 (cross-site WebSocket hijacking)', async () => {
    const { server } = await start();
    for (const origin of ['http://evil.example', 'null', `http://127.0.0.1:${server.port + 1}`, `https://127.0.0.1:${server.port}`]) {
      expect(await refusal(browser(server.url, { origin }))).toBe('HTTP 403');
    }
    expect(await server.metrics.text()).toMatch(/gateway_upgrades_refused_total\{status="403"\} 4/);
  });

  it("accepts the gateway's own origin by default (all loopback spellings) and no Origin at all", async () => {
    const { server } = await start();
    for (const origin of [`http://127.0.0.1:${server.port}`, `http://localhost:${server.port}`, undefined]) {
      const p = browser(server.url, { origin });
      await p.opened;
      expect((await p.call('validate_session', { session_id: 'nope' })).type).toBe('session_invalid');
    }
  });

  it('uses GATEWAY_ALLOWED_ORIGINS in place of the default', async () => {
    const { server } = await start({ GATEWAY_ALLOWED_ORIGINS: 'https://app.example.com,https://admin.example.com' });
    await browser(server.url, { origin: 'https://app.example.com' }).opened;
    await browser(server.url, { origin: 'https://admin.example.com' }).opened;
    expect(await refusal(browser(server.url, { origin: `http://127.0.0.1:${server.port}` }))).toBe('HTTP 403');
  });
});

describe('upgrade: service key', () => {
  it('refuses a wrong, malformed or empty key with 401 before the upgrade', async () => {
    const { server } = await start();
    for (const auth of [`Bearer ${SERVICE_KEY}x`, `Bearer ${SERVICE_KEY.slice(0, -1)}`, 'Bearer', `Basic ${SERVICE_KEY}`, SERVICE_KEY, 'Bearer  ']) {
      expect(await refusal(new Peer(server.url, { headers: { Authorization: auth } }))).toBe('HTTP 401');
    }
    expect(server.links.size).toBe(0);
  });

  it('refuses every key when no GATEWAY_SERVICE_KEY is configured (no service role)', async () => {
    const { server } = await start({ GATEWAY_SERVICE_KEY: undefined });
    expect(await refusal(service(server.url))).toBe('HTTP 401');
  });

  it('a service connection may call everything; one naming an Origin that is not allowed is refused too (403)', async () => {
    const { server } = await start();
    expect(await refusal(new Peer(server.url, { origin: 'http://evil.example', headers: { Authorization: `Bearer ${SERVICE_KEY}` } }))).toBe('HTTP 403');
    // A wrong key is judged first (401, a failed attempt), whatever the Origin.
    expect(await refusal(new Peer(server.url, { origin: 'http://evil.example', headers: { Authorization: 'Bearer wrong-key-0123456789' } }))).toBe('HTTP 401');
    const s = new Peer(server.url, { origin: `http://127.0.0.1:${server.port}`, headers: { Authorization: `Bearer ${SERVICE_KEY}` } });
    await s.opened;
    expect((await s.call('create_session', { user_id: 'u1' })).type).toBe('session_created');
    expect((await s.call('list_sessions', { user_id: 'u1' })).type).toBe('sessions');
  });

  it('an introspection key is refused with 403, counted as no failed attempt (its holder cannot lock out its address), and never logged', async () => {
    const key = 'cZiMcaPFLT08hYDJ5BsApjUE0KevS8LNyqbq7FttzdE=';
    const lines: string[] = [];
    const log = pino({ level: 'trace' }, { write: (l: string) => void lines.push(l) });
    const { server, http } = await start({ GATEWAY_INTROSPECTION_KEYS: key, GATEWAY_FAILED_AUTH_LIMIT: '2' }, { log });
    for (let i = 0; i < 5; i++) expect(await refusal(new Peer(server.url, { headers: { Authorization: `Bearer ${key}` } }))).toBe('HTTP 403');
    expect(server.links.size).toBe(0);
    expect(await server.metrics.text()).toMatch(/gateway_upgrades_refused_total\{status="403"\} 5/);
    // Past the limit of 2 had they counted: the service, the key's own routes and a browser from the address are still served.
    await service(server.url).opened;
    await browser(server.url).opened;
    const introspect = await fetchRaw(`${http}/oauth2/introspect`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'token=nope',
    });
    expect([introspect.status, introspect.body]).toEqual([200, '{"active":false}']);
    expect(lines.some((l) => l.includes('introspection key'))).toBe(true);
    expect(lines.filter((l) => l.includes(key) || l.includes(key.slice(0, 12)))).toEqual([]);
  });

  it('answers 404 to upgrades on other paths', async () => {
    const { server } = await start();
    expect(await refusal(new Peer(`${server.url}admin`))).toBe('HTTP 404');
    await new Peer(`${server.url}ws`).opened;
  });

  it('takes up no subprotocol a client offers (it speaks none): the 101 names none, and a client that requires one learns it', async () => {
    const { server } = await start();
    const socket = connect(server.port, '127.0.0.1');
    let got = '';
    socket.setEncoding('latin1');
    const head = new Promise<string>((resolve) =>
      socket.on('data', (d: string) => {
        got += d;
        if (got.includes('\r\n\r\n')) resolve(got.slice(0, got.indexOf('\r\n\r\n')));
      }),
    );
    socket.write(
      `GET / HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat, auth-gateway.v9\r\n\r\n',
    );
    const answer = await head;
    socket.destroy();
    expect(answer.split('\r\n', 1)[0]).toBe('HTTP/1.1 101 Switching Protocols');
    expect(answer.toLowerCase()).not.toContain('sec-websocket-protocol');
    // ws, like a browser, fails a connection whose server took up none of the protocols it asked for.
    // A client that offers none is served as ever.
    await new Peer(server.url).opened;
    const insisting = new WebSocket(server.url, ['chat']);
    insisting.on('error', () => undefined);
    const failed = await new Promise<string>((resolve) => {
      insisting.once('open', () => resolve(`opened with ${insisting.protocol}`));
      insisting.once('error', (err) => resolve(err.message));
    });
    expect(failed).toBe('Server sent no subprotocol');
  });

  it('a broken WebSocket handshake is refused before any key, cookie or store is looked at: 405 or 400 with the gateway headers and a JSON body', async () => {
    const { server, store } = await startWithStoreDouble();
    // With the store away, a cookie that had to be checked would be 503: these never reach it.
    store.down = true;
    const up = (o: { method?: string; upgrade?: string; key?: string | null; version?: string }) =>
      `${o.method ?? 'GET'} / HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nUpgrade: ${o.upgrade ?? 'websocket'}\r\nConnection: Upgrade\r\n` +
      `${o.key === null ? '' : `Sec-WebSocket-Key: ${o.key ?? 'dGhlIHNhbXBsZSBub25jZQ=='}\r\n`}Sec-WebSocket-Version: ${o.version ?? '13'}\r\nCookie: sid=some-session\r\n\r\n`;
    const cases: [string, string, string, string?][] = [
      [up({ method: 'POST' }), 'HTTP/1.1 405 Method Not Allowed', 'Method not allowed: a WebSocket upgrade is a GET', 'Allow: GET'],
      [up({ upgrade: 'h2c' }), 'HTTP/1.1 400 Bad Request', 'Bad request: not a WebSocket upgrade (Upgrade: websocket)'],
      [up({ key: null }), 'HTTP/1.1 400 Bad Request', 'Bad request: missing or invalid Sec-WebSocket-Key'],
      [up({ key: 'short' }), 'HTTP/1.1 400 Bad Request', 'Bad request: missing or invalid Sec-WebSocket-Key'],
      [up({ version: '12' }), 'HTTP/1.1 400 Bad Request', 'Bad request: unsupported Sec-WebSocket-Version', 'Sec-WebSocket-Version: 13, 8'],
    ];
    const got = await Promise.all(
      cases.map(async ([raw]) => {
        const socket = connect(server.port, '127.0.0.1');
        let text = '';
        socket.setEncoding('latin1');
        socket.on('data', (d: string) => (text += d));
        socket.on('error', () => undefined);
        socket.write(raw);
        await new Promise((resolve) => socket.once('close', resolve));
        return text;
      }),
    );
    for (const [i, [, status, error, header]] of cases.entries()) {
      const answer = got[i]!;
      const end = answer.indexOf('\r\n\r\n');
      expect(answer.split('\r\n', 1)[0], error).toBe(status);
      expect(JSON.parse(answer.slice(end + 4)), error).toEqual({ error });
      for (const h of ['Cache-Control: no-store', 'Content-Type: application/json; charset=utf-8', 'Connection: close', ...(header ? [header] : [])])
        expect(answer.slice(0, end), error).toContain(`\r\n${h}`);
    }
    expect(store.failures).toBe(0);
    expect(await server.metrics.text()).toMatch(/gateway_upgrades_refused_total\{status="400"\} 4/);
  });

  it('refuses upgrades while draining (503)', async () => {
    const { server } = await start();
    const d = server.drain();
    const r = await refusal(new Peer(server.url)).catch((e: Error) => e.message);
    expect(r).toMatch(/HTTP 503|ECONNREFUSED|socket hang up/);
    await d;
  });
});

describe('browser role', () => {
  const FORBIDDEN = {
    create_session: { user_id: 'u1' },
    regenerate_session: { old_session_id: 'x' },
    list_sessions: { user_id: 'u1' },
    destroy_session_handle: { user_id: 'u1', handle: 'h' },
    revoke_user_sessions: { user_id: 'u1' },
    generate_access_token: { payload: { sub: 'u1' } },
  };

  it('gets error 1001 for every type docs/protocol.md does not list for browsers, and stays open', async () => {
    const { server } = await start();
    const b = browser(server.url);
    await b.opened;
    for (const [type, fields] of Object.entries(FORBIDDEN)) {
      const r = await b.call(type, fields);
      expect(r, type).toMatchObject({ type: 'error', code: 1001 });
      expect(r.text).toContain(type);
    }
    expect(b.ws.readyState).toBe(WebSocket.OPEN);
  });

  it('may send the listed types', async () => {
    const { server } = await start();
    const b = browser(server.url);
    await b.opened;
    const replies = {
      init: [{ node_id: 'n1' }, 'init_ok'],
      validate_session: [{ session_id: 'x' }, 'session_invalid'],
      subscribe_session: [{ session_id: 'x' }, 'session_invalid'],
      unsubscribe_session: [{ session_id: 'x' }, 'unsubscribed'],
      destroy_session: [{ session_id: 'x' }, 'session_destroyed'],
      verify_token: [{ token: 'a.b.c' }, 'token_invalid'],
      refresh_token: [{ refresh_token: 'x' }, 'token_invalid'],
      revoke_token: [{ token: 'a.b.c' }, 'token_invalid'],
      exchange_session: [{ session_id: 'x' }, 'session_invalid'],
    } as const;
    for (const [type, [fields, reply]] of Object.entries(replies)) {
      expect((await b.call(type, fields)).type, type).toBe(reply);
    }
  });

  it('the same gateway answers the same request from a service: the roles share one pipeline', async () => {
    const { server } = await start();
    const s = service(server.url);
    await s.opened;
    const r = await s.call('generate_access_token', { payload: { sub: 'u1' } });
    expect(r.type).toBe('token_generated');
    const b = browser(server.url);
    await b.opened;
    expect(await b.call('verify_token', { token: r.access_token })).toMatchObject({ type: 'token_valid', payload: { sub: 'u1' } });
  });
});

describe('http', () => {
  it('serves /healthz, /readyz, and 404 elsewhere', async () => {
    const { http } = await start();
    expect(await fetchRaw(`${http}/healthz`)).toMatchObject({ status: 200, body: 'ok\n' });
    expect(await fetchRaw(`${http}/readyz`)).toMatchObject({ status: 200, body: 'ready\n' });
    expect((await fetchRaw(`${http}/nothing-here`)).status).toBe(404);
    expect((await fetchRaw(`${http}/healthz`, { method: 'POST' })).status).toBe(405);
  });

  it('a path served by no route is 404 whatever the method, not 405 (Allow would name methods of a resource that does not exist)', async () => {
    const { http } = await start();
    for (const path of ['/nothing-here', '/v1/rcp', '/v1/rpc/', '/oauth2/introspection', '/metrics/']) {
      for (const method of ['POST', 'PUT', 'DELETE']) {
        const r = await fetchRaw(`${http}${path}`, { method });
        expect(r.status, `${method} ${path}`).toBe(404);
        expect(r.headers.allow, `${method} ${path}`).toBeUndefined();
      }
    }
    // A path that is served still answers 405 to another method, with what it allows.
    const wrongMethod = await fetchRaw(`${http}/readyz`, { method: 'POST' });
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.allow).toBe('GET, HEAD');
  });

  it('/readyz is 503 while the store is unreachable', async () => {
    const { http, store } = await startWithStoreDouble();
    store.down = true;
    expect(await fetchRaw(`${http}/readyz`)).toMatchObject({ status: 503, body: 'store unavailable\n' });
    store.down = false;
    expect(await fetchRaw(`${http}/readyz`)).toMatchObject({ status: 200, body: 'ready\n' });
  });

  it('/autosession is 404 without --dev', async () => {
    const { http } = await start();
    for (const method of ['GET', 'POST', 'DELETE']) expect((await fetchRaw(`${http}/autosession`, { method })).status).toBe(404);
  });

  it('/autosession refuses a body past 4 KB as soon as it passes (413) and closes the connection: the rest of the body is not read', async () => {
    const { server } = await start({ GATEWAY_DEV: '1' });
    const socket = connect(server.port, '127.0.0.1');
    let answer = '';
    let closed = false;
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (answer += d));
    socket.on('close', () => (closed = true));
    socket.on('error', () => undefined);
    socket.write('POST /autosession HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n');
    // A body without end: 1 KiB chunks for as long as the connection is open.
    const chunk = `400\r\n${' '.repeat(1024)}\r\n`;
    let sent = 0;
    const timer = setInterval(() => {
      if (closed) return;
      for (let i = 0; i < 8; i++) socket.write(chunk);
      sent += 8;
    }, 5);
    try {
      await waitForCount(() => (closed ? 1 : 0), 1, 5_000, 'closed connections');
    } finally {
      clearInterval(timer);
      socket.destroy();
    }
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(answer).toContain('Body too large (4 KB at most)');
    expect(sent).toBeGreaterThan(4);
  });

  it('/autosession with --dev sets an HttpOnly, SameSite=Strict cookie and tells who is logged in', async () => {
    const { http } = await start({ GATEWAY_DEV: '1' });
    const r = await fetchRaw(`${http}/autosession?ttl=120`, { method: 'POST' });
    expect(r.status).toBe(201);
    const cookie = String(r.headers['set-cookie']);
    expect(cookie).toMatch(/^sid=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/; Max-Age=120$/);
    expect(JSON.parse(r.body)).toMatchObject({ user_id: 'demo-user', expires_in: 120 });
    expect(r.body).not.toContain(cookie.split(';')[0]!.slice(4));
    const sid = cookie.split(';')[0]!;
    expect(JSON.parse((await fetchRaw(`${http}/autosession`, { headers: { Cookie: sid } })).body)).toMatchObject({ user_id: 'demo-user', expires_in: 120 });
    // X-Forwarded-Proto from a peer that is not a trusted proxy proves nothing: no Secure.
    const forged = await fetchRaw(`${http}/autosession`, { method: 'POST', headers: { 'X-Forwarded-Proto': 'https' } });
    expect(String(forged.headers['set-cookie'])).toMatch(/^sid=[^;]+; HttpOnly; SameSite=Strict; Path=\/; Max-Age=3600$/);
    // Bounded ttl, other origins refused, logout ends the session.
    expect((await fetchRaw(`${http}/autosession?ttl=0`, { method: 'POST' })).status).toBe(400);
    expect((await fetchRaw(`${http}/autosession?ttl=9999999`, { method: 'POST' })).status).toBe(400);
    expect((await fetchRaw(`${http}/autosession`, { method: 'POST', headers: { Origin: 'http://evil.example' } })).status).toBe(403);
    expect((await fetchRaw(`${http}/autosession`, { method: 'DELETE', headers: { Cookie: sid } })).status).toBe(200);
    expect((await fetchRaw(`${http}/autosession`, { headers: { Cookie: sid } })).status).toBe(204);
    expect((await fetchRaw(`${http}/autosession`)).status).toBe(204);
  });

  it('/autosession GET sets the cookie again to the end the page moved ("Stay signed in"), so a reload after the old end finds the session', async () => {
    const { server, http, clock } = await start({ GATEWAY_DEV: '1' });
    const sid = String((await fetchRaw(`${http}/autosession?ttl=20`, { method: 'POST' })).headers['set-cookie']).split(';')[0]!;
    const page = browser(server.url, { cookie: sid });
    await page.opened;
    clock.advance(15_000);
    // The page's bound socket extends its session: the end moves from 5 s to 20 s from now.
    expect(await page.call('extend_session')).toMatchObject({ type: 'session_extended', expires_in: 20 });
    const r = await fetchRaw(`${http}/autosession`, { headers: { Cookie: sid } });
    expect(JSON.parse(r.body)).toMatchObject({ user_id: 'demo-user', expires_in: 20 });
    expect(r.headers['set-cookie']).toEqual([`${sid}; HttpOnly; SameSite=Strict; Path=/; Max-Age=20`]);
    // No live session: no cookie.
    expect((await fetchRaw(`${http}/autosession`, { method: 'DELETE', headers: { Cookie: sid } })).status).toBe(200);
    const gone = await fetchRaw(`${http}/autosession`, { headers: { Cookie: sid } });
    expect(gone.status).toBe(204);
    expect(gone.headers['set-cookie']).toBeUndefined();
  });

  it("/autosession's connections are logged with their transport, role and address, and their lines carry the connection id", async () => {
    const lines: string[] = [];
    const log = pino({ level: 'debug' }, { write: (l: string) => void lines.push(l) });
    const { http } = await start({ GATEWAY_DEV: '1' }, { log });
    expect((await fetchRaw(`${http}/autosession`, { method: 'POST' })).status).toBe(201);
    const entries = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const opened = entries.filter((e) => e.event === 'connection opened');
    expect(opened).toEqual([expect.objectContaining({ transport: 'http', role: 'dev-login', remote: '127.0.0.1', conn: expect.any(String) })]);
    expect(entries.filter((e) => e.event === 'session created')).toEqual([expect.objectContaining({ conn: opened[0]!.conn })]);
  });

  it('serves the demo page with a strict CSP, and the client module', async () => {
    const { http } = await start();
    const page = await fetchRaw(`${http}/`);
    expect(page.status, 'the demo page (npm run build makes it)').toBe(200);
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    expect(page.body).toContain('/client/demo/demo.js');
    const mod = await fetchRaw(`${http}/client/src/gateway-client.js`);
    expect(mod.status).toBe(200);
    expect(mod.headers['content-type']).toMatch(/^text\/javascript/);
    expect(mod.body).toContain('class GatewayClient');
    // The client's one run-time import from the server's tree: the protocol's constants.
    const codes = await fetchRaw(`${http}/src/protocol/codes.js`);
    expect(codes.status).toBe(200);
    expect(codes.body).toContain('SESSION_REGENERATED');
    expect((await fetchRaw(`${http}/src/protocol/reply-schemas.js`)).status).toBe(404);
    expect((await fetchRaw(`${http}/client/../../package.json`)).status).toBe(404);
  });
});
