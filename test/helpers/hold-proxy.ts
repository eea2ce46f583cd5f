import { connect, createServer, type Server, type Socket } from 'node:net';

interface Link {
  client: Socket;
  upstream: Socket;
  /** What the client sent since the held chunk, that one first; undefined while flowing. */
  held: Buffer[] | undefined;
  /** A chunk matching the watched pattern went up and its answer has not come back yet. */
  awaiting: boolean;
}

/**
 * A TCP proxy to 127.0.0.1:`target` that, once armed with a pattern, holds back the first
 * chunk a client sends that matches it, and everything that client sends after it, until
 * `release()`: one store command of one node delayed on the wire, so that a test can land
 * another node's request in between, whatever the machine's speed. Answers are not held.
 * `watch` counts the commands matching a pattern that the store has answered.
 */
export class HoldProxy {
  readonly #server: Server;
  readonly #links = new Set<Link>();
  #pattern: RegExp | undefined;
  #watched: RegExp | undefined;
  #answered = 0;
  #port = 0;

  private constructor(target: number) {
    this.#server = createServer((client) => this.#link(client, connect(target, '127.0.0.1')));
  }

  static async start(target: number): Promise<HoldProxy> {
    const proxy = new HoldProxy(target);
    await new Promise<void>((resolve) => proxy.#server.listen(0, '127.0.0.1', resolve));
    proxy.#port = (proxy.#server.address() as { port: number }).port;
    return proxy;
  }

  get port(): number {
    return this.#port;
  }

  #link(client: Socket, upstream: Socket): void {
    const link: Link = { client, upstream, held: undefined, awaiting: false };
    this.#links.add(link);
    client.on('data', (d: Buffer) => {
      if (link.held === undefined && this.#pattern?.test(d.toString('latin1'))) {
        this.#pattern = undefined;
        link.held = [];
      }
      if (this.#watched?.test(d.toString('latin1'))) link.awaiting = true;
      if (link.held !== undefined) link.held.push(d);
      else upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      if (link.awaiting) {
        link.awaiting = false;
        this.#answered++;
      }
      client.write(d);
    });
    const bye = () => {
      client.destroy();
      upstream.destroy();
      this.#links.delete(link);
    };
    for (const s of [client, upstream]) s.on('error', bye).on('close', bye);
  }

  /** Holds the next chunk any client sends that matches `pattern` (and what follows it on that connection). */
  arm(pattern: RegExp): void {
    this.#pattern = pattern;
  }

  /** From now on, counts the chunks matching `pattern` that the store answered (see `answered`). */
  watch(pattern: RegExp): void {
    this.#watched = pattern;
    this.#answered = 0;
  }

  /** Watched chunks answered so far. */
  get answered(): number {
    return this.#answered;
  }

  /** True while a chunk is held. */
  get holding(): boolean {
    return [...this.#links].some((l) => l.held !== undefined);
  }

  /** Sends what was held, in order, and forwards as usual from then on. */
  release(): void {
    for (const l of this.#links) {
      for (const d of l.held ?? []) l.upstream.write(d);
      l.held = undefined;
    }
  }

  async close(): Promise<void> {
    for (const l of this.#links) {
      l.client.destroy();
      l.upstream.destroy();
    }
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
