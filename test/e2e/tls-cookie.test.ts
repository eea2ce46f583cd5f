import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { createServer, type Server } from 'node:https';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { WebSocket as PageSocket } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/redis-server.js';
import { required } from '../helpers/required.js';
import { ensureBuilt, killAll, spawnServer, type ServerProcess } from '../ws/process.js';
import { FileBrowser, serviceCall } from './browser.js';

/**
 * The `__Host-` session cookie end to end: Chromium reaches the gateway over TLS through a
 * reverse proxy of the test's own (https in front, plain TCP behind, `X-Forwarded-Proto:
 * https`), which the gateway trusts (GATEWAY_TRUSTED_PROXIES). The certificate is made for
 * `localhost` at test time and accepted by its SPKI pin, not by ignoring every error.
 */

const SERVICE_KEY = 'Vn3QhXq0b8cJm2Lr5tYw1zKp7sD4fG6hE9aU2iO0xBc=';

let dir: string;
let proxy: Server;
let server: ServerProcess;
const browser = new FileBrowser();
/** The page's origin through the proxy, e.g. https://localhost:41234. */
let httpsOrigin: string;

const hasChromium = required('chromium');
const hasOpenssl = required('openssl');

/** A self-signed certificate for localhost, valid a day; returns its files and the base64 SHA-256 of its SPKI (Chromium's pin). */
function makeCertificate(): { key: Buffer; cert: Buffer; spki: string } {
  const [key, cert] = [join(dir, 'key.pem'), join(dir, 'cert.pem')];
  // -nodes: an unencrypted key (it lives a few seconds, in a temporary directory).
  const args = '-x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost -addext subjectAltName=DNS:localhost';
  execFileSync('openssl', ['req', ...args.split(' '), '-keyout', key, '-out', cert], { stdio: 'pipe' });
  const pem = readFileSync(cert);
  const der = new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });
  return { key: readFileSync(key), cert: pem, spki: createHash('sha256').update(der).digest('base64') };
}

/** The request's headers as the proxy passes them on: what the client sent, plus where from and over what. */
function forwarded(req: IncomingMessage): IncomingHttpHeaders {
  const xff = [req.headers['x-forwarded-for'], req.socket.remoteAddress].filter(Boolean).join(', ');
  return { ...req.headers, 'x-forwarded-for': xff, 'x-forwarded-proto': 'https' };
}

