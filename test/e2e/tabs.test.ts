import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { required } from '../helpers/required.js';
import { ensureBuilt, killAll, spawnServer, type ServerProcess } from '../ws/process.js';
import { FileBrowser, metric, Proxy, serviceCall, texts } from './browser.js';

/** Three tabs of the demo in one browser (one context: one origin's cookies, locks and channels). */

const SERVICE_KEY = 'kqS1ha2VbEV4ZYk6x3m2b6rj7Qv0m8Zc9uXk1pW3yT0=';

let server: ServerProcess;
const browser = new FileBrowser();
const BROWSER_SOCKETS = 'gateway_connections{role="browser"}';

const hasChromium = required('chromium');

beforeAll(async () => {
  if (!hasChromium) return;
  ensureBuilt();
  server = await spawnServer({ GATEWAY_JWT_SECRET: 'UTHe/v2YMM8TlXUS87sILxhD3nOmpfvculqST6mteQc=', GATEWAY_SERVICE_KEY: SERVICE_KEY }, ['--dev']);
  // The back/forward cache on: one test restores a page from it.
  await browser.launch([], { backForwardCache: true });
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

/**
 * A tab of the gateway's origin that runs nothing of its own but a TabSession (`options`: its
 * constructor's, as code) started with `startWith`; `window.ev` collects its events as
 * `[name, value]`, `window.leader` says whether it holds the socket, and `window.req(type,
 * fields, ms)` sends a request through it, resolving with the reply or the error's fields.
 * `setup`: code run in the page before the TabSession is made.
 */
async function tabPage(context: BrowserContext, options = '{}', startWith = '{}', path = '/healthz', setup = ''): Promise<Page> {
  const p = await context.newPage();
  await p.goto(server.http + path);
  // As a string: vitest would rewrite an import() written in the test's own code.
  await p.evaluate(`(async () => {
    ${setup}
    const { TabSession } = await import('/client/src/index.js');
    window.ev = [];
    window.leader = false;
    const tabs = (window.tabs = new TabSession({ url: ${JSON.stringify(server.url)}, ...${options} }));
    tabs.on('leader', ({ leader }) => (window.leader = leader));
    for (const e of ['open', 'close', 'session_expired', 'session_expiring']) tabs.on(e, (v) => window.ev.push([e, v]));
    window.req = (type, fields, ms) => tabs.request(type, fields, ms).then(
      (body) => ({ ok: body.type }),
      (e) => ({ name: e.name, kind: e.kind, code: e.code, codeName: e.codeName, message: e.message }),
    );
    tabs.start(${startWith});
  })()`);
  return p;
}

type Ev = [string, Record<string, unknown>];
const events = (p: Page, name: string) => p.evaluate((n) => (window as unknown as { ev: Ev[] }).ev.filter((e) => e[0] === n).map((e) => e[1]), name);
const isLeader = (p: Page) => p.evaluate(() => (window as unknown as { leader: boolean }).leader);
const req = (p: Page, type: string, fields: Record<string, unknown> = {}, ms = 10_000) =>
  p.evaluate(([t, f, m]) => (window as unknown as { req: (...a: unknown[]) => Promise<Record<string, unknown>> }).req(t, f, m), [type, fields, ms] as const);

/**
 * Page setup: the TabSession's channel delivers the notes of the kinds `kinds` (a JS array)
 * only once `window.deliverHeld()` is called (or never, with `forever`): a channel slower than
 * the Web Lock, or a fallback election that hears no other leader.
 */
const holdNotes = (kinds: string, forever = false) => `
  window.held = [];
  const onmessage = Object.getOwnPropertyDescriptor(BroadcastChannel.prototype, 'onmessage');
  Object.defineProperty(BroadcastChannel.prototype, 'onmessage', {
    configurable: true,
    get() { return onmessage.get.call(this); },
    set(fn) {
      onmessage.set.call(this, (ev) => (${kinds}.includes(ev.data?.t) && (${forever} || window.held !== undefined) ? window.held?.push(() => fn(ev)) : fn(ev)));
    },
  });
  window.deliverHeld = () => { const held = window.held; window.held = undefined; for (const f of held) f(); };
`;

/** The gateway's count of refresh_token requests answered, whatever the outcome. */
const refreshes = async () =>
  (await (await fetch(`${server.http}/metrics`)).text())
    .split('\n')
    .filter((l) => l.startsWith('gateway_messages_total{type="refresh_token"'))
    .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);

const leaderOf = async (pages: Page[]) => {
  const roles = await texts(pages, '#role');
  expect(roles.filter((r) => r === 'this tab holds the WebSocket')).toHaveLength(1);
  return pages[roles.indexOf('this tab holds the WebSocket')]!;
};

const DESTROYED = { bound: true, reason: 'destroyed', pushed: true };
const SUBSCRIBED = 'gateway_messages_total{type="subscribe_session",outcome="subscribed"}';
const subs = (p: Page) => p.evaluate(() => [...(window as unknown as { tabs: { subscriptions: Set<string> } }).tabs.subscriptions].sort());
const call = (p: Page, method: 'stop' | 'start') => p.evaluate((m) => (window as unknown as { tabs: Record<string, () => void> }).tabs[m]!(), method);
const watched = async () => (await serviceCall(server.url, SERVICE_KEY, { type: 'create_session', user_id: 'watched', ttl: 600 })).session_id as string;

/** Each tab of the helpers below on a URL of its own (`/healthz?<n>`): distinct entries in the history. */
let pageNo = 0;

/** `n` more tabs started with `startWith`; resolves once each has been sent the state (an open socket). */
async function moreTabs(context: BrowserContext, n: number, startWith = '{}'): Promise<Page[]> {
  const pages: Page[] = [];
  for (let i = 0; i < n; i++) pages.push(await tabPage(context, '{}', startWith, `/healthz?${++pageNo}`));
  for (const p of pages) await expect.poll(() => events(p, 'open'), { timeout: 10_000 }).toHaveLength(1);
  return pages;
}

/** A leader tab that logs in (dev login, then `reconnect({ session: true })`) and `n - 1` tabs started with `start({ session: true })`. */
async function sessionTabs(context: BrowserContext, n = 3): Promise<Page[]> {
  const first = await tabPage(context, '{}', '{}', `/healthz?${++pageNo}`);
  await expect.poll(() => isLeader(first), { timeout: 10_000 }).toBe(true);
  await first.evaluate(() => fetch('/autosession?ttl=600', { method: 'POST' }));
  await first.evaluate(() => (window as unknown as { tabs: { reconnect(o: object): void } }).tabs.reconnect({ session: true }));
  await expect.poll(() => metric(server.http, 'gateway_bound_connections'), { timeout: 10_000 }).toBe(1);
  return [first, ...(await moreTabs(context, n - 1, '{ session: true }'))];
}

/**
 * A request through the leader, answered or refused by it (its socket is closed for good after
 * an end): its reply comes after anything the leader posted before it.
 */
async function throughLeader(p: Page): Promise<void> {
  const r = await req(p, 'verify_token', { token: 'x' });
  expect(r.ok ?? r.kind).toMatch(/^(token_invalid|connection)$/);
}

/** The page goes to another and is kept in the back/forward cache (pagehide: its TabSession stops). */
async function awayByCache(p: Page): Promise<void> {
  await p.evaluate(() => {
    (window as unknown as { restored: boolean }).restored = false;
    addEventListener('pageshow', (e) => ((window as unknown as { restored: boolean }).restored = e.persisted));
  });
  await p.goto(server.http + '/readyz');
}

/** Back to the page kept by awayByCache: restored from the cache (pageshow with persisted), its TabSession rejoins by itself. */
async function backFromCache(p: Page): Promise<void> {
  await p.goBack({ waitUntil: 'commit' });
  await expect.poll(() => p.evaluate(() => (window as unknown as { restored?: boolean }).restored), { timeout: 10_000 }).toBe(true);
}

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

  it("a follower is told the handover: a close (1001, retried) when the leader tab goes, then the next socket's open", { timeout: 60_000 }, async () => {
    const context = await browser.newContext();
    const pages = await moreTabs(context, 3);
    const leader = pages[(await Promise.all(pages.map(isLeader))).indexOf(true)]!;
    const rest = pages.filter((p) => p !== leader);
    await leader.close();
    await expect.poll(async () => (await Promise.all(rest.map(isLeader))).filter(Boolean).length, { timeout: 5000 }).toBe(1);
    for (const p of rest) {
      await expect.poll(() => events(p, 'open'), { timeout: 10_000 }).toHaveLength(2);
      const sequence = await p.evaluate(() => (window as unknown as { ev: Ev[] }).ev.map((e) => e[0]));
      expect(sequence).toEqual(['open', 'close', 'open']);
      expect(await events(p, 'close')).toEqual([{ code: 1001, reason: 'leader tab left', kind: 'retry', willReconnect: true }]);
      expect(await p.evaluate(() => (window as unknown as { tabs: { connected: boolean } }).tabs.connected)).toBe(true);
    }
    await context.close();
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

  it("an end in the handover is reported with TabSession's own setup (start() with no flag; with and without checkSession)", { timeout: 60_000 }, async () => {
    const check = `{ checkSession: async () => (await fetch('/autosession', { cache: 'no-store' })).status === 200 }`;
    for (const options of [check, '{}']) {
      const context = await browser.newContext();
      const login = await context.newPage();
      await login.goto(server.http + '/healthz');
      expect(await login.evaluate(() => fetch('/autosession?ttl=600', { method: 'POST' }).then((r) => r.status))).toBe(201);
      const a = await tabPage(context, options);
      await expect.poll(() => isLeader(a), { timeout: 10_000 }).toBe(true);
      await expect.poll(() => metric(server.http, 'gateway_bound_connections'), { timeout: 10_000 }).toBe(1);
      const b = await tabPage(context, options);
      await expect.poll(() => events(b, 'open'), { timeout: 10_000 }).toHaveLength(1);
      const [cookie] = (await context.cookies()).filter((c) => c.name === 'sid');
      // Offline: the next leader can reach neither the backend nor the gateway until the end has happened.
      await context.setOffline(true);
      await a.close({ runBeforeUnload: true });
      await expect.poll(() => isLeader(b), { timeout: 5000 }).toBe(true);
      // Logged out elsewhere while no tab holds a socket.
      expect((await fetch(`${server.http}/autosession`, { method: 'DELETE', headers: { Cookie: `sid=${cookie!.value}` } })).status).toBe(200);
      await context.setOffline(false);
      await expect.poll(() => events(b, 'session_expired'), { timeout: 15_000 }).toEqual([{ bound: true, reason: 'unknown', pushed: false }]);
      await context.close();
    }
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

  it('a tab opened after a login elsewhere, while the leader is closed for good, gets the leader bound to the new session', { timeout: 60_000 }, async () => {
    const context = await browser.newContext();
    const check = `{ checkSession: async () => (await fetch('/autosession')).status === 200 }`;
    const a = await tabPage(context, check, '{ session: false }');
    await expect.poll(() => isLeader(a), { timeout: 10_000 }).toBe(true);
    // Its first socket open (a reconnect before it opened would replace it: one open, not two).
    await expect.poll(() => events(a, 'open'), { timeout: 10_000 }).toHaveLength(1);
    await a.evaluate(() => fetch('/autosession?ttl=600', { method: 'POST' }));
    await a.evaluate(() => (window as unknown as { tabs: { reconnect(o: object): void } }).tabs.reconnect({ session: true }));
    await expect.poll(() => events(a, 'open'), { timeout: 10_000 }).toHaveLength(2);
    // Logged out: the leader's socket is closed for good (4001).
    await a.evaluate(() => fetch('/autosession', { method: 'DELETE' }));
    await expect.poll(() => events(a, 'close'), { timeout: 10_000 }).toContainEqual(expect.objectContaining({ code: 4001, willReconnect: false }));
    // Signed in again on a page without a TabSession; then a new tab of the app, which knows it has a session.
    const login = await context.newPage();
    await login.goto(server.http + '/healthz');
    expect(await login.evaluate(() => fetch('/autosession?ttl=600', { method: 'POST' }).then((r) => r.status))).toBe(201);
    await login.close();
    const c = await tabPage(context, check, '{ session: true }');
    expect(await isLeader(c)).toBe(false);
    // The leader reconnects, bound to the new session: its end is pushed to both tabs.
    await expect.poll(() => events(c, 'open'), { timeout: 10_000 }).toHaveLength(1);
    await expect.poll(() => metric(server.http, 'gateway_bound_connections'), { timeout: 10_000 }).toBe(1);
    await c.evaluate(() => fetch('/autosession', { method: 'DELETE' }));
    for (const p of [a, c])
      await expect.poll(() => events(p, 'session_expired'), { timeout: 10_000 }).toContainEqual({ bound: true, reason: 'destroyed', pushed: true });
  });

  it("the README's setup: a cookie that expired while the page was offline is the session's end; a later login binds again", { timeout: 60_000 }, async () => {
    const context = await browser.newContext();
    const login = await context.newPage();
    await login.goto(server.http + '/healthz');
    // The dev login sets the cookie as a backend would: Max-Age = the session's ttl.
    expect(await login.evaluate(() => fetch('/autosession?ttl=3', { method: 'POST' }).then((r) => r.status))).toBe(201);
    const a = await tabPage(context, '{ heartbeat: { intervalMs: 500, timeoutMs: 500 } }', '{ session: true }');
    await expect.poll(() => metric(server.http, 'gateway_bound_connections'), { timeout: 10_000 }).toBe(1);
    await context.setOffline(true);
    await expect.poll(async () => (await context.cookies()).some((c) => c.name === 'sid'), { timeout: 15_000 }).toBe(false);
    await context.setOffline(false);
    await expect.poll(() => events(a, 'session_expired'), { timeout: 15_000 }).toEqual([{ bound: true, reason: 'unknown', pushed: false }]);
    // Signed in again, then a new tab of the app, which knows it has a session: the leader binds to it.
    expect(await login.evaluate(() => fetch('/autosession?ttl=600', { method: 'POST' }).then((r) => r.status))).toBe(201);
    const b = await tabPage(context, '{}', '{ session: true }');
    await expect.poll(() => metric(server.http, 'gateway_bound_connections'), { timeout: 10_000 }).toBe(1);
    await b.evaluate(() => fetch('/autosession', { method: 'DELETE' }));
    for (const p of [a, b])
      await expect.poll(() => events(p, 'session_expired'), { timeout: 10_000 }).toContainEqual({ bound: true, reason: 'destroyed', pushed: true });
  });

  it('a request right after start() is answered, in one tab and in two tabs racing to lead (both elections)', { timeout: 60_000 }, async () => {
    const context = await browser.newContext();
    for (const webLocks of [true, false]) {
      const pages: Page[] = [];
      for (let i = 0; i < 2; i++) pages.push(await tabPage(context, `{ webLocks: ${webLocks}, name: 'start-${webLocks}' }`));
      // Sent at once, before any tab leads (the fallback elects after 700 ms of silence).
      const replies = await Promise.all(pages.map((p) => req(p, 'verify_token', { token: 'abc' }, 8000)));
      expect(replies).toEqual([{ ok: 'token_invalid' }, { ok: 'token_invalid' }]);
      for (const p of pages) await p.close();
    }
  });

  it(
    'a follower shown again ends the wait of the leader (a tab left in the background): it reconnects at once, not at its backoff slot',
    { timeout: 60_000 },
    async () => {
      const context = await browser.newContext();
      // The tabs reach the gateway through a proxy that leads nowhere yet: the first attempt fails.
      const proxy = new Proxy();
      const port = await proxy.listen();
      try {
        const options = `{ url: 'ws://127.0.0.1:${port}/', name: 'wake', reconnect: { initialDelayMs: 20000, maxDelayMs: 20000 } }`;
        const leader = await tabPage(context, options);
        await expect.poll(() => events(leader, 'close'), { timeout: 10_000 }).toHaveLength(1);
        const follower = await tabPage(context, options);
        expect(await isLeader(follower)).toBe(false);
        proxy.target = Number(new URL(server.http).port);
        // The leader's next attempt is 10 to 20 s away. The user comes back to the follower's page.
        const shown = Date.now();
        await follower.evaluate(() => document.dispatchEvent(new Event('visibilitychange')));
        await expect.poll(() => events(follower, 'open'), { timeout: 8000 }).toHaveLength(1);
        expect(Date.now() - shown).toBeLessThan(8000);
        expect(await events(leader, 'open')).toHaveLength(1);
      } finally {
        await proxy.close();
      }
    },
  );

  it('a follower gets the same error as the leader: GatewayRequestError with its code', { timeout: 60_000 }, async () => {
    const context = await browser.newContext();
    const a = await tabPage(context);
    await expect.poll(() => isLeader(a), { timeout: 10_000 }).toBe(true);
    const b = await tabPage(context);
    for (const [type, fields, code, codeName] of [
      ['create_session', { user_id: 'u' }, 1001, 'FORBIDDEN'],
      ['no_such_type', {}, 10, 'NOT_SUPPORTED'],
      ['verify_token', { token: 5 }, 12, 'MALFORMED'],
    ] as const) {
      const fromLeader = await req(a, type, fields);
      expect(fromLeader).toMatchObject({ name: 'GatewayRequestError', kind: 'request', code, codeName });
      expect(await req(b, type, fields)).toEqual(fromLeader);
    }
  });

  it('a request the leader took is rejected (GatewayConnectionError) when that tab goes, not left to time out', { timeout: 60_000 }, async () => {
    const context = await browser.newContext();
    // No gateway at this address: the leader waits for a socket that never opens.
    const options = `{ url: 'ws://127.0.0.1:1/', name: 'handover', reconnect: { initialDelayMs: 200, maxDelayMs: 1000 } }`;
    const a = await tabPage(context, options);
    await expect.poll(() => isLeader(a), { timeout: 10_000 }).toBe(true);
    const b = await tabPage(context, options);
    const t0 = Date.now();
    const pending = req(b, 'verify_token', { token: 'x' }, 20_000);
    // The leader took it (it queues it for its socket); then the leader tab closes.
    await a.waitForTimeout(500);
    await a.close({ runBeforeUnload: true });
    expect(await pending).toMatchObject({ name: 'GatewayConnectionError', kind: 'connection' });
    expect(Date.now() - t0).toBeLessThan(10_000);
    await expect.poll(() => isLeader(b), { timeout: 5000 }).toBe(true);
  });

  it(
    'a request offered for by a leader that leaves at once is sent once, when the lock reaches the asking tab before the offer',
    { timeout: 60_000 },
    async () => {
      const context = await browser.newContext();
      const a = await tabPage(context, "{ name: 'offer' }");
      await expect.poll(() => isLeader(a), { timeout: 10_000 }).toBe(true);
      const b = await tabPage(context, "{ name: 'offer' }", '{}', '/healthz', holdNotes("['ack']"));
      await expect.poll(() => events(b, 'open'), { timeout: 10_000 }).toHaveLength(1);
      // The leader tab goes away right after its offer (a tab closed at that moment).
      await a.evaluate(() => {
        const post = BroadcastChannel.prototype.postMessage;
        BroadcastChannel.prototype.postMessage = function (this: BroadcastChannel, m: { t?: string }) {
          post.call(this, m);
          if (m.t === 'ack') queueMicrotask(() => (window as unknown as { tabs: { stop(): void } }).tabs.stop());
        };
      });
      const { refresh_token } = await serviceCall(server.url, SERVICE_KEY, { type: 'generate_access_token', payload: { sub: 'handover' } });
      const before = await refreshes();
      const pending = req(b, 'refresh_token', { refresh_token }, 20_000);
      // b is elected before the offer reaches it.
      await expect.poll(() => isLeader(b), { timeout: 5000 }).toBe(true);
      await b.evaluate(() => (window as unknown as { deliverHeld(): void }).deliverHeld());
      expect(await pending).toEqual({ ok: 'token_refreshed' });
      expect((await refreshes()) - before).toBe(1);
    },
  );

  it('two leaders at once (the BroadcastChannel election) do not both send a request: one offer is accepted', { timeout: 60_000 }, async () => {
    const context = await browser.newContext();
    // a and c never hear each other's beacons: both lead, and both offer to take b's requests.
    const deaf = holdNotes("['beacon', 'leader', 'resign']", true);
    const options = "{ webLocks: false, name: 'two-leaders' }";
    const a = await tabPage(context, options, '{}', '/healthz', deaf);
    await expect.poll(() => isLeader(a), { timeout: 10_000 }).toBe(true);
    const c = await tabPage(context, options, '{}', '/healthz', deaf);
    await expect.poll(() => isLeader(c), { timeout: 10_000 }).toBe(true);
    const b = await tabPage(context, options);
    await expect.poll(() => events(b, 'open'), { timeout: 10_000 }).not.toHaveLength(0);
    expect(await isLeader(a)).toBe(true);
    const { refresh_token } = await serviceCall(server.url, SERVICE_KEY, { type: 'generate_access_token', payload: { sub: 'two-leaders' } });
    const before = await refreshes();
    expect(await req(b, 'refresh_token', { refresh_token })).toEqual({ ok: 'token_refreshed' });
    // Each leader's socket answers in order: a request each leader sends after b's reply comes after any copy of b's it sent.
    for (const p of [a, c]) expect(await req(p, 'verify_token', { token: 'x' })).toEqual({ ok: 'token_invalid' });
    expect((await refreshes()) - before).toBe(1);
  });

  it('a new leader follows the sessions the tabs subscribed to, and reports one that ended meanwhile', { timeout: 60_000 }, async () => {
    const context = await browser.newContext();
    const a = await tabPage(context);
    await expect.poll(() => isLeader(a), { timeout: 10_000 }).toBe(true);
    const b = await tabPage(context);
    const created = async () => (await serviceCall(server.url, SERVICE_KEY, { type: 'create_session', user_id: 'watched', ttl: 600 })).session_id as string;
    const [s1, s2] = [await created(), await created()];
    // One followed through request(), one through subscribeSession(), both from the follower.
    expect(await req(b, 'subscribe_session', { session_id: s1 })).toEqual({ ok: 'subscribed' });
    expect(
      await b.evaluate(
        (id) => (window as unknown as { tabs: { subscribeSession(id: string): Promise<{ type: string }> } }).tabs.subscribeSession(id).then((r) => r.type),
        s2,
      ),
    ).toBe('subscribed');
    expect(await subs(a)).toEqual([s1, s2].sort());
    await expect.poll(() => subs(b)).toEqual([s1, s2].sort());
    const before = await metric(server.http, SUBSCRIBED);
    await a.close({ runBeforeUnload: true });
    await expect.poll(() => isLeader(b), { timeout: 5000 }).toBe(true);
    // The new leader subscribes to both again; then an end is pushed to it.
    await expect.poll(() => metric(server.http, SUBSCRIBED), { timeout: 10_000 }).toBe(before + 2);
    await serviceCall(server.url, SERVICE_KEY, { type: 'destroy_session', session_id: s1 });
    await expect.poll(() => events(b, 'session_expired'), { timeout: 10_000 }).toEqual([{ sessionId: s1, bound: false, reason: 'destroyed', pushed: true }]);
    // No tab follows for a while (stopped); s2 ends; the tab leads again and finds that end.
    await b.evaluate(() => (window as unknown as { tabs: { stop(): void } }).tabs.stop());
    await serviceCall(server.url, SERVICE_KEY, { type: 'destroy_session', session_id: s2 });
    await b.evaluate(() => (window as unknown as { tabs: { start(): void } }).tabs.start());
    await expect
      .poll(() => events(b, 'session_expired'), { timeout: 10_000 })
      .toContainEqual({ sessionId: s2, bound: false, reason: 'unknown', pushed: false });
    expect(await subs(b)).toEqual([]);
  });

  it('an unsubscribe made while the subscribe waits for its reply wins, from the leader and from a follower', { timeout: 60_000 }, async () => {
    const context = await browser.newContext();
    const a = await tabPage(context);
    await expect.poll(() => isLeader(a), { timeout: 10_000 }).toBe(true);
    const b = await tabPage(context);
    for (const p of [a, b]) {
      const id = (await serviceCall(server.url, SERVICE_KEY, { type: 'create_session', user_id: 'watched', ttl: 600 })).session_id as string;
      const r = await p.evaluate(async (id) => {
        const tabs = (
          window as unknown as { tabs: { subscribeSession(id: string): Promise<{ type: string }>; unsubscribeSession(id: string): Promise<unknown> } }
        ).tabs;
        const subscribing = tabs.subscribeSession(id);
        await tabs.unsubscribeSession(id);
        return (await subscribing).type;
      }, id);
      expect(r).toBe('subscribed');
      // The leader posts what the group follows before its reply: both tabs know it by now.
      expect(await subs(p)).toEqual([]);
      expect(await subs(a)).toEqual([]);
    }
  });

  it("stop() withdraws a follower's request for the lock: one request waits however often it stops and starts", { timeout: 60_000 }, async () => {
    const context = await browser.newContext();
    const a = await tabPage(context, "{ name: 'queue' }");
    await expect.poll(() => isLeader(a), { timeout: 10_000 }).toBe(true);
    const b = await tabPage(context, "{ name: 'queue' }");
    const waiting = await b.evaluate(async () => {
      const tabs = (window as unknown as { tabs: { stop(): void; start(): void } }).tabs;
      for (let i = 0; i < 50; i++) {
        tabs.stop();
        tabs.start();
      }
      return (await navigator.locks.query()).pending?.filter((l) => l.name === 'queue').length;
    });
    expect(waiting).toBe(1);
    // The one left is live: b leads once a goes.
    await a.close({ runBeforeUnload: true });
    await expect.poll(() => isLeader(b), { timeout: 5000 }).toBe(true);
  });

  it('a tab that joins is sent the warning; the tabs already warned are not warned again', { timeout: 60_000 }, async () => {
    const context = await browser.newContext();
    const a = await tabPage(context, '{}', '{ session: true }');
    // --dev warns 10 s before the end: a 12 s session is warned 2 s in.
    await a.evaluate(() => fetch('/autosession?ttl=12', { method: 'POST' }));
    await a.evaluate(() => (window as unknown as { tabs: { reconnect(o: object): void } }).tabs.reconnect({ session: true }));
    const b = await tabPage(context, '{}', '{ session: true }');
    await expect.poll(() => events(b, 'session_expiring'), { timeout: 10_000 }).toHaveLength(1);
    for (let i = 0; i < 2; i++) {
      const late = await tabPage(context, '{}', '{ session: true }');
      await expect.poll(() => events(late, 'session_expiring'), { timeout: 5000 }).toHaveLength(1);
    }
    // A reply from the leader comes after anything it posted before (its state notes included).
    expect(await req(b, 'verify_token', { token: 'x' })).toEqual({ ok: 'token_invalid' });
    expect(await events(b, 'session_expiring')).toHaveLength(1);
    expect(await events(a, 'session_expiring')).toHaveLength(1);
  });

  it('after stop() a tab can start() again, and a page restored from the back/forward cache rejoins by itself', { timeout: 60_000 }, async () => {
    const context = await browser.newContext();
    const a = await tabPage(context, '{}', '{}', '/healthz?a');
    await a.evaluate(() => fetch('/autosession?ttl=600', { method: 'POST' }));
    await a.evaluate(() => (window as unknown as { tabs: { reconnect(o: object): void } }).tabs.reconnect({ session: true }));
    await expect.poll(() => metric(server.http, 'gateway_bound_connections'), { timeout: 10_000 }).toBe(1);
    const b = await tabPage(context, '{}', '{ session: true }', '/healthz?b');
    const c = await tabPage(context, '{}', '{ session: true }', '/healthz?c');
    // b goes to another page and comes back (pagehide, then pageshow with persisted).
    await b.evaluate(() => {
      (window as unknown as { restored: boolean }).restored = false;
      addEventListener('pageshow', (e) => ((window as unknown as { restored: boolean }).restored = e.persisted));
    });
    await b.goto(server.http + '/readyz');
    // Restored from the cache: no load event, the page's state (and its TabSession) as it was.
    await b.goBack({ waitUntil: 'commit' });
    await expect.poll(() => b.evaluate(() => (window as unknown as { restored?: boolean }).restored), { timeout: 10_000 }).toBe(true);
    // c is stopped and started again by the app.
    await c.evaluate(() => {
      const tabs = (window as unknown as { tabs: { stop(): void; start(o: object): void } }).tabs;
      tabs.stop();
      tabs.start({ session: true });
    });
    await expect.poll(() => events(b, 'open'), { timeout: 10_000 }).toHaveLength(2);
    await expect.poll(() => events(c, 'open'), { timeout: 10_000 }).toHaveLength(2);
    await a.evaluate(() => fetch('/autosession', { method: 'DELETE' }));
    for (const p of [a, b, c])
      await expect.poll(() => events(p, 'session_expired'), { timeout: 10_000 }).toEqual([{ bound: true, reason: 'destroyed', pushed: true }]);
  });

  it(
    'a follower restored from the back/forward cache after the session ended there is told the end once; the tabs that stayed are not told again',
    { timeout: 60_000 },
    async () => {
      const context = await browser.newContext();
      const [a, b, c] = await sessionTabs(context);
      await awayByCache(b);
      // Ended by the service, not by a logout in a page: a cookie that changes evicts the page from the cache.
      const [cookie] = await context.cookies();
      await serviceCall(server.url, SERVICE_KEY, { type: 'destroy_session', session_id: cookie!.value });
      for (const p of [a, c]) await expect.poll(() => events(p, 'session_expired'), { timeout: 10_000 }).toEqual([DESTROYED]);
      await backFromCache(b);
      await expect.poll(() => events(b, 'session_expired'), { timeout: 10_000 }).toEqual([DESTROYED]);
      // A reply through the leader comes after anything the tabs posted before it: nothing more is on its way.
      for (const p of [a, b, c]) await throughLeader(p);
      for (const p of [a, b, c]) expect(await events(p, 'session_expired')).toEqual([DESTROYED]);
    },
  );

  it('a tab stopped while the session ended is told the end once at start(), whether it led or followed', { timeout: 60_000 }, async () => {
    for (const who of ['follower', 'leader'] as const) {
      const context = await browser.newContext();
      const tabs = await sessionTabs(context);
      const away = who === 'leader' ? tabs[0] : tabs[1];
      const stayed = tabs.filter((p) => p !== away);
      const opens = await Promise.all(stayed.map(async (p) => (await events(p, 'open')).length));
      await call(away, 'stop');
      // A next leader's socket is open (and so bound: the cookie binds it at the upgrade) before the end, which is pushed to it.
      for (const [i, p] of stayed.entries())
        await expect.poll(() => events(p, 'open'), { timeout: 10_000 }).toHaveLength(opens[i]! + (who === 'leader' ? 1 : 0));
      await stayed[0]!.evaluate(() => fetch('/autosession', { method: 'DELETE' }));
      for (const p of stayed) await expect.poll(() => events(p, 'session_expired'), { timeout: 10_000 }).toEqual([DESTROYED]);
      // start() with no flag, as a page that knows nothing new: it comes back as a follower.
      await call(away, 'start');
      await expect.poll(() => events(away, 'session_expired'), { timeout: 10_000 }).toEqual([DESTROYED]);
      for (const p of tabs) await throughLeader(p);
      for (const p of tabs) expect(await events(p, 'session_expired')).toEqual([DESTROYED]);
      expect(await isLeader(away)).toBe(false);
      await context.close();
    }
  });

  it("a tab away while the session ended and the user signed in again is told the old end once, then the new session's end", { timeout: 60_000 }, async () => {
    const context = await browser.newContext();
    const [a, b] = await sessionTabs(context, 2);
    await call(b, 'stop');
    await a.evaluate(() => fetch('/autosession', { method: 'DELETE' }));
    await expect.poll(() => events(a, 'session_expired'), { timeout: 10_000 }).toEqual([DESTROYED]);
    // Signed in again in a: the group's socket is bound to the new session when b comes back.
    await a.evaluate(() => fetch('/autosession?ttl=600', { method: 'POST' }));
    await a.evaluate(() => (window as unknown as { tabs: { reconnect(o: object): void } }).tabs.reconnect({ session: true }));
    await expect.poll(() => metric(server.http, 'gateway_bound_connections'), { timeout: 10_000 }).toBe(1);
    await call(b, 'start');
    await expect.poll(() => events(b, 'session_expired'), { timeout: 10_000 }).toEqual([DESTROYED]);
    for (const p of [a, b]) expect(await req(p, 'verify_token', { token: 'x' })).toEqual({ ok: 'token_invalid' });
    expect(await events(a, 'session_expired')).toEqual([DESTROYED]);
    // b knows the new session is live: its end is reported there too, once.
    await b.evaluate(() => fetch('/autosession', { method: 'DELETE' }));
    for (const p of [a, b]) await expect.poll(() => events(p, 'session_expired'), { timeout: 10_000 }).toEqual([DESTROYED, DESTROYED]);
    for (const p of [a, b]) await throughLeader(p);
    for (const p of [a, b]) expect(await events(p, 'session_expired')).toEqual([DESTROYED, DESTROYED]);
  });

  it('a tab that comes back to a group that found the socket unbound (no end it saw) is told the end, reason unknown', { timeout: 60_000 }, async () => {
    const context = await browser.newContext();
    const [a, b] = await sessionTabs(context, 2);
    await call(b, 'stop');
    // The session ends, and every tab that knew of it goes: nobody is told.
    await b.evaluate(() => fetch('/autosession', { method: 'DELETE' }));
    await a.close({ runBeforeUnload: true });
    // A new tab that knows nothing of a session leads: its socket is not bound, and it reports nothing.
    const c = await tabPage(context);
    await expect.poll(() => isLeader(c), { timeout: 10_000 }).toBe(true);
    await expect.poll(() => events(c, 'open'), { timeout: 10_000 }).toHaveLength(1);
    expect(await req(c, 'verify_token', { token: 'x' })).toEqual({ ok: 'token_invalid' });
    await call(b, 'start');
    await expect.poll(() => events(b, 'session_expired'), { timeout: 10_000 }).toEqual([{ bound: true, reason: 'unknown', pushed: false }]);
    for (const p of [b, c]) expect(await req(p, 'verify_token', { token: 'x' })).toEqual({ ok: 'token_invalid' });
    expect(await events(c, 'session_expired')).toEqual([]);
    expect(await events(b, 'session_expired')).toHaveLength(1);
  });

  it('a session followed by id that ended while its tab was away is told at start(), once, and leaves its subscriptions', { timeout: 60_000 }, async () => {
    const context = await browser.newContext();
    const a = await tabPage(context);
    await expect.poll(() => isLeader(a), { timeout: 10_000 }).toBe(true);
    const tabs = [a, ...(await moreTabs(context, 2))];
    const [, b, c] = tabs;
    const [x, y] = [await watched(), await watched()];
    for (const id of [x, y]) expect(await req(b!, 'subscribe_session', { session_id: id })).toEqual({ ok: 'subscribed' });
    for (const p of tabs) await expect.poll(() => subs(p)).toEqual([x, y].sort());
    for (const [away, ender] of [
      [b!, a!],
      [a!, c!], // the leader goes, and comes back as a follower
    ] as const) {
      const id = away === b ? x : y;
      const before = await metric(server.http, SUBSCRIBED);
      await call(away, 'stop');
      // When the leader goes, the next one follows again what the group follows (y) before it ends.
      await expect.poll(() => metric(server.http, SUBSCRIBED), { timeout: 10_000 }).toBe(before + (away === a ? 1 : 0));
      await serviceCall(server.url, SERVICE_KEY, { type: 'destroy_session', session_id: id });
      await expect
        .poll(() => events(ender, 'session_expired'), { timeout: 10_000 })
        .toContainEqual({ sessionId: id, bound: false, reason: 'destroyed', pushed: true });
      await call(away, 'start');
      await expect
        .poll(() => events(away, 'session_expired'), { timeout: 10_000 })
        .toContainEqual({ sessionId: id, bound: false, reason: 'destroyed', pushed: true });
    }
    for (const p of tabs) expect(await req(p, 'verify_token', { token: 'x' })).toEqual({ ok: 'token_invalid' });
    for (const p of tabs) {
      expect(await subs(p)).toEqual([]);
      expect(await events(p, 'session_expired')).toEqual([
        { sessionId: x, bound: false, reason: 'destroyed', pushed: true },
        { sessionId: y, bound: false, reason: 'destroyed', pushed: true },
      ]);
    }
  });

  it(
    'a tab that rejoins while nothing ended is told no end, drops what was unsubscribed meanwhile, and is told a later end once',
    { timeout: 60_000 },
    async () => {
      const context = await browser.newContext();
      const [a, b, c] = await sessionTabs(context);
      const [x, y] = [await watched(), await watched()];
      for (const id of [x, y]) expect(await req(c, 'subscribe_session', { session_id: id })).toEqual({ ok: 'subscribed' });
      for (const p of [a, b, c]) await expect.poll(() => subs(p)).toEqual([x, y].sort());
      // b leaves through the back/forward cache, c by stop(); y is unsubscribed (not ended) meanwhile.
      await awayByCache(b);
      await call(c, 'stop');
      await a.evaluate((id) => (window as unknown as { tabs: { unsubscribeSession(id: string): Promise<unknown> } }).tabs.unsubscribeSession(id), y);
      await backFromCache(b);
      await call(c, 'start');
      for (const p of [b, c]) await expect.poll(() => events(p, 'open'), { timeout: 10_000 }).toHaveLength(2);
      for (const p of [a, b, c]) expect(await req(p, 'verify_token', { token: 'x' })).toEqual({ ok: 'token_invalid' });
      for (const p of [a, b, c]) {
        expect(await events(p, 'session_expired')).toEqual([]);
        expect(await subs(p)).toEqual([x]);
      }
      const xEnd = { sessionId: x, bound: false, reason: 'destroyed', pushed: true };
      await serviceCall(server.url, SERVICE_KEY, { type: 'destroy_session', session_id: x });
      for (const p of [a, b, c]) await expect.poll(() => events(p, 'session_expired'), { timeout: 10_000 }).toEqual([xEnd]);
      await a.evaluate(() => fetch('/autosession', { method: 'DELETE' }));
      const ends = [xEnd, DESTROYED];
      for (const p of [a, b, c]) await expect.poll(() => events(p, 'session_expired'), { timeout: 10_000 }).toEqual(ends);
      for (const p of [a, b, c]) await throughLeader(p);
      for (const p of [a, b, c]) expect(await events(p, 'session_expired')).toEqual(ends);
    },
  );
});
