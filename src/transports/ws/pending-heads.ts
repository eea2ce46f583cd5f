import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { BlockList, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { limitKey, plain, trusts } from '../client-address.js';
import { rawAnswer } from '../http/http-util.js';
import { admitLingering } from '../http/lingering-close.js';
import { closesConnection } from '../http/http-util.js';

/** How long a refused connection may take to read its 429 before it is cut, whatever it sends meanwhile. */
const REFUSED_GRACE_MS = 1_000;

/**
 * Caps, per remote address, the connections that owe a whole request head: new ones, and
 * kept-alive ones waiting for their next request. A slowloris holds either kind until Node's
 * headers timeout (one quick request first, then a head sent a byte at a time), and the
 * per-address cap of WebSocket connections counts none of them. Past `max`, a new connection
 * from the address first takes the place of the address's longest idle kept-alive connection
 * (one that has received no byte since its last answer), which is closed: a client retries a
 * request on a new connection when an idle one closes under it (RFC 9112, section 9.3.1), so a
 * pool of idle keep-alive connections never keeps a service's next connection out. Only when
 * every counted connection has begun a head (or not yet sent one) is the new connection
 * refused: 429 with `Retry-After: 1`, and closed. An answer that would leave its connection
 * waiting for one more head at the cap says `Connection: close` instead (the connection closes
 * once the answer is sent, whole). A connection leaves the count when a whole head arrives (a
 * request or an upgrade) or when it closes, and counts again from the head of the answer to the
 * last request it has sent (pipelined requests already received owe nothing). A connection
 * lingering after its last answer (lingering-close.ts: reading what its client still sends, for
 * up to 2 s) counts too, and is the first to go to make room for a new one: else connections
 * answered and closed one after another would pile up past the cap. Trusted proxies are not
 * capped: every client behind one shares its address.
 */
export class PendingHeads {
  readonly #max: number;
  readonly #trusted: BlockList | undefined;
  /** The counted connections of each address, longest counted first. */
  readonly #byAddress = new Map<string, Set<Duplex>>();
  /** The address of every connection under the cap (all but a trusted proxy's). */
  readonly #addressOf = new WeakMap<Duplex, string>();
  /** Kept-alive connections counted: the bytes they had received when their last answer began. */
  readonly #keptAt = new WeakMap<Duplex, number>();
  /** Counted connections lingering after their last answer. */
  readonly #lingering = new WeakSet<Duplex>();
  /** Connections refused (429) and still open to read it, by address, longest first. */
  readonly #refusing = new Map<string, Set<Duplex>>();
  /** Requests received on a connection whose answers have not begun. */
  readonly #unanswered = new WeakMap<Duplex, number>();
  /** Requests the routes saw (Node answers a few itself, a 417 say, without one). */
  readonly #seen = new WeakSet<IncomingMessage>();
  /** Connections refused (429), or told to close, for being over the cap. */
  refused = 0;
  /** Idle kept-alive (or lingering) connections closed to make room for a new one. */
  evicted = 0;

  /**
   * `beforeHead` must be called before every answer's head on `server` (see answer-head.ts).
   * Construct it right after `createServer`: it takes over the server's `connection`
   * listeners, so that a refused connection is never handed to Node's HTTP parser (a request
   * already sent on it must not be served).
   */
  constructor(server: Server, o: { max: number; trusted?: BlockList }) {
    this.#max = o.max;
    this.#trusted = o.trusted;
    const parsers = server.listeners('connection') as ((socket: Socket) => void)[];
    server.removeAllListeners('connection');
    server.on('connection', (socket: Socket) => {
      if (!this.#opened(socket)) return;
      for (const listener of parsers) listener.call(server, socket);
    });
    // First: a route that answers at once writes its head within this same event.
    server.prependListener('request', (req: IncomingMessage) => this.#received(req));
    server.on('upgrade', (_req: IncomingMessage, socket: Duplex) => this.#release(socket));
    admitLingering(server, (socket) => this.#lingers(socket));
  }

  /** Addresses with a connection that owes a head (for tests). */
  get size(): number {
    return this.#byAddress.size;
  }

  /** Connections refused and still open to read their 429 (for tests). */
  get refusing(): number {
    let n = 0;
    for (const refusing of this.#refusing.values()) n += refusing.size;
    return n;
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
    if (this.#count(socket, address)) {
      this.#keptAt.set(socket, socket.bytesRead);
      return;
    }
    this.refused++;
    res.setHeader('Connection', 'close');
  }

  /** Counts a new connection, making room if an idle kept-alive one holds it; false: refused (answered 429). */
  #opened(socket: Socket): boolean {
    const peer = plain(socket.remoteAddress ?? 'unknown');
    if (trusts(this.#trusted, peer)) return true;
    const address = limitKey(peer);
    this.#addressOf.set(socket, address);
    if (!this.#countOrEvict(socket, address)) {
      this.refused++;
      this.#refuse(socket, address);
      return false;
    }
    socket.once('close', () => this.#release(socket));
    return true;
  }

  /** Counts a connection about to linger, making room if need be; false: no room, it closes without lingering. */
  #lingers(socket: Duplex): boolean {
    const address = this.#addressOf.get(socket);
    // Trusted proxies are not capped.
    if (address === undefined) return true;
    if (!this.#countOrEvict(socket, address)) return false;
    this.#lingering.add(socket);
    return true;
  }

  #countOrEvict(socket: Duplex, address: string): boolean {
    return this.#count(socket, address) || (this.#evict(address) && this.#count(socket, address));
  }

  /**
   * Closes the address's longest lingering connection, or else its longest idle kept-alive
   * connection, if it has one: one that has received nothing since its last answer began, and
   * whose answer has been sent (a reader still taking a large answer is not idle: closing it
   * would cut that answer short).
   */
  #evict(address: string): boolean {
    const counted = this.#byAddress.get(address);
    if (counted === undefined) return false;
    let victim: Duplex | undefined;
    for (const socket of counted) {
      if (this.#lingering.has(socket)) {
        victim = socket;
        break;
      }
      if (victim === undefined && this.#keptAt.get(socket) === (socket as Socket).bytesRead && socket.writableLength === 0) victim = socket;
    }
    if (victim === undefined) return false;
    this.#release(victim);
    this.evicted++;
    victim.destroy();
    return true;
  }

  /**
   * Refuses the connection (429), keeping at most `max` refused connections of an address open
   * to read their answer: past that, the longest refused is cut, so that connections opened
   * faster than they are cut cannot pile up past the cap either.
   */
  #refuse(socket: Socket, address: string): void {
    let refusing = this.#refusing.get(address);
    if (refusing === undefined) this.#refusing.set(address, (refusing = new Set()));
    if (refusing.size >= this.#max) {
      const longest = refusing.values().next().value!;
      refusing.delete(longest);
      longest.destroy();
    }
    refusing.add(socket);
    socket.once('close', () => {
      refusing.delete(socket);
      if (refusing.size === 0 && this.#refusing.get(address) === refusing) this.#refusing.delete(address);
    });
    refuse(socket);
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
    let counted = this.#byAddress.get(address);
    if (counted?.has(socket)) return true;
    if ((counted?.size ?? 0) >= this.#max) return false;
    if (counted === undefined) this.#byAddress.set(address, (counted = new Set()));
    counted.add(socket);
    return true;
  }

  #release(socket: Duplex): void {
    this.#keptAt.delete(socket);
    this.#lingering.delete(socket);
    const address = this.#addressOf.get(socket);
    if (address === undefined) return;
    const counted = this.#byAddress.get(address);
    if (counted === undefined || !counted.delete(socket)) return;
    if (counted.size === 0) this.#byAddress.delete(address);
  }
}

/**
 * Answers a connection refused before Node's parser saw it: 429, then the connection closes.
 * What the client sent is read and dropped meanwhile (closing with it unread would reset the
 * connection, and the client could lose the answer).
 */
function refuse(socket: Socket): void {
  socket.on('error', () => socket.destroy());
  // A deadline, not an idle timeout: a client that keeps sending a byte now and then would
  // hold the refused connection open for ever.
  const cut = setTimeout(() => socket.destroy(), REFUSED_GRACE_MS);
  cut.unref();
  socket.once('close', () => clearTimeout(cut));
  socket.resume();
  socket.end(rawAnswer(429, { error: 'Too many connections from this address; try again later' }, { 'Retry-After': '1' }));
}
