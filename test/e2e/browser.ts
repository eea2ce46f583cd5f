/**
 * What the Chromium e2e tests share: the browser's flags and its life per test file, the
 * gateway's metrics, a service connection to the gateway under test, and a TCP proxy of the
 * test's own that can stop passing packets (a dead path: no FIN, no RST, just silence).
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, afterEach } from 'vitest';
import { WebSocket } from 'ws';
import { CHROMIUM } from '../helpers/required.js';

export const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * One Chromium for a test file: made at the file's top level, `launch()` in its `beforeAll`,
 * `newContext()` in a test (one origin's cookies, storage and channels, closed after that
 * test); the browser is closed after the file.
 */
export class FileBrowser {
  #browser: Browser | undefined;
  #context: BrowserContext | undefined;

  constructor() {
    afterEach(async () => {
      await this.#context?.close();
      this.#context = undefined;
    });
    afterAll(async () => {
      await this.#browser?.close();
    });
  }

  /**
   * Starts Chromium headless with ARGS and `extraArgs`. `backForwardCache`: keep the
   * back/forward cache on (Playwright turns it off by default), for tests of a page restored from it.
   */
  async launch(extraArgs: string[] = [], o: { backForwardCache?: boolean } = {}): Promise<void> {
    this.#browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [...ARGS, ...extraArgs],
      headless: true,
      ...(o.backForwardCache === true ? { ignoreDefaultArgs: ['--disable-back-forward-cache'] } : {}),
    });
  }

  /** A fresh context for the current test. */
  async newContext(): Promise<BrowserContext> {
    if (this.#browser === undefined) throw new Error('FileBrowser: launch() first');
    this.#context = await this.#browser.newContext();
    return this.#context;
  }

  /** The current test's context. */
  get context(): BrowserContext {
    if (this.#context === undefined) throw new Error('FileBrowser: no context in this test (newContext() first)');
    return this.#context;
  }
}

/** A value of the gateway's /metrics, e.g. `gateway_connections{role="browser"}`. */
export async function metric(http: string, series: string): Promise<number> {
  const text = await (await fetch(`${http}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  if (line === undefined) throw new Error(`no ${series} in /metrics`);
  return Number(line.slice(series.length + 1));
}

/** Sends one request over a service connection; resolves with the reply body. */
export async function serviceCall(url: string, key: string, body: Record<string, unknown>): Promise<Record<string, unknown>> {
  const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${key}` } });
  try {
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    return await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no reply to ${String(body.type)}`)), 5000);
      ws.on('message', (d) => {
        clearTimeout(t);
        resolve((JSON.parse(d.toString()) as { body: Record<string, unknown> }).body);
      });
      ws.send(JSON.stringify({ src: 'e2e', dest: 'gateway', body: { msg_id: 1, ...body } }));
    });
  } finally {
    ws.terminate();
  }
}

/** The text of the element `sel` on every page. */
export const texts = (pages: Page[], sel: string) => Promise.all(pages.map((p) => p.textContent(sel)));

/** A loopback TCP proxy to `target` (host:port, set once known); `blackhole()` makes every path silent. */
export class Proxy {
  readonly #server: Server;
  readonly #pairs = new Set<{ a: Socket; b: Socket; dead: boolean }>();
  #passing = true;
  target = 0;

  constructor() {
    this.#server = createServer((a) => {
      const b = connect(this.target, '127.0.0.1');
      const pair = { a, b, dead: !this.#passing };
      this.#pairs.add(pair);
      a.on('data', (d) => pair.dead || b.write(d));
      b.on('data', (d) => pair.dead || a.write(d));
      const end = () => {
        this.#pairs.delete(pair);
        a.destroy();
        b.destroy();
      };
      a.on('close', end).on('error', end);
      b.on('close', end).on('error', end);
    });
  }

  /** Listens on a free loopback port; resolves with it. */
  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return (this.#server.address() as { port: number }).port;
  }

  /** Every open path, and every one opened from now on, drops whatever it is given, silently. */
  blackhole(): void {
    this.#passing = false;
    for (const p of this.#pairs) p.dead = true;
  }

  /** New paths pass again (the silent ones stay silent, as after a real outage). */
  restore(): void {
    this.#passing = true;
  }

  async close(): Promise<void> {
    for (const p of this.#pairs) {
      p.a.destroy();
      p.b.destroy();
    }
    await new Promise((r) => this.#server.close(r));
  }
}
