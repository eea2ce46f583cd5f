import { WebSocket, type RawData } from 'ws';
import { CloseCodes, ErrorCodes, type EndReason } from '../../protocol/codes.js';
import type { BoundEnd } from '../../pipeline/bound-session.js';
import type { Gateway } from '../../gateway.js';
import { audit, type Logger } from '../../log.js';
import type { Metrics, Role } from '../../metrics.js';
import type { ConnectionOptions, GatewayConnection } from '../../pipeline/connection.js';
import { Pump, type Wire } from '../../pipeline/pump.js';
import { decode, failureFromHead, oversized, type Decoded } from '../../protocol/decode.js';
import { readEnvelopeHead } from '../../protocol/head.js';
import type { FrameBudgets } from './frame-budget.js';
import { textFrame } from './text-frame.js';

/** WebSocket close codes the gateway sends (RFC 6455 section 7.4; 4000-4999 are ours): protocol/codes.ts. */
export { CloseCodes };

export interface LinkOptions {
  gateway: Gateway;
  ws: WebSocket;
  role: Role;
  /** allowed / admit / onReply for the pipeline (browser role); empty for services. */
  connection: ConnectionOptions;
  /** The budgets of what each frame costs before it is parsed (browser role: a row taken at the first frame); none for services. */
  budget?: FrameBudgets;
  maxMessageBytes: number;
  maxBufferedBytes: number;
  /** Stop reading the socket while this many requests await their replies. */
  highWaterMark: number;
  /** How long a peer over `maxBufferedBytes` may read none of its output before it is closed. */
  slowReaderMs: number;
  metrics: Metrics;
  log: Logger;
}

const BINARY_TEXT = 'Binary frames are not accepted: send each message as one text frame';

/** How much of an oversized frame is read for its `src`, `dest` and `msg_id`. */
const HEAD_BYTES = 1024;

/** How many times per `slowReaderMs` a stalled connection's output is looked at. */
const STALL_CHECKS = 5;

/** Pongs a peer may leave unread before it is closed (ws's own default for its automatic pongs). */
const MAX_PENDING_PONGS = 60;

/** What the link does with ws's socket (a net.Socket) beyond what ws does. */
interface RawSocket {
  write(data: Buffer): boolean;
  cork(): void;
  uncork(): void;
  end(): void;
  once(event: 'drain', listener: () => void): void;
  /** Bytes written, those still in the stream's buffer included. */
  readonly bytesWritten: number;
  readonly writableLength: number;
}

/**
 * One WebSocket, mapped onto the pump (src/pipeline/pump.ts): text frames in, JSON frames
 * out. Holds only what is WebSocket's own: frame size and budget, corking, the slow-reader
 * limit, heartbeat state, closes and drain.
 */
export class SocketLink implements Wire, BoundEnd {
  readonly conn: GatewayConnection;
  readonly role: Role;
  /** Resolves once the socket has closed. */
  readonly closed: Promise<number>;
  /** False after a ping went unanswered for a whole heartbeat interval. */
  alive = true;
  readonly #o: LinkOptions;
  readonly #ws: WebSocket;
  readonly #pump: Pump;
  /** The link corked ws's socket for the current burst. */
  #corked = false;
  /** The bound session ended: the socket stays corked until the close (`sessionEnding`). */
  #ending = false;
  /** A message of the current burst was written. */
  #burst = false;
  /** The receiver's fragment list, reused from message to message (see `#recycleFragments`). */
  readonly #fragments: Buffer[] = [];
  #closeReason: string | undefined;
  /** The rate limit has refused a frame of this connection (audited once per connection). */
  #rateLimited = false;
  /** This connection's row of `LinkOptions.budget`, taken at its first frame; -1: none yet, -2: released at the close. */
  #budgetRow = -1;
  /** Pongs written to the socket's buffer and not yet sent (see `#ping`). */
  #pongsPending = 0;
  /** Set while the unsent output is over `maxBufferedBytes` (see `#checkBuffered`). */
  #stall: ReturnType<typeof setInterval> | undefined;

