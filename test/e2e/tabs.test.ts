import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { required } from '../helpers/required.js';
import { ensureBuilt, killAll, spawnServer, type ServerProcess } from '../ws/process.js';
import { FileBrowser, metric, texts } from './browser.js';

/** Three tabs of the demo in one browser (one context: one origin's cookies, locks and channels). */

let server: ServerProcess;
const browser = new FileBrowser();
const BROWSER_SOCKETS = 'gateway_connections{role="browser"}';

const hasChromium = required('chromium');

beforeAll(async () => {
  if (!hasChromium) return;
  ensureBuilt();
  server = await spawnServer({ GATEWAY_JWT_SECRET: 'UTHe/v2YMM8TlXUS87sILxhD3nOmpfvculqST6mteQc=' }, ['--dev']);
  await browser.launch();
}, 120_000);

afterAll(async () => {
  await killAll();
});

/** Logs in on the first tab, then opens two more; resolves once all three show the bound session. */
async function threeTabs(ttl = 600): Promise<Page[]> {
  const context = await browser.newContext();
  const first = await context.newPage();
  await first.goto(server.http + '/');
  await first.fill('#ttl', String(ttl));
  await first.click('#login');
  await first.locator('#connection', { hasText: 'bound to your session' }).waitFor({ timeout: 10_000 });
  const pages = [first, await context.newPage(), await context.newPage()];
  for (const p of pages.slice(1)) await p.goto(server.http + '/');
  for (const p of pages) {
    await p.locator('#connection', { hasText: 'bound to your session' }).waitFor({ timeout: 10_000 });
    await p.locator('#user', { hasText: 'demo-user' }).waitFor();
  }
  return pages;
}

const leaderOf = async (pages: Page[]) => {
  const roles = await texts(pages, '#role');
  expect(roles.filter((r) => r === 'this tab holds the WebSocket')).toHaveLength(1);
  return pages[roles.indexOf('this tab holds the WebSocket')]!;
};

