import { createServer, connect, type Server, type Socket } from 'node:net';

interface Link {
  client: Socket;
  upstream: Socket;
  /** The client sent something matching the proxy's pattern. */
  marked: boolean;
  stalled: boolean;
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
    const link: Link = { client, upstream, marked: false, stalled: false };
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
      if (!l.marked) continue;
      l.stalled = true;
      n++;
    }
    return n;
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
