import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { BlockList, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { plain, trusts } from '../client-address.js';
import { closesConnection } from './answer-head.js';

/**
 * Caps, per remote address, the connections that owe a whole request head: new ones, and
 * kept-alive ones waiting for their next request. A slowloris holds either kind until Node's
 * headers timeout (one quick request first, then a head sent a byte at a time), and the
 * per-address cap of WebSocket connections counts none of them. Past `max`, a new connection
 * from the address is closed at once, and an answer that would leave its connection waiting
 * for one more head says `Connection: close` instead (the connection closes once the answer is
 * sent, whole). A connection leaves the count when a whole head arrives (a request or an
 * upgrade) or when it closes, and counts again from the head of the answer to the last request
 * it has sent (pipelined requests already received owe nothing). Trusted proxies are not capped:
 * every client behind one shares its address.
 */
export class PendingHeads {
  readonly #max: number;
  readonly #trusted: BlockList | undefined;
  readonly #byAddress = new Map<string, number>();
  /** The address of every connection under the cap (all but a trusted proxy's). */
  readonly #addressOf = new WeakMap<Duplex, string>();
  readonly #counted = new WeakSet<Duplex>();
  /** Requests received on a connection whose answers have not begun. */
  readonly #unanswered = new WeakMap<Duplex, number>();
  /** Requests the routes saw (Node answers a few itself, a 417 say, without one). */
  readonly #seen = new WeakSet<IncomingMessage>();
  /** Connections closed, or told to close, for being over the cap. */
  refused = 0;

  /** `beforeHead` must be called before every answer's head on `server` (see answer-head.ts). */
  constructor(server: Server, o: { max: number; trusted?: BlockList }) {
    this.#max = o.max;
    this.#trusted = o.trusted;
    server.on('connection', (socket: Socket) => this.#opened(socket));
    // First: a route that answers at once writes its head within this same event.
    server.prependListener('request', (req: IncomingMessage) => this.#received(req));
    server.on('upgrade', (_req: IncomingMessage, socket: Duplex) => this.#release(socket));
  }

  /** Addresses with a connection that owes a head (for tests). */
  get size(): number {
    return this.#byAddress.size;
  }

  /** Before an answer's head: a kept connection with nothing more received owes a head again, if the cap has room. */
  beforeHead(res: ServerResponse): void {
    const req = res.req;
    const socket = req.socket;
    const address = this.#addressOf.get(socket);
    if (address === undefined) return;
    let unanswered = this.#unanswered.get(socket) ?? 0;
    if (this.#seen.delete(req)) this.#unanswered.set(socket, --unanswered);
    if (unanswered > 0 || !res.shouldKeepAlive || closesConnection(res)) return;
    if (this.#count(socket, address)) return;
    this.refused++;
    res.setHeader('Connection', 'close');
  }

  #opened(socket: Socket): void {
    const address = plain(socket.remoteAddress ?? 'unknown');
    if (trusts(this.#trusted, address)) return;
    this.#addressOf.set(socket, address);
    if (!this.#count(socket, address)) {
      this.refused++;
      socket.destroy();
      return;
    }
    socket.once('close', () => this.#release(socket));
  }

  #received(req: IncomingMessage): void {
    const socket = req.socket;
    if (!this.#addressOf.has(socket)) return;
    this.#seen.add(req);
    this.#unanswered.set(socket, (this.#unanswered.get(socket) ?? 0) + 1);
    this.#release(socket);
  }

  /** Counts the connection, unless its address is at the cap (false). */
  #count(socket: Duplex, address: string): boolean {
    if (this.#counted.has(socket)) return true;
    const n = (this.#byAddress.get(address) ?? 0) + 1;
    if (n > this.#max) return false;
    this.#byAddress.set(address, n);
    this.#counted.add(socket);
    return true;
  }

  #release(socket: Duplex): void {
    if (!this.#counted.delete(socket)) return;
    const address = this.#addressOf.get(socket)!;
    const n = (this.#byAddress.get(address) ?? 1) - 1;
    if (n > 0) this.#byAddress.set(address, n);
    else this.#byAddress.delete(address);
  }
}