describe.skipIf(!hasChromium)('three tabs of the demo share one WebSocket', () => {
  it('one socket to the gateway; an extend in one tab and an end pushed to the leader show in all three', { timeout: 60_000 }, async () => {
    // 15 s: --dev warns 10 s before the end, so the warning (and its button) shows 5 s in.
    const pages = await threeTabs(15);
    // Counted on the server: the tabs' one socket (the previous test's context is closed).
    await expect.poll(() => metric(server.http, BROWSER_SOCKETS), { timeout: 10_000 }).toBe(1);
    const leader = await leaderOf(pages);
    const follower = pages.find((p) => p !== leader)!;
    for (const p of pages) await p.locator('#warning').waitFor({ state: 'visible', timeout: 15_000 });
    // "Stay signed in" in a tab that does not hold the socket: sent through the leader, pushed to all.
    await follower.click('#extend');
    for (const p of pages) {
      await p.locator('#log li', { hasText: 'push session_extended' }).waitFor({ timeout: 5000 });
      await p.locator('#warning').waitFor({ state: 'hidden', timeout: 5000 });
      // Extended by the session's own ttl (15 s) from the click: more than the 10 s left when it was warned.
      await expect.poll(async () => parseFloat((await p.textContent('#countdown'))!), { timeout: 5000 }).toBeGreaterThan(11);
    }
    // The logout is clicked in a follower too: the push reaches the leader, and all tabs.
    await follower.click('#logout');
    for (const p of pages) {
      await p.locator('#notice', { hasText: 'Session ended (reason: destroyed). Pushed by the gateway at' }).waitFor({ state: 'visible', timeout: 5000 });
    }
    expect(await texts(pages, '#user')).toEqual(['not logged in', 'not logged in', 'not logged in']);
    expect(await metric(server.http, BROWSER_SOCKETS)).toBeLessThanOrEqual(1);
  });

  it('closing the leader tab: another takes over within a second, one socket, and the end still reaches both', { timeout: 60_000 }, async () => {
    const pages = await threeTabs();
    await expect.poll(() => metric(server.http, BROWSER_SOCKETS), { timeout: 10_000 }).toBe(1);
    const leader = await leaderOf(pages);
    const rest = pages.filter((p) => p !== leader);
    const t0 = Date.now();
    await leader.close();
    await Promise.race(rest.map((p) => p.locator('#role', { hasText: 'this tab holds the WebSocket' }).waitFor({ timeout: 5000 })));
    const tookOver = Date.now() - t0;
    expect(tookOver).toBeLessThan(1000);
    await leaderOf(rest);
    for (const p of rest) await p.locator('#connection', { hasText: 'bound to your session' }).waitFor({ timeout: 10_000 });
    await expect.poll(() => metric(server.http, BROWSER_SOCKETS), { timeout: 10_000 }).toBe(1);
    await rest[0]!.click('#logout');
    for (const p of rest)
      await p.locator('#notice', { hasText: 'Session ended (reason: destroyed). Pushed by the gateway' }).waitFor({ state: 'visible', timeout: 5000 });
  });

  it('an end while the leader tab closes is not missed', { timeout: 60_000 }, async () => {
    const pages = await threeTabs();
    const leader = await leaderOf(pages);
    const rest = pages.filter((p) => p !== leader);
    const [cookie] = await browser.context.cookies();
    await leader.close();
    // The session ends in the handover, with no socket to push it to (the new leader finds it on
    // its reconnect: a busy machine may take a few backoff steps).
    const r = await fetch(server.http + '/autosession', { method: 'DELETE', headers: { Cookie: `${cookie!.name}=${cookie!.value}` } });
    expect(r.status).toBe(200);
    for (const p of rest) await p.locator('#notice', { hasText: 'Session ended' }).waitFor({ state: 'visible', timeout: 25_000 });
    expect(await texts(rest, '#user')).toEqual(['not logged in', 'not logged in']);
  });

  it('without Web Locks (the BroadcastChannel election): one leader, one socket, and a takeover when it closes', { timeout: 60_000 }, async () => {
    const context = await browser.newContext();
    const pages: Page[] = [];
    for (let i = 0; i < 3; i++) {
      const p = await context.newPage();
      // A page of the gateway's origin that runs nothing of its own; the client module is imported into it.
      await p.goto(server.http + '/healthz');
      // As a string: vitest would rewrite an import() written in the test's own code.
      await p.evaluate(`(async () => {
        const { TabSession } = await import('/client/src/index.js');
        window.leader = false;
        window.opens = 0;
        const tabs = new TabSession({ url: ${JSON.stringify(server.url)}, webLocks: false, name: 'fallback-e2e' });
        tabs.on('leader', ({ leader }) => (window.leader = leader));
        tabs.on('open', () => window.opens++);
        tabs.start();
      })()`);
      pages.push(p);
    }
    const leaders = () => Promise.all(pages.filter((p) => !p.isClosed()).map((p) => p.evaluate(() => (window as unknown as { leader: boolean }).leader)));
    await expect.poll(async () => (await leaders()).filter(Boolean).length, { timeout: 10_000 }).toBe(1);
    await expect.poll(() => metric(server.http, BROWSER_SOCKETS), { timeout: 10_000 }).toBe(1);
    // Every tab was told the socket is open, whichever holds it.
    for (const p of pages)
      await expect.poll(() => p.evaluate(() => (window as unknown as { opens: number }).opens), { timeout: 5000 }).toBeGreaterThanOrEqual(1);
    const leader = pages[(await leaders()).indexOf(true)]!;
    const t0 = Date.now();
    await leader.close();
    await expect.poll(async () => (await leaders()).filter(Boolean).length, { timeout: 5000, interval: 50 }).toBe(1);
    expect(Date.now() - t0).toBeLessThan(1500);
    await expect.poll(() => metric(server.http, BROWSER_SOCKETS), { timeout: 10_000 }).toBe(1);
  });
});