/** A TLS-terminating reverse proxy to the gateway on 127.0.0.1:`target()`: requests through node:http, upgrades as raw TCP. */
function tlsProxy(tls: { key: Buffer; cert: Buffer }, target: () => number): Server {
  const upgraded = new Set<Socket>();
  const s = createServer(tls, (req, res) => {
    const up = request({ host: '127.0.0.1', port: target(), method: req.method, path: req.url, headers: forwarded(req) }, (r) => {
      res.writeHead(r.statusCode!, r.rawHeaders);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  s.on('upgrade', (req: IncomingMessage, client: Socket, head: Buffer) => {
    const up = connect(target(), '127.0.0.1', () => {
      const lines = Object.entries(forwarded(req)).map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(', ') : v}`);
      up.write(`${req.method} ${req.url} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`);
      up.write(head);
      client.pipe(up).pipe(client);
    });
    for (const sock of [client, up]) {
      upgraded.add(sock);
      sock.on('error', () => (client.destroy(), up.destroy()));
      sock.on('close', () => (upgraded.delete(sock), client.destroy(), up.destroy()));
    }
  });
  s.on('close', () => upgraded.forEach((sock) => sock.destroy()));
  return s;
}

beforeAll(async () => {
  if (!hasChromium || !hasOpenssl) return;
  ensureBuilt();
  dir = mkdtempSync(join(tmpdir(), 'ag-tls-'));
  const { key, cert, spki } = makeCertificate();
  let gatewayPort = 0;
  proxy = tlsProxy({ key, cert }, () => gatewayPort);
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  httpsOrigin = `https://localhost:${(proxy.address() as { port: number }).port}`;
  // The plain-http page is the gateway's own origin; a configured list replaces the default, so it is listed too.
  gatewayPort = await freePort();
  server = await spawnServer(
    {
      GATEWAY_PORT: String(gatewayPort),
      GATEWAY_JWT_SECRET: 'UTHe/v2YMM8TlXUS87sILxhD3nOmpfvculqST6mteQc=',
      GATEWAY_SERVICE_KEY: SERVICE_KEY,
      GATEWAY_TRUSTED_PROXIES: '127.0.0.1',
      GATEWAY_ALLOWED_ORIGINS: `${httpsOrigin},http://127.0.0.1:${gatewayPort}`,
    },
    ['--dev'],
  );
  expect(server.http).toBe(`http://127.0.0.1:${gatewayPort}`);
  // Chromium honours the pin only with a --user-data-dir, which Playwright always passes.
  await browser.launch([`--ignore-certificate-errors-spki-list=${spki}`]);
}, 120_000);

afterAll(async () => {
  proxy?.closeAllConnections();
  await new Promise((r) => (proxy ? proxy.close(r) : r(undefined)));
  await killAll();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Opens the demo at `origin` in a fresh context, logs in (600 s); resolves with the page, its login's Set-Cookie and its cookies as the browser stores them (DevTools protocol). */
async function login(origin: string) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const frames: { url: string; body: Record<string, unknown> }[] = [];
  const sockets: PageSocket[] = [];
  page.on('websocket', (ws) => {
    sockets.push(ws);
    ws.on('framereceived', (f) => frames.push({ url: ws.url(), body: (JSON.parse(String(f.payload)) as { body: Record<string, unknown> }).body }));
  });
  await page.goto(origin + '/');
  await page.locator('#connection', { hasText: 'open (no session)' }).waitFor({ timeout: 15_000 });
  await page.fill('#ttl', '600');
  const response = page.waitForResponse((r) => r.url().startsWith(origin + '/autosession') && r.request().method() === 'POST', { timeout: 15_000 });
  await page.click('#login');
  const setCookie = await (await response).headerValue('set-cookie');
  await page.locator('#connection', { hasText: 'bound to your session' }).waitFor({ timeout: 15_000 });
  const cdp = await context.newCDPSession(page);
  const { cookies } = await cdp.send('Network.getCookies', { urls: [origin + '/'] });
  return { page, setCookie: setCookie!.split(/;\s*/), cookies, frames, sockets };
}

const attributes = (setCookie: string[]) =>
  setCookie
    .slice(1)
    .map((a) => a.split('=')[0]!.toLowerCase())
    .sort();

describe.skipIf(!hasChromium || !hasOpenssl)('the __Host- session cookie over TLS, in Chromium through a trusted proxy', () => {
  it('https: __Host-sid (Secure, HttpOnly, Path=/, no Domain); the wss upgrade is bound by it and gets the end pushed', { timeout: 90_000 }, async () => {
    const { page, setCookie, cookies, frames, sockets } = await login(httpsOrigin);
    expect(page.url()).toBe(httpsOrigin + '/');
    expect(setCookie[0]).toMatch(/^__Host-sid=[\w-]+$/);
    expect(setCookie).toContain('Path=/');
    expect(attributes(setCookie)).toEqual(['httponly', 'max-age', 'path', 'samesite', 'secure']);
    // What Chromium kept (it drops a __Host- cookie that lacks Secure or Path=/, or has a Domain).
    expect(cookies).toHaveLength(1);
    const [cookie] = cookies;
    expect(cookie).toMatchObject({ name: '__Host-sid', domain: 'localhost', path: '/', secure: true, httpOnly: true, sameSite: 'Strict', session: false });
    expect(cookie!.value).toBe(setCookie[0]!.slice('__Host-sid='.length));
    expect(cookie!.sourceScheme).toBe('Secure');

    // The page's sockets all went through the proxy over TLS; the gateway binds one at its upgrade only if it read __Host-sid there.
    expect(sockets.length).toBeGreaterThanOrEqual(1);
    for (const ws of sockets) expect(ws.url()).toBe(`${httpsOrigin.replace(/^https/, 'wss')}/ws`);
    const r = await serviceCall(server.url, SERVICE_KEY, { type: 'destroy_session', session_id: cookie!.value });
    expect(r.type).toBe('session_destroyed');
    const ended = () => frames.filter((f) => f.body.type === 'session_expired');
    await expect.poll(() => ended().length, { timeout: 15_000 }).toBe(1);
    // bound: true goes only to a connection the cookie bound at the upgrade (a mere subscriber's push is not bound).
    expect(ended()[0]!.url).toBe(sockets[0]!.url());
    expect(ended()[0]!.body).toMatchObject({ type: 'session_expired', bound: true, reason: 'destroyed' });
    await page.locator('#log li', { hasText: '(close code 4001)' }).waitFor({ timeout: 15_000 });
    await expect.poll(() => sockets.filter((ws) => !ws.isClosed()).length, { timeout: 15_000 }).toBe(0);
    await page.locator('#notice', { hasText: 'Session ended (reason: destroyed). Pushed by the gateway' }).waitFor({ state: 'visible', timeout: 15_000 });
  });

  it('plain http straight to the gateway (no X-Forwarded-Proto): the unprefixed sid, not Secure', { timeout: 90_000 }, async () => {
    // This peer (127.0.0.1) is the trusted proxy's address too: the scheme comes from the header it lacks.
    const { setCookie, cookies } = await login(server.http);
    expect(setCookie[0]).toMatch(/^sid=[\w-]+$/);
    expect(attributes(setCookie)).toEqual(['httponly', 'max-age', 'path', 'samesite']);
    expect(cookies).toHaveLength(1);
    expect(cookies[0]).toMatchObject({ name: 'sid', domain: '127.0.0.1', path: '/', secure: false, httpOnly: true });
  });
});