  constructor(o: LinkOptions) {
    this.#o = o;
    this.#ws = o.ws;
    this.role = o.role;
    this.conn = o.gateway.connect(o.connection);
    // The link is its own Wire (no closures per connection). Replies made in one burst (one
    // read's worth of requests, answered in the same microtask run) leave in one write;
    // flushing at 64 KiB keeps the slow-reader check exact.
    this.#pump = new Pump(this.conn, this, { highWaterMark: o.highWaterMark, schedule: process.nextTick });
    this.#ws.on('message', (data, isBinary) => this.#receive(data, isBinary));
    this.#ws.on('pong', () => this.#pong());
    this.#ws.on('ping', (data: Buffer) => this.#ping(data));
    // ws reports protocol violations (1009 too large, 1008 more than 16,384 fragments, 1007 bad
    // UTF-8) here, having sent its close frame (with no reason text).
    this.#ws.on('error', (err: Error & { code?: string }) => {
      if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') this.#closeReason ??= 'too_large';
      else if (err.code === 'WS_ERR_TOO_MANY_BUFFERED_PARTS') this.#closeReason ??= 'too_many_fragments';
      this.conn.log.debug({ err, role: this.role }, 'websocket error');
    });
    this.closed = new Promise<number>((resolve) => {
      this.#ws.once('close', (code) => {
        this.#unstall(false);
        this.#pump.stop();
        if (this.#budgetRow >= 0) o.budget?.release(this.#budgetRow);
        this.#budgetRow = -2;
        const reason = this.#closeReason ?? 'peer';
        o.metrics.connectionsClosed.inc({ reason });
        resolve(code);
      });
    });
  }

  /** Why the gateway is closing this connection (set when it starts to), or undefined. */
  get closeReason(): string | undefined {
    return this.#closeReason;
  }

  /**
   * Wire: sends one encoded message. The first of a burst goes out at once as one buffer;
   * the socket is corked from the second on, until `flush`, so a burst of many replies leaves
   * in one write.
   */
  write(text: string): void {
    if (this.#ws.readyState !== WebSocket.OPEN) return;
    const sock = this.#socket();
    if (sock === undefined) return;
    if (!this.#burst) this.#burst = true;
    else if (!this.#corked) {
      this.#corked = true;
      sock.cork();
    }
    sock.write(textFrame(text));
  }

  /** Wire: the end of a burst (held corked while the bound session's end is on its way: see `sessionEnding`). */
  flush(): void {
    this.#burst = false;
    if (!this.#ending) this.#uncork();
    this.#checkBuffered();
  }

  /** Wire: stop reading the socket. */
  pause(): void {
    this.#ws.pause();
  }

  /** Wire: read the socket again. */
  resume(): void {
    this.#ws.resume();
  }

  /**
   * BoundEnd: the push of the session's end comes next, then `sessionEnded` in the same turn.
   * The socket is corked until the close, so the push, the close frame and the FIN leave as one
   * write and a shutdown (a write fewer per end: row 9's ends are a system call or two each).
   */
  sessionEnding(): void {
    const sock = this.#socket();
    if (sock === undefined || this.#ws.readyState !== WebSocket.OPEN) return;
    this.#ending = true;
    if (!this.#corked) {
      this.#corked = true;
      sock.cork();
    }
  }

  /** BoundEnd: the session this connection is bound to ended (`session_expired` was pushed). */
  sessionEnded(reason: EndReason): void {
    if (reason === 'regenerated') this.close(CloseCodes.SESSION_REGENERATED, 'Session regenerated: reconnect with the new cookie', 'session_ended');
    else this.close(CloseCodes.SESSION_ENDED, 'Session ended', 'session_ended');
  }

  /** Wire: the pipeline failed (a bug). */
  failed(err: unknown): void {
    this.conn.log.error({ err }, 'connection pipeline failed');
    this.close(1011, 'Internal error', 'error');
  }

  /** Heartbeat tick: cuts a peer that did not answer the last ping, else pings again. */
  beat(): void {
    if (this.#ws.readyState !== WebSocket.OPEN) return;
    if (!this.alive) {
      this.#closeReason ??= 'heartbeat';
      this.#ws.terminate();
      return;
    }
    this.alive = false;
    this.#ws.ping();
  }

  /**
   * Closes with `code`: the close frame, then at once the end of the gateway's half of the TCP
   * connection (RFC 6455 section 7.1.1: the server closes the connection first), so the peer's
   * close event fires as soon as it has read the frame, without a round trip through this
   * process. The peer's close frame is still read and the socket closes once it has ended its
   * half too; it is cut if the peer does not within the close grace (ws's own close timer, set
   * to the grace by serve.ts).
   */
  close(code: number, text: string, reason: string): void {
    this.#closeReason ??= reason;
    this.#ending = false;
    const state = this.#ws.readyState;
    if (state === WebSocket.CLOSED) return;
    if (state !== WebSocket.CLOSING) {
      this.#ws.close(code, text);
      this.#endOutput();
    } else this.#uncork();
  }

  /**
   * Drain: reads nothing more, answers every request already read, then closes with 1012
   * (service restart: the client reconnects, to another node).
   * Resolves once the socket is closed.
   */
  async drain(): Promise<void> {
    this.#pump.end();
    if (this.#ws.isPaused) this.#ws.resume(); // the peer's close frame must still be read
    // A failure was handled by `failed`; the drain goes on to the close.
    await this.#pump.done.catch(() => undefined);
    this.close(CloseCodes.SERVICE_RESTART, 'Server restarting: reconnect', 'drain');
    await this.closed;
  }

  /**
   * A pong: the peer is alive. A browser's pongs are charged as messages, as its pings are (RFC
   * 6455 section 5.5.3 allows unsolicited ones): a page's browser sends one per heartbeat, so
   * one past the rate is a flood, closed as one.
   */
  #pong(): void {
    this.alive = true;
    if (this.#ws.readyState !== WebSocket.OPEN || this.#chargeControl()) return;
    this.#flood('closing a browser connection that sends pongs past its message rate (1008)', 'Too many pongs');
  }

  /** A browser's ping or pong, charged as a message: false when over the rate (no budget: services). */
  #chargeControl(): boolean {
    const budget = this.#o.budget;
    if (budget === undefined || this.#budgetRow === -2) return true;
    if (this.#budgetRow === -1) this.#budgetRow = budget.open();
    return budget.message(this.#budgetRow);
  }

  /** Closes a control-frame flood with 1008: reads nothing more, answers what was read. */
  #flood(line: string, text: string): void {
    this.#warn(line);
    this.#pump.end();
    this.close(CloseCodes.POLICY, text, 'ping_flood');
  }

  /**
   * Answers a ping (ws's own answer is off: `autoPong: false`). A peer that has more than
   * MAX_PENDING_PONGS pongs not yet sent, pinging faster than it reads, is closed with 1008
   * as a policy violation, after what it sent before is answered (ws would cut it).
   */
  #ping(data: Buffer): void {
    if (this.#ws.readyState !== WebSocket.OPEN) return;
    // A browser's pings are charged as messages: a page never pings (its browser answers the
    // gateway's), so one past the rate is a flood, closed as one.
    if (!this.#chargeControl()) return this.#flood('closing a browser connection that pings past its message rate (1008)', 'Too many pings');
    if (this.#pongsPending >= MAX_PENDING_PONGS) return this.#flood('closing a connection that pings faster than it reads the pongs (1008)', 'Too many pings');
    this.#pongsPending++;
    this.#ws.pong(data, false, () => this.#pongsPending--);
  }

  #receive(data: RawData, isBinary: boolean): void {
    if (!this.#pump.reading) return;
    const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    const budget = this.#o.budget;
    let row = this.#budgetRow;
    if (budget !== undefined && row === -1) row = this.#budgetRow = budget.open();
    let d: Decoded;
    // Over the byte or the message rate: answered from the frame's head, never parsed.
    let refused: 'bytes per second' | 'messages per second' | undefined;
    if (budget !== undefined && !budget.bytes(row, buf.length)) {
      refused = 'bytes per second';
      d = failureFromHead(buf.toString('utf8', 0, Math.min(buf.length, HEAD_BYTES)), ErrorCodes.RATE_LIMITED, budget.bytesText);
    } else if (budget !== undefined && !budget.message(row)) {
      refused = 'messages per second';
      d = failureFromHead(buf.toString('utf8', 0, Math.min(buf.length, HEAD_BYTES)), ErrorCodes.RATE_LIMITED, budget.messageText);
    } else if (isBinary) {
      // Answered from its head, as an oversized frame is: addressed when its ends and msg_id can be read.
      d = failureFromHead(buf.toString('utf8', 0, Math.min(buf.length, HEAD_BYTES)), ErrorCodes.MALFORMED, BINARY_TEXT);
    } else if (buf.length > this.#o.maxMessageBytes) {
      // Only its head is read (as stdio does): parsing up to 16 times the limit would stall the loop.
      d = oversized(buf.length, this.#o.maxMessageBytes, readEnvelopeHead(buf.toString('utf8', 0, HEAD_BYTES)));
    } else {
      d = decode(buf.toString('utf8'));
    }
    this.#recycleFragments();
    // A frame refused for the rate, or one that does not decode, takes from an allowance of its
    // own: a connection that keeps sending them (a flood answered refusal by refusal) is closed
    // once it is spent.
    const closing = budget !== undefined && !d.ok && !(refused !== undefined ? budget.refused(row) : budget.malformed(row));
    if (!d.ok) {
      this.#o.metrics.undecodable(d.code);
      if (refused !== undefined && !this.#rateLimited) {
        this.#rateLimited = true;
        const limit = refused;
        this.#o.gateway.abuseLog.hit('rate limit tripped', () => audit(this.conn.log, 'rate limit tripped', { limit, role: this.role }), { audit: true });
      }
    }
    this.#pump.receive(d);
    if (closing) {
      const flood = refused !== undefined;
      this.#warn(flood ? 'closing a connection that keeps sending past its rate (1008)' : 'closing a connection that keeps sending malformed messages (1008)');
      this.#pump.end();
      this.close(CloseCodes.POLICY, flood ? 'Too many messages over the rate limit' : 'Too many malformed messages', flood ? 'rate_flood' : 'malformed');
    }
  }

  /**
   * ws's receiver gives every message a fresh fragment list (`_fragments = []`, after taking
   * the old one), which then lives until the connection's next message. With thousands of
   * connections that is longer than a young-generation cycle, so the empty list is promoted
   * to the old generation, and the next message's chunk (its backing array, buffer views and
   * the socket's read buffer), referenced from that list once it is dead, is promoted too:
   * old-space garbage on every message, hence frequent full GCs and their pauses.
   * Handing the receiver back one long-lived list of this link's, emptied here once the
   * message is read, lets those objects die young. Touches a private field of ws (as `#socket`
   * does): only when it is the empty array ws just put there, else it leaves it alone.
   */
  #recycleFragments(): void {
    const r = (this.#ws as unknown as { _receiver?: { _fragments?: unknown } })._receiver;
    if (r === undefined || r._fragments === this.#fragments || !Array.isArray(r._fragments) || r._fragments.length !== 0) return;
    this.#fragments.length = 0;
    r._fragments = this.#fragments;
  }

  /** A line about closing this connection for what its peer did: within the gateway's budget of such lines. */
  #warn(line: string): void {
    this.#o.gateway.abuseLog.hit(line, () => this.conn.log.warn({ role: this.role }, line));
  }

  /** ws's socket: ws has no public cork or half-close (undefined only before it opened). */
  #socket(): RawSocket | undefined {
    return (this.#ws as unknown as { _socket?: RawSocket })._socket;
  }

  #uncork(): void {
    if (!this.#corked) return;
    this.#corked = false;
    this.#socket()?.uncork();
  }

  /**
   * Ends the socket's output after the close frame. ws writes a close frame straight to the
   * socket unless its sender is busy compressing or reading a Blob, and the gateway does
   * neither (per-message deflate is off, it sends strings), so the frame is already in the
   * socket's buffer: `end` sends what is buffered (the push, the frame), then the FIN.
   */
  #endOutput(): void {
    const sock = this.#socket();
    if (sock === undefined) return;
    this.#corked = false; // `end` uncorks
    sock.end();
  }

  /**
   * Unsent output over `maxBufferedBytes` (a large reply, or a peer that does not read):
   * nothing more is read from the peer, so nothing more is produced for it, until the output
   * drains. A peer that reads none of it for `slowReaderMs` is closed (1008) rather than held.
   */
  #checkBuffered(): void {
    if (this.#stall !== undefined || this.#ws.readyState !== WebSocket.OPEN || this.#ws.bufferedAmount <= this.#o.maxBufferedBytes) return;
    const sock = this.#socket();
    if (sock === undefined) return;
    this.#pump.blocked();
    const sent = () => sock.bytesWritten - sock.writableLength;
    let before = sent();
    // Looked at STALL_CHECKS times per `slowReaderMs`, so that the close comes `slowReaderMs`
    // after the output last moved (within one look), not up to twice that.
    let quiet = 0;
    const stall = setInterval(() => {
      if (this.#ws.readyState !== WebSocket.OPEN) return this.#unstall(false);
      const now = sent();
      if (now > before) {
        before = now;
        quiet = 0;
        this.alive = true; // it reads: its pongs wait behind what it has not read yet
        return;
      }
      if (++quiet < STALL_CHECKS) return;
      this.#unstall(false);
      const buffered = this.#ws.bufferedAmount;
      this.#o.gateway.abuseLog.hit('closing a connection whose peer does not read (1008)', () =>
        this.conn.log.warn({ role: this.role, buffered }, 'closing a connection whose peer does not read (1008)'),
      );
      this.#pump.end();
      if (this.#ws.isPaused) this.#ws.resume(); // its close frame must still be read
      this.close(CloseCodes.POLICY, 'Slow reader: unsent output over the limit', 'slow_reader');
    }, this.#o.slowReaderMs / STALL_CHECKS);
    stall.unref();
    this.#stall = stall;
    sock.once('drain', () => this.#unstall(true));
  }

  /** The output drained (`resume`: read the peer again), or the link is closing. */
  #unstall(resume: boolean): void {
    if (this.#stall === undefined) return;
    clearInterval(this.#stall);
    this.#stall = undefined;
    if (resume && this.#ws.readyState === WebSocket.OPEN) {
      this.#pump.unblocked();
      this.#checkBuffered();
    }
  }
}
