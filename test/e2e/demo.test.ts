import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM, required } from '../helpers/required.js';
import { ARGS, metric } from './browser.js';
import { ensureBuilt, killAll, ROOT, spawnServer, type ServerProcess } from '../ws/process.js';

const ARTIFACTS = join(ROOT, 'test', 'artifacts');

let browser: Browser | undefined;
let server: ServerProcess;

const hasChromium = required('chromium');

beforeAll(async () => {
  if (!hasChromium) return;
  ensureBuilt();
  server = await spawnServer({ GATEWAY_EXPIRY_WARNING: '2', GATEWAY_JWT_SECRET: 'UTHe/v2YMM8TlXUS87sILxhD3nOmpfvculqST6mteQc=' }, ['--dev']);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
  mkdirSync(ARTIFACTS, { recursive: true });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await killAll();
});

describe.skipIf(!hasChromium)('demo page in headless Chromium', () => {
  /** A browser context of its own whose page logged in (ttl 600 s) and is bound to that session. */
  async function loggedIn() {
    const context = await browser!.newContext();
    const page = await context.newPage();
    await page.goto(server.http + '/');
    await page.fill('#ttl', '600');
    await page.click('#login');
    await page.locator('#connection', { hasText: 'bound to your session' }).waitFor({ timeout: 10_000 });
    return { context, page };
  }

  it('logs in with a short TTL, counts down, and shows the end the server pushes', { timeout: 60_000 }, async () => {
    const page = await browser!.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    await page.goto(server.http + '/');
    await page.locator('#connection', { hasText: 'open' }).waitFor({ timeout: 10_000 });

    await page.fill('#ttl', '5');
    const loggedIn = Date.now();
    await page.click('#login');
    await page.locator('#user', { hasText: 'demo-user' }).waitFor();
    await page.locator('#connection', { hasText: 'open' }).waitFor();
    // The cookie is HttpOnly: the page's scripts cannot read the session id.
    expect(await page.evaluate(() => document.cookie)).toBe('');

    // The countdown runs.
    const first = parseFloat((await page.textContent('#countdown'))!);
    expect(first).toBeGreaterThan(3);
    expect(first).toBeLessThanOrEqual(5);
    await page.waitForTimeout(600);
    const second = parseFloat((await page.textContent('#countdown'))!);
    expect(second).toBeLessThan(first);
    await page.screenshot({ path: join(ARTIFACTS, 'demo-counting-down.png') });

    // The warning arrives GATEWAY_EXPIRY_WARNING (2 s) before the end, and counts down itself.
    await page.locator('#warning').waitFor({ state: 'visible', timeout: 6000 });
    const warned = parseFloat(/ends in ([\d.]+) s/.exec((await page.textContent('#warning'))!)![1]!);
    expect(warned).toBeLessThanOrEqual(2);
    await page.waitForFunction((w) => parseFloat(/ends in ([\d.]+) s/.exec(document.getElementById('warning')!.textContent!)?.[1] ?? 'NaN') < w - 0.3, warned, {
      timeout: 3000,
    });
    // Then the end, pushed by the gateway: no reload, no polling.
    const notice = page.locator('#notice');
    await notice.waitFor({ state: 'visible', timeout: 6000 });
    const endedAfter = Date.now() - loggedIn;
    expect(await notice.textContent()).toMatch(/^Session ended \(reason: ttl\)\. Pushed by the gateway at /);
    expect(await page.textContent('#countdown')).toBe('ended');
    expect(await page.textContent('#user')).toBe('not logged in');
    await page.locator('#connection', { hasText: 'closed: your session ended' }).waitFor();
    expect(endedAfter).toBeGreaterThan(4500);
    expect(endedAfter).toBeLessThan(7000);
    await page.screenshot({ path: join(ARTIFACTS, 'demo-session-ended.png'), fullPage: true });
    // The log names each event's kind, oldest first.
    const lines = await page.locator('#log li').allTextContents();
    const at = (re: RegExp) => lines.findIndex((l) => re.test(l));
    expect(at(/you logged in as demo-user for 5 s/)).toBeGreaterThanOrEqual(0);
    expect(at(/push session_expiring/)).toBeGreaterThan(at(/you logged in/));
    expect(at(/push session ended, reason ttl/)).toBeGreaterThan(at(/push session_expiring/));
    // A reload keeps the ended state (the page had a session), not as a fresh push.
    await page.reload();
    await page.locator('#notice', { hasText: 'Session ended (reason: ttl)' }).waitFor({ state: 'visible', timeout: 10_000 });
    expect(await page.textContent('#notice')).toMatch(/before this page was loaded\.$/);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('a stale cookie on a fresh load shows no session, not "Session ended"', async () => {
    const { context, page } = await loggedIn();
    const [cookie] = await context.cookies();
    await page.close();
    // The session is ended behind the browser's back (no page open); a new context has the cookie only.
    const fresh = await browser!.newContext();
    await fresh.addCookies([cookie!]);
    const r = await fetch(server.http + '/autosession', { method: 'DELETE', headers: { Cookie: `${cookie!.name}=${cookie!.value}` } });
    expect(r.status).toBe(200);
    const p2 = await fresh.newPage();
    await p2.goto(server.http + '/');
    await p2.locator('#connection', { hasText: 'closed: no live session for this browser' }).waitFor({ timeout: 10_000 });
    expect(await p2.isHidden('#notice')).toBe(true);
    expect(await p2.textContent('#user')).toBe('not logged in');
    await context.close();
    await fresh.close();
  });

  it('a backend that cannot say whether the session lives (503) while the page reconnects shows no end', { timeout: 60_000 }, async () => {
    const { context, page } = await loggedIn();
    // From now on the backend answers who is logged in with 503, as it does while the gateway's store is away.
    await page.route('**/autosession', (route) =>
      route.request().method() === 'GET'
        ? route.fulfill({ status: 503, contentType: 'application/json', body: '{"error":"Service unavailable"}' })
        : route.continue(),
    );
    await context.setOffline(true);
    // The first reconnect asked the backend (503) and failed: the next one is scheduled.
    await page.locator('#log li', { hasText: 'reconnecting, attempt 2' }).waitFor({ timeout: 30_000 });
    await context.setOffline(false);
    await page.locator('#log li', { hasText: 'reconnected' }).waitFor({ timeout: 20_000 });
    await expect.poll(() => metric(server.http, 'gateway_bound_connections'), { timeout: 10_000 }).toBe(1);
    expect(await page.locator('#log li', { hasText: 'session ended' }).count()).toBe(0);
    expect(await page.isHidden('#notice')).toBe(true);
    expect(await page.textContent('#user')).toBe('demo-user');
    await context.close();
  });

  it('"End session now" is pushed at once (reason destroyed)', async () => {
    const page = await browser!.newPage();
    await page.goto(server.http + '/');
    await page.locator('#connection', { hasText: 'open' }).waitFor({ timeout: 10_000 });
    await page.fill('#ttl', '600');
    await page.click('#login');
    await page.locator('#user', { hasText: 'demo-user' }).waitFor();
    await page.locator('#connection', { hasText: 'open' }).waitFor();
    // The page's socket is bound to the new session (its reconnect after the login is done):
    // an end before that is learned at the next connect, not pushed.
    await expect.poll(() => metric(server.http, 'gateway_bound_connections'), { timeout: 10_000 }).toBe(1);
    const t0 = Date.now();
    await page.click('#logout');
    await page.locator('#notice', { hasText: 'reason: destroyed' }).waitFor({ state: 'visible', timeout: 5000 });
    // At once (not at the 600 s end), with slack for a browser on a busy 2-core machine.
    expect(Date.now() - t0).toBeLessThan(2000);
    await page.close();
  });
});
