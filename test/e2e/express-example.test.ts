import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/redis-server.js';
import { CHROMIUM, required } from '../helpers/required.js';
import { postLogoutToken, startTestIdp, type TestIdp } from '../helpers/test-idp.js';
import { ensureBuilt, killAll, ROOT, spawnServer, type ServerProcess } from '../ws/process.js';
import { ARGS, metric } from './browser.js';

/**
 * examples/express in real Chromium: the app (the middleware, its login form, the protected
 * page following its session over the gateway's WebSocket), a gateway, and a test IdP whose
 * back-channel logout the gateway receives.
 */

const SERVICE_KEY = randomBytes(32).toString('base64');
const BROWSER_SOCKETS = 'gateway_connections{role="browser"}';
const ARTIFACTS = join(ROOT, 'test', 'artifacts');

let browser: Browser | undefined;
let gateway: ServerProcess;
let idp: TestIdp | undefined;
let app: { child: ChildProcess; origin: string } | undefined;
const contexts: BrowserContext[] = [];

const hasChromium = required('chromium');

/** Runs examples/express/app.mjs as its README says; resolves once it prints where it listens. */
function startApp(env: Record<string, string>): Promise<{ child: ChildProcess; origin: string }> {
  const child = spawn(process.execPath, [join(ROOT, 'examples', 'express', 'app.mjs')], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the example app did not start: ${out}`)), 15_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /listening at (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, origin: m[1]! });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the example app exited (${code ?? signal}): ${out}`));
    });
  });
}

beforeAll(async () => {
  if (!hasChromium) return;
  ensureBuilt();
  idp = await startTestIdp();
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  gateway = await spawnServer({
    GATEWAY_SERVICE_KEY: SERVICE_KEY,
    GATEWAY_ALLOWED_ORIGINS: origin,
    ...idp.gatewayEnv,
  });
  app = await startApp({ PORT: String(port), HOST: '127.0.0.1', GATEWAY_URL: gateway.url, GATEWAY_SERVICE_KEY: SERVICE_KEY });
  expect(app.origin).toBe(origin);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
  mkdirSync(ARTIFACTS, { recursive: true });
}, 120_000);

afterEach(async () => {
  for (const c of contexts.splice(0)) await c.close();
});

afterAll(async () => {
  await browser?.close();
  app?.child.kill('SIGKILL');
  await idp?.close();
  await killAll();
});

