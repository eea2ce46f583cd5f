import type { IncomingMessage, Server } from 'node:http';
import type { BlockList, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { plain, trusts } from '../client-address.js';

/**
 * Caps, per remote address, the connections that have not yet sent a whole request head: a
 * slowloris holds thousands of them, each until Node's headers timeout, and the per-address
 * cap of WebSocket connections counts none of them. Past `max`, a new connection from the
 * address is closed at once. A connection leaves the count at its first request or upgrade,
 * or when it closes. Trusted proxies are not capped: every client behind one shares its address.
 */
export class PendingHeads {
  readonly #max: number;
  readonly #trusted: BlockList | undefined;
  readonly #byAddress = new Map<string, number>();
  readonly #counted = new WeakMap<Duplex, string>();
  /** Connections closed for being over the cap. */
  refused = 0;

  constructor(server: Server, o: { max: number; trusted?: BlockList }) {
    this.#max = o.max;
    this.#trusted = o.trusted;
    server.on('connection', (socket: Socket) => this.#opened(socket));
    server.on('request', (req: IncomingMessage) => this.#release(req.socket));
    server.on('upgrade', (_req: IncomingMessage, socket: Duplex) => this.#release(socket));
  }

  /** Addresses with a connection still sending its head (for tests). */
  get size(): number {
    return this.#byAddress.size;
  }

  #opened(socket: Socket): void {
    const address = plain(socket.remoteAddress ?? 'unknown');
    if (trusts(this.#trusted, address)) return;
    const n = (this.#byAddress.get(address) ?? 0) + 1;
    if (n > this.#max) {
      this.refused++;
      socket.destroy();
      return;
    }
    this.#byAddress.set(address, n);
    this.#counted.set(socket, address);
    socket.once('close', () => this.#release(socket));
  }

  #release(socket: Duplex): void {
    const address = this.#counted.get(socket);
    if (address === undefined) return;
    this.#counted.delete(socket);
    const n = (this.#byAddress.get(address) ?? 1) - 1;
    if (n > 0) this.#byAddress.set(address, n);
    else this.#byAddress.delete(address);
  }
}
