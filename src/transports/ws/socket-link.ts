import { Observable, type Subscriber, type Subscription } from 'rxjs';
import { WebSocket, type RawData } from 'ws';
import { CloseCodes, ErrorCodes } from '../../protocol/codes.js';
import type { Gateway } from '../../gateway.js';
import type { Logger } from '../../log.js';
import type { Metrics, Role } from '../../metrics.js';
import type { ConnectionOptions, GatewayConnection, Outbound } from '../../pipeline/connection.js';
import { decode, failureFromHead, oversized, type Decoded } from '../../protocol/decode.js';
import { readEnvelopeHead } from '../../protocol/head.js';
import { encode } from '../../protocol/replies.js';
import type { EndReason } from '../../protocol/messages.js';
import type { FrameBudget } from './frame-budget.js';

/**
 * `dest` of the pushes to a bound connection. A browser names no `src` when it connects, and
 * its pushes must not carry the session id either (the cookie is HttpOnly: echoing the id
 * would hand it to page scripts), so bound pushes say `bound: true`, name the session by its
 * handle (as `list_sessions` does: a store hash that cannot be presented as an id) and go to
 * "client".
 */
export const BOUND_DEST = 'client';

/** WebSocket close codes the gateway sends (RFC 6455 section 7.4; 4000-4999 are ours): protocol/codes.ts. */
export { CloseCodes };

export interface LinkOptions {
  gateway: Gateway;
  ws: WebSocket;
  role: Role;
  /** allowed / admit / onReply for the pipeline (browser role); empty for services. */
  connection: ConnectionOptions;
  /** What each frame costs before it is parsed (browser role); none for services. */
  budget?: FrameBudget;
  maxMessageBytes: number;
  maxBufferedBytes: number;
  /** Stop reading the socket while this many requests await their replies. */
  highWaterMark: number;
  /** How long a close handshake may take before the socket is cut. */
  closeGraceMs: number;
  metrics: Metrics;
  log: Logger;
}

/** How much of an oversized frame is read for its `src`, `dest` and `msg_id`. */
const HEAD_BYTES = 1024;

/** Corked output is flushed once it holds this much (see `#cork`). */
const FLUSH_BYTES = 64 * 1024;

interface Corkable {
  cork(): void;
  uncork(): void;
}

const isPush = (m: Outbound) => !('in_reply_to' in m.body) && 'msg_id' in m.body;

/**
 * One WebSocket, mapped onto one GatewayConnection: text frames in, JSON frames out,
 * through the same pipeline as stdio. Holds the transport's duties: frame size, reading
 * back-pressure, the slow-reader limit, heartbeat state, bound-session closes and drain.
 */
export class SocketLink {
  readonly conn: GatewayConnection;
  readonly role: Role;
  /** Resolves once the socket has closed. */
  readonly closed: Promise<number>;
  /** False after a ping went unanswered for a whole heartbeat interval. */
  alive = true;
  readonly #o: LinkOptions;
  readonly #ws: WebSocket;
  #input?: Subscriber<Decoded>;
  readonly #pipeline: Subscription;
  #pending = 0;
  #reading = true;
  #corked = false;
  #flushQueued = false;
  /** Bytes sent since the socket was corked. */
  #burst = 0;
  #sock: Corkable | undefined;
  /** The receiver's fragment list, reused from message to message (see `#recycleFragments`). */
  readonly #fragments: Buffer[] = [];
  #closeReason: string | undefined;
  #markPipelineDone!: () => void;
  /** Resolves once the pipeline has answered everything it read (or the socket closed). */
  readonly #pipelineDone = new Promise<void>((r) => (this.#markPipelineDone = r));

