import { createServer, connect, type Server, type Socket } from 'node:net';
import { expect } from 'vitest';
import type { Store, StoreEvent } from '../../src/store/types.js';
import { waitForCount } from './wait-for.js';

interface Link {
  client: Socket;
  upstream: Socket;
  /** The client sent something matching the proxy's pattern. */
  marked: boolean;
  stalled: boolean;
  /** Left out of every stall (`spare()`). */
  spared: boolean;
}

/**
 * A TCP proxy to 127.0.0.1:`target` that can stall some of its connections without closing
 * them, as a network path that silently stops forwarding would: `stall()` stops forwarding,
 * both ways, on every open connection whose client ever sent bytes matching `pattern` (a
 * `SUBSCRIBE`, a `LISTEN`); later connections pass. Data held back is dropped.
 */
export class StallProxy {
  readonly #server: Server;
  readonly #links = new Set<Link>();
  readonly #pattern: RegExp;
  #port = 0;

  private constructor(target: number, pattern: RegExp) {
    this.#pattern = pattern;
    this.#server = createServer((client) => this.#link(client, connect(target, '127.0.0.1')));
  }

  static async start(target: number, pattern: RegExp): Promise<StallProxy> {
    const proxy = new StallProxy(target, pattern);
    await new Promise<void>((resolve) => proxy.#server.listen(0, '127.0.0.1', resolve));
    proxy.#port = (proxy.#server.address() as { port: number }).port;
    return proxy;
  }

  get port(): number {
    return this.#port;
  }

  #link(client: Socket, upstream: Socket): void {
    const link: Link = { client, upstream, marked: false, stalled: false, spared: false };
    this.#links.add(link);
    client.on('data', (d: Buffer) => {
      if (this.#pattern.test(d.toString('latin1'))) link.marked = true;
      if (!link.stalled) upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      if (!link.stalled) client.write(d);
    });
    const bye = () => {
      client.destroy();
      upstream.destroy();
      this.#links.delete(link);
    };
    for (const s of [client, upstream]) s.on('error', bye).on('close', bye);
  }

  /** Stalls the open connections that sent the pattern; returns how many. */
  stall(): number {
    let n = 0;
    for (const l of this.#links) {
      if (!l.marked || l.spared) continue;
      l.stalled = true;
      n++;
    }
    return n;
  }

  /** Leaves the connections open now out of every later `stall()` (another node's). */
  spare(): void {
    for (const l of this.#links) l.spared = true;
  }

  /** Open connections that sent the pattern and are not stalled. */
  get flowing(): number {
    return [...this.#links].filter((l) => l.marked && !l.stalled).length;
  }

  async close(): Promise<void> {
    for (const l of this.#links) {
      l.client.destroy();
      l.upstream.destroy();
    }
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/**
 * The stalled event link, the same on every backend: `a` (whose event connection goes through
 * `proxy`) hears an end published by `b` before the stall; during it every operation still
 * answers, the node is found not ready and resyncs within 5 s; the end published during the
 * stall is lost (the resync stands for it), the next one heard; `stallLine` is logged once.
 * `proxy` stalls exactly one connection: `a`'s event connection.
 */
export async function checkStalledEventLink(a: Store, b: Store, proxy: Pick<StallProxy, 'stall'>, lines: readonly string[], stallLine: string): Promise<void> {
  const heard: StoreEvent[] = [];
  a.events.subscribe((e) => heard.push(e));
  let resyncs = 0;
  a.events.onResync(() => resyncs++);
  const end = (hash: string): StoreEvent => ({ kind: 'ended', hash, reason: 'destroyed', origin: 'b' });
  await b.events.publish(end('before'));
  await waitForCount(() => heard.length, 1, 2000, 'events before the stall');
  expect(proxy.stall()).toBe(1);
  await b.events.publish(end('lost'));
  // Every operation still answers: only the event link is stalled.
  await a.set('k', 'v', 60_000);
  // Polled while waiting for the resync: the node says it is not ready at some point.
  let notReady = 0;
  const t0 = Date.now();
  while (resyncs === 0 && Date.now() - t0 < 8000) {
    if (!a.isReady()) notReady++;
    await new Promise((r) => setTimeout(r, 5));
  }
  expect(resyncs).toBeGreaterThan(0);
  expect(Date.now() - t0).toBeLessThan(5000);
  expect(notReady).toBeGreaterThan(0);
  await waitForCount(() => (a.isReady() ? 1 : 0), 1, 3000, 'ready again');
  await b.events.publish(end('after'));
  await waitForCount(() => heard.length, 2, 3000, 'events after the reconnection');
  expect(heard.map((e) => (e as { hash: string }).hash)).toEqual(['before', 'after']);
  expect(lines.filter((l) => l.includes(stallLine))).toHaveLength(1);
}