/** A fresh browser (its own cookies) signed in as `name` through the form; resolves on the protected page, following its session. */
async function signIn(name: string, via: 'form' | 'idp' = 'form', origin = app!.origin): Promise<Page> {
  const context = await browser!.newContext();
  contexts.push(context);
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${origin}/`);
  expect(new URL(page.url()).pathname).toBe('/login');
  await page.fill('#name', name);
  await page.click(via === 'idp' ? '#login-idp' : '#login');
  await page.locator('#user', { hasText: name }).waitFor({ timeout: 10_000 });
  await page.locator('#connection', { hasText: 'following your session' }).waitFor({ timeout: 10_000 });
  expect(errors).toEqual([]);
  // The session cookie is HttpOnly: the page's scripts never see the id.
  expect(await page.evaluate(() => document.cookie)).toBe('');
  return page;
}

/** What the app answers this browser now (its cookies): 200 while the session lives. */
const sessionStatus = async (page: Page) => (await page.request.get(`${app!.origin}/api/session`, { maxRedirects: 0 })).status();

describe.skipIf(!hasChromium)('examples/express in headless Chromium', () => {
  it('"sign out everywhere" from a second browser: the first is told at once, and its next request is refused', { timeout: 60_000 }, async () => {
    const first = await signIn('alice');
    await expect.poll(() => metric(gateway.http, BROWSER_SOCKETS), { timeout: 10_000 }).toBeGreaterThanOrEqual(1);
    expect(await sessionStatus(first)).toBe(200);
    await first.screenshot({ path: join(ARTIFACTS, 'express-example-signed-in.png') });

    const second = await signIn('alice');
    await second.click('#logout-everywhere');
    await second.waitForURL(`${app!.origin}/login`);

    const notice = first.locator('#notice');
    await notice.waitFor({ state: 'visible', timeout: 5000 });
    expect(await notice.getAttribute('data-reason')).toBe('revoked');
    expect(await notice.textContent()).toBe('Your session ended (revoked), pushed by the gateway. Sign in again to go on.');
    await first.screenshot({ path: join(ARTIFACTS, 'express-example-ended.png') });
    expect(await sessionStatus(first)).toBe(401);
    await first.goto(`${app!.origin}/`);
    expect(new URL(first.url()).pathname).toBe('/login');
    expect(await sessionStatus(second)).toBe(401);
  });

  it('"sign out" ends this browser\'s session only', { timeout: 60_000 }, async () => {
    const first = await signIn('carol');
    const second = await signIn('carol');
    await second.click('#logout');
    await second.waitForURL(`${app!.origin}/login`);
    expect(await sessionStatus(second)).toBe(401);
    expect(await sessionStatus(first)).toBe(200);
    expect(await first.locator('#notice').isHidden()).toBe(true);
  });

  it('a state-changing POST from another origin is refused (CSRF)', async () => {
    const page = await signIn('dave');
    const cookies = await page.context().cookies();
    const cookie = cookies.map((c) => `${c.name}=${c.value}`).join('; ');
    for (const headers of [{ origin: 'http://evil.example' }, {}] as Record<string, string>[]) {
      const res = await fetch(`${app!.origin}/logout-everywhere`, { method: 'POST', redirect: 'manual', headers: { cookie, ...headers } });
      expect(res.status).toBe(403);
    }
    expect(await sessionStatus(page)).toBe(200);
  });

  it('a gateway outage is no end: while the app answers 503 the page shows no sign-out and keeps its buttons', { timeout: 60_000 }, async () => {
    // A gateway and an app of this test's own: the shared ones stay up for the other tests.
    const port = await freePort();
    const origin = `http://127.0.0.1:${port}`;
    const own = await spawnServer({ GATEWAY_SERVICE_KEY: SERVICE_KEY, GATEWAY_ALLOWED_ORIGINS: origin });
    const ownApp = await startApp({ PORT: String(port), HOST: '127.0.0.1', GATEWAY_URL: own.url, GATEWAY_SERVICE_KEY: SERVICE_KEY });
    try {
      const page = await signIn('erin', 'form', origin);
      const answers: number[] = [];
      page.on('response', (r) => {
        if (new URL(r.url()).pathname === '/api/session') answers.push(r.status());
      });
      own.child.kill('SIGKILL');
      await own.exited;
      // The client asks /api/session before each reconnect, and each one after the answer to
      // the last was acted on: by the second 503 the first has had its effect.
      await expect.poll(() => answers.filter((s) => s === 503).length, { timeout: 20_000 }).toBeGreaterThanOrEqual(2);
      expect(await page.locator('#notice').isHidden()).toBe(true);
      expect(await page.locator('#connection').textContent()).toBe('reconnecting…');
      expect(await page.locator('#logout').isEnabled()).toBe(true);
      expect(await page.locator('#logout-everywhere').isEnabled()).toBe(true);
    } finally {
      ownApp.child.kill('SIGKILL');
    }
  });

  it("back-channel logout: the IdP's logout token ends the session, and the page shows it within 100 ms of the 200", { timeout: 60_000 }, async () => {
    const page = await signIn('bob', 'idp');
    const other = await signIn('bob'); // the same user, not through that IdP login: not ended by it
    const sid = await page.textContent('#idp-sid');
    expect(sid).toMatch(/^[\w-]{16,}$/);
    await expect.poll(() => metric(gateway.http, BROWSER_SOCKETS), { timeout: 10_000 }).toBeGreaterThanOrEqual(1);

    const token = await idp!.logoutToken({ sid: sid! });
    // Date.now() in the page and here read the same system clock (one machine).
    const posted = Date.now();
    const res = await postLogoutToken(gateway.http, token);
    const answered = Date.now();
    expect(res.status).toBe(200);

    const notice = page.locator('#notice');
    await notice.waitFor({ state: 'visible', timeout: 5000 });
    expect(await notice.getAttribute('data-reason')).toBe('revoked');
    const shownAt = Number(await notice.getAttribute('data-shown-at'));
    console.info(`back-channel logout: shown ${shownAt - posted} ms after the POST was sent, ${shownAt - answered} ms after its 200`);
    expect(shownAt).toBeGreaterThanOrEqual(posted);
    expect(shownAt - answered).toBeLessThanOrEqual(100);
    expect(await sessionStatus(page)).toBe(401);
    expect(await sessionStatus(other)).toBe(200);
    expect(await other.locator('#notice').isHidden()).toBe(true);
  });
});

describe('examples/express set up wrong', () => {
  it('a service key the gateway refuses stops the app with one line that says so (and not the key)', { timeout: 60_000 }, async () => {
    ensureBuilt();
    const gw = await spawnServer({ GATEWAY_SERVICE_KEY: SERVICE_KEY });
    const wrong = randomBytes(32).toString('base64');
    const started = startApp({ PORT: String(await freePort()), HOST: '127.0.0.1', GATEWAY_URL: gw.url, GATEWAY_SERVICE_KEY: wrong });
    const err = await started.then(
      (a) => {
        a.child.kill('SIGKILL');
        return new Error('the app started');
      },
      (e: unknown) => e as Error,
    );
    expect(err.message).toMatch(
      /^the example app exited \(1\): connecting to the gateway at \S+…\nThe gateway refused the service key \(HTTP 401 to the WebSocket upgrade\): the serviceKey option must be the gateway's GATEWAY_SERVICE_KEY\.\n$/,
    );
    expect(err.message).not.toContain(wrong);
  });
});