  constructor(o: LinkOptions) {
    this.#o = o;
    this.#ws = o.ws;
    this.role = o.role;
    this.conn = o.gateway.connect(o.connection);
    const in$ = new Observable<Decoded>((sub) => {
      this.#input = sub;
      return () => (this.#input = undefined);
    });
    this.#pipeline = this.conn.handle(in$).subscribe({
      next: (m) => this.#send(m),
      error: (err: unknown) => {
        o.log.error({ err }, 'connection pipeline failed');
        this.close(1011, 'Internal error', 'error');
        this.#markPipelineDone();
      },
      complete: () => this.#markPipelineDone(),
    });
    this.#ws.on('message', (data, isBinary) => this.#receive(data, isBinary));
    this.#ws.on('pong', () => (this.alive = true));
    // ws reports protocol violations (1009 too large, 1007 bad UTF-8) here, then closes.
    this.#ws.on('error', (err: Error & { code?: string }) => {
      if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') this.#closeReason ??= 'too_large';
      o.log.debug({ err, role: this.role }, 'websocket error');
    });
    this.closed = new Promise<number>((resolve) => {
      this.#ws.once('close', (code) => {
        this.#pipeline.unsubscribe();
        this.#markPipelineDone();
        const reason = this.#closeReason ?? 'peer';
        o.metrics.connectionsClosed.inc({ reason });
        resolve(code);
      });
    });
  }

  /**
   * Binds the connection to a browser's session: `session_expiring` `warnBeforeMs` before
   * the end, `session_expired` at the end, then close 4001 (4002 when regenerated).
   */
  bind(hash: string, sessionId: string, end: number, reason: 'ttl' | 'idle', warnBeforeMs: number): void {
    const refused = this.conn.follow('bound', hash, sessionId, end, reason, {
      onEnded: (why: EndReason) => {
        this.conn.push(BOUND_DEST, { type: 'session_expired', session_id: hash, bound: true, reason: why });
        if (why === 'regenerated') this.close(CloseCodes.SESSION_REGENERATED, 'Session regenerated: reconnect with the new cookie', 'session_ended');
        else this.close(CloseCodes.SESSION_ENDED, 'Session ended', 'session_ended');
      },
      onExpiring: (expiresIn) => this.conn.push(BOUND_DEST, { type: 'session_expiring', session_id: hash, bound: true, expires_in: expiresIn }),
      warnBefore: warnBeforeMs > 0 ? warnBeforeMs : undefined,
    });
    if (refused !== undefined) {
      this.close(CloseCodes.POLICY, 'Too many connections follow this session', 'session_full');
      return;
    }
    // The session may have ended between the upgrade's check and now: look again.
    this.#o.gateway.hub.recheck(hash);
  }

  /** Why the gateway is closing this connection (set when it starts to), or undefined. */
  get closeReason(): string | undefined {
    return this.#closeReason;
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

  /** Closes with `code`; cuts the socket if the peer does not complete the handshake in time. */
  close(code: number, text: string, reason: string): void {
    this.#closeReason ??= reason;
    const state = this.#ws.readyState;
    if (state === WebSocket.CLOSED) return;
    if (state !== WebSocket.CLOSING) this.#ws.close(code, text);
    const t = setTimeout(() => this.#ws.terminate(), this.#o.closeGraceMs);
    t.unref();
    void this.closed.then(() => clearTimeout(t));
  }

  /**
   * Drain: reads nothing more, answers every request already read, then closes with 1001.
   * Resolves once the socket is closed.
   */
  async drain(): Promise<void> {
    this.#reading = false;
    if (this.#ws.isPaused) this.#ws.resume(); // the peer's close frame must still be read
    this.#input?.complete();
    await this.#pipelineDone;
    this.close(CloseCodes.GOING_AWAY, 'Server shutting down', 'drain');
    await this.closed;
  }

  #receive(data: RawData, isBinary: boolean): void {
    if (!this.#reading || this.#input === undefined) return;
    const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    const budget = this.#o.budget;
    let d: Decoded;
    let overBytes = false;
    if (isBinary) {
      d = { ok: false, code: ErrorCodes.MALFORMED, text: 'Binary frames are not accepted: send each message as one text frame' };
    } else if (budget !== undefined && !budget.bytes(buf.length)) {
      overBytes = true;
      // Over the byte rate: answered from the frame's head, never parsed.
      d = failureFromHead(buf.toString('utf8', 0, Math.min(buf.length, HEAD_BYTES)), ErrorCodes.RATE_LIMITED, budget.bytesText);
    } else if (buf.length > this.#o.maxMessageBytes) {
      // Only its head is read (as stdio does): parsing up to 16 times the limit would stall the loop.
      d = oversized(buf.length, this.#o.maxMessageBytes, readEnvelopeHead(buf.toString('utf8', 0, HEAD_BYTES)));
    } else {
      d = decode(buf.toString('utf8'));
    }
    this.#recycleFragments();
    let closing = false;
    if (budget !== undefined && !overBytes) {
      if (!d.ok && !budget.malformed()) closing = true;
      else if (!budget.message()) {
        const at = d.ok ? { src: d.src, dest: d.dest, msgId: d.body.msg_id } : { src: d.src, dest: d.dest, msgId: d.msgId };
        d = { ok: false, code: ErrorCodes.RATE_LIMITED, text: budget.messageText, ...at };
      }
    }
    if (!d.ok) this.#o.metrics.undecodable(d.code);
    this.#pending++;
    this.#input.next(d);
    if (closing) {
      this.#o.log.warn({ role: this.role }, 'closing a connection that keeps sending malformed messages (1008)');
      this.#reading = false;
      this.close(CloseCodes.POLICY, 'Too many malformed messages', 'malformed');
      return;
    }
    if (this.#pending >= this.#o.highWaterMark && !this.#ws.isPaused) this.#ws.pause();
  }

  /**
   * ws's receiver gives every message a fresh fragment list (`_fragments = []`, after taking
   * the old one), which then lives until the connection's next message. With thousands of
   * connections that is longer than a young-generation cycle, so the empty list is promoted
   * to the old generation, and the next message's chunk (its backing array, buffer views and
   * the socket's read buffer), referenced from that list once it is dead, is promoted too:
   * old-space garbage on every message, hence frequent full GCs and their pauses.
   * Handing the receiver back one long-lived list of this link's, emptied here once the
   * message is read, lets those objects die young. Touches a private field of ws (as `#cork`
   * does): only when it is the empty array ws just put there, else it leaves it alone.
   */
  #recycleFragments(): void {
    const r = (this.#ws as unknown as { _receiver?: { _fragments?: unknown } })._receiver;
    if (r === undefined || r._fragments === this.#fragments || !Array.isArray(r._fragments) || r._fragments.length !== 0) return;
    this.#fragments.length = 0;
    r._fragments = this.#fragments;
  }

  /**
   * Replies made in one burst (one read's worth of requests, answered in the same microtask
   * run) leave in few writes: the socket is corked until the next tick, or until 64 KiB are
   * held. Without it each frame is a syscall of its own, which dominates the gateway's time
   * under load. Flushing at 64 KiB keeps the slow-reader check below exact.
   */
  #cork(): void {
    if (this.#corked) return;
    // ws has no public cork; its socket is a net.Socket (undefined only before it opened).
    const sock = (this.#ws as unknown as { _socket?: Corkable })._socket;
    if (sock === undefined) return;
    this.#sock = sock;
    this.#corked = true;
    sock.cork();
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    process.nextTick(() => {
      this.#flushQueued = false;
      this.#uncork();
      this.#checkBuffered();
    });
  }

  #uncork(): void {
    if (!this.#corked) return;
    this.#corked = false;
    this.#burst = 0;
    this.#sock?.uncork();
  }

  #send(m: Outbound): void {
    if (!isPush(m)) {
      this.#pending--;
      if (this.#ws.isPaused && this.#reading && this.#pending <= this.#o.highWaterMark / 2) this.#ws.resume();
    }
    if (this.#ws.readyState !== WebSocket.OPEN) return;
    this.#cork();
    const text = encode(m);
    this.#ws.send(text);
    this.#burst += text.length;
    if (this.#burst >= FLUSH_BYTES) this.#uncork();
    if (!this.#corked) this.#checkBuffered();
  }

  /** The peer does not read: stop producing for it rather than hold its output in memory. */
  #checkBuffered(): void {
    if (this.#ws.readyState !== WebSocket.OPEN || this.#ws.bufferedAmount <= this.#o.maxBufferedBytes) return;
    this.#o.log.warn({ role: this.role, buffered: this.#ws.bufferedAmount }, 'closing a connection whose peer does not read (1008)');
    this.#reading = false;
    this.close(CloseCodes.POLICY, 'Slow reader: unsent output over the limit', 'slow_reader');
  }
}
