import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { required } from '../helpers/required.js';
import { ensureBuilt, killAll, spawnServer, type ServerProcess } from '../ws/process.js';
import { FileBrowser, Proxy, serviceCall, texts } from './browser.js';

/**
 * The faults a three-tab browser run found in the client, each shown fixed in Chromium. The
 * page and its WebSocket go through the test's own TCP proxy, so the path can go silent.
 */

const SERVICE_KEY = 'kqS1ha2VbEV4ZYk6x3m2b6rj7Qv0m8Zc9uXk1pW3yT0=';
/** The demo's heartbeat: a ping after 5 s of silence, dead 3 s later. */
const HEARTBEAT_BOUND_MS = 8000;

let server: ServerProcess;
const browser = new FileBrowser();
let proxy: Proxy;
let origin: string;

const hasChromium = required('chromium');

beforeAll(async () => {
  if (!hasChromium) return;
  ensureBuilt();
  proxy = new Proxy();
  const port = await proxy.listen();
  origin = `http://127.0.0.1:${port}`;
  server = await spawnServer(
    { GATEWAY_JWT_SECRET: 'UTHe/v2YMM8TlXUS87sILxhD3nOmpfvculqST6mteQc=', GATEWAY_SERVICE_KEY: SERVICE_KEY, GATEWAY_ALLOWED_ORIGINS: origin },
    ['--dev'],
  );
  proxy.target = Number(new URL(server.http).port);
  await browser.launch();
}, 120_000);

afterAll(async () => {
  await proxy?.close();
  await killAll();
});

/** `n` tabs of the demo, logged in (600 s) in the first; resolves once all show the bound session. */
async function tabs(n: number): Promise<Page[]> {
  const context = await browser.newContext();
  const pages: Page[] = [];
  for (let i = 0; i < n; i++) pages.push(await context.newPage());
  await pages[0]!.goto(origin + '/');
  await pages[0]!.fill('#ttl', '600');
  await pages[0]!.click('#login');
  await pages[0]!.locator('#connection', { hasText: 'bound to your session' }).waitFor({ timeout: 10_000 });
  for (const p of pages.slice(1)) await p.goto(origin + '/');
  for (const p of pages) await p.locator('#connection', { hasText: 'bound to your session' }).waitFor({ timeout: 10_000 });
  return pages;
}

describe.skipIf(!hasChromium)('client faults, fixed (Chromium)', () => {
  for (const lateMs of [100, 1000]) {
    it(`a regeneration keeps every tab signed in (new cookie ${lateMs} ms after the push)`, { timeout: 60_000 }, async () => {
      const pages = await tabs(3);
      const [old] = await browser.context.cookies();
      const reconnects = (p: Page) => p.locator('#log li', { hasText: 'reconnected' }).count();
      const before = await Promise.all(pages.map(reconnects));
      const r = await serviceCall(server.url, SERVICE_KEY, { type: 'regenerate_session', old_session_id: old!.value });
      expect(r.type).toBe('session_regenerated');
      // The push reached the tabs: each logs the regeneration.
      for (const p of pages) await p.locator('#log li', { hasText: 'session regenerated: same session' }).waitFor({ timeout: 5000 });
      // The new cookie comes later, in an HTTP response to one tab (here: set by the test).
      await new Promise((res) => setTimeout(res, lateMs));
      await browser.context.addCookies([{ ...old!, value: r.new_session_id as string }]);
      // Each tab saw the socket come back (bound to the new cookie), and still shows the user.
      for (const [i, p] of pages.entries()) await expect.poll(() => reconnects(p), { timeout: 10_000 }).toBeGreaterThan(before[i]!);
      for (const p of pages) await p.locator('#connection', { hasText: 'bound to your session' }).waitFor({ timeout: 10_000 });
      expect(await texts(pages, '#user')).toEqual(['demo-user', 'demo-user', 'demo-user']);
      for (const p of pages) expect(await p.isHidden('#notice')).toBe(true);
      // Bound to the new session: its end is pushed to every tab.
      await serviceCall(server.url, SERVICE_KEY, { type: 'destroy_session', session_id: r.new_session_id });
      for (const p of pages)
        await p.locator('#notice', { hasText: 'Session ended (reason: destroyed). Pushed by the gateway' }).waitFor({ state: 'visible', timeout: 5000 });
    });
  }

  it('a dead path is noticed: the page shows "reconnecting" within the heartbeat bound, and comes back', { timeout: 60_000 }, async () => {
    const [page] = await tabs(1);
    proxy.blackhole();
    const t0 = Date.now();
    await page!.locator('#connection[data-state="reconnecting"]', { hasText: 'reconnecting' }).waitFor({ timeout: HEARTBEAT_BOUND_MS + 7000 });
    const noticed = Date.now() - t0;
    expect(noticed).toBeLessThan(HEARTBEAT_BOUND_MS + 2000);
    expect(await page!.locator('#log li', { hasText: 'no answer to the heartbeat' }).count()).toBe(1);
    proxy.restore();
    await page!.locator('#connection', { hasText: 'bound to your session' }).waitFor({ timeout: 20_000 });
    expect(await page!.isHidden('#notice')).toBe(true);
  });

  it('going back online reconnects at once, not at the backoff slot', { timeout: 90_000 }, async () => {
    const [page] = await tabs(1);
    await browser.context.setOffline(true);
    // Wait until the next attempt is at least 3 s away.
    const slot = page!.locator('#log li', { hasText: /reconnecting, attempt \d+, in ([3-9]\d{3}|\d{5,}) ms/ });
    await slot.first().waitFor({ timeout: 40_000 });
    const delayMs = Number(/in (\d+) ms/.exec((await slot.first().textContent())!)![1]);
    const t0 = Date.now();
    await browser.context.setOffline(false);
    await page!.locator('#connection', { hasText: 'bound to your session' }).waitFor({ timeout: 20_000 });
    const back = Date.now() - t0;
    expect(back).toBeLessThan(Math.min(2000, delayMs));
  });
});
