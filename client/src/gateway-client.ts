import { Emitter } from './emitter.js';
import { CloseCodes } from '../../src/protocol/codes.js';
import { GatewayConnectionError, GatewayRequestError, GatewayTimeoutError } from './errors.js';
import type {
  EndReason, ErrorReply, InitOk, Reply, SessionCreated, SessionDestroyed, SessionExpiredPush, SessionExpiringPush,
  SessionInvalid, SessionRegenerated, Sessions, SessionsRevoked, SessionValid, Subscribed, TokenGenerated, TokenInvalid,
  TokenRefreshed, TokenRevoked, TokenValid, Unsubscribed, ReplyTo, RequestFields, RequestType,
} from './messages.js';

/** What the client needs of a WebSocket: the browser's, or `ws` in Node. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

/** A WebSocket constructor: `globalThis.WebSocket` in browsers, `WebSocket` from `ws` in Node. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[], options?: unknown) => WebSocketLike;

export interface ReconnectOptions {
  /** First delay, ms (default 250). */
  initialDelayMs?: number;
  /** Largest delay, ms (default 30000). */
  maxDelayMs?: number;
  /** Growth per attempt (default 2). */
  factor?: number;
  /**
   * After a close with 1012 (the node restarts: it closes its connections spread over its
   * drain window), the first reconnect waits a random 0 to this many ms (default 1000), so
   * clients closed in the same instant do not all arrive on the other nodes together.
   */
  restartJitterMs?: number;
}

export interface GatewayClientOptions {
  /** ws:// or wss:// URL of the gateway. */
  url: string;
  /** The WebSocket constructor; default `globalThis.WebSocket` (Node 20 has none: pass `ws`). */
  WebSocket?: WebSocketConstructor;
  /** Node only: sent as `Authorization: Bearer <key>` (the service role). Browsers cannot send it. */
  serviceKey?: string;
  /** `src` of requests, and so `dest` of their replies and pushes (default "client"). */
  src?: string;
  /** `dest` of requests (default "gateway"). */
  dest?: string;
  /** Time limit of each request, ms, including any wait for the connection (default 10000). */
  timeoutMs?: number;
  /** Reconnect with exponential backoff after an unexpected close (default on); false: never. */
  reconnect?: ReconnectOptions | false;
}

/** A session end, as the client reports it. */
export interface SessionExpiredEvent {
  /** The id as the app passed it to `subscribeSession`; absent for the bound session. */
  sessionId?: string;
  /** True for the session of the connection's cookie. */
  bound: boolean;
  /** `unknown` when the end was learned without a push (while disconnected, or at connect). */
  reason: EndReason | 'unknown';
}

export interface SessionExpiringEvent {
  sessionId?: string;
  bound: boolean;
  expiresIn: number;
}

export interface ClientEvents extends Record<string, unknown> {
  open: { reconnected: boolean };
  close: { code: number; reason: string; willReconnect: boolean };
  reconnecting: { attempt: number; delayMs: number };
  session_expired: SessionExpiredEvent;
  session_expiring: SessionExpiringEvent;
  /** Every unsolicited message, raw. */
  push: Record<string, unknown> & { type: string };
  /** Something the client could not make sense of (a frame that is not a message). */
  error: Error;
}

interface Pending {
  type: string;
  resolve: (body: Reply) => void;
  reject: (err: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

const OPEN = 1;
const { SESSION_ENDED, SESSION_REGENERATED, SERVICE_RESTART } = CloseCodes;

/**
 * A client of the auth gateway for browsers and Node: typed methods for every request, each
 * a promise settled by the reply with its `msg_id` (or a timeout); events for pushes; and
 * reconnection with backoff that re-subscribes to the sessions still live.
 *
 * @example
 * const client = new GatewayClient({ url: 'wss://auth.example.com/ws' });
 * client.on('session_expired', () => showLoggedOut());
 * await client.connect();
 */
export class GatewayClient extends Emitter<ClientEvents> {
  readonly #o: Required<Omit<GatewayClientOptions, 'serviceKey' | 'reconnect' | 'WebSocket'>> & GatewayClientOptions;
  readonly #Ctor: WebSocketConstructor;
  #ws: WebSocketLike | undefined;
  #msgId = 0;
  readonly #pending = new Map<number, Pending>();
  /** Requests waiting for the connection to open. */
  #outbox: { msgId: number; frame: string }[] = [];
  /** Sessions subscribed to and not known to have ended: re-subscribed after a reconnect. */
  readonly #live = new Set<string>();
  #wanted = false;
  #attempt = 0;
  #everOpened = false;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #boundEndSeen = false;
  #opened: { resolve: () => void; reject: (err: Error) => void; promise: Promise<void> } | undefined;

  constructor(options: GatewayClientOptions) {
    super();
    if (!/^wss?:\/\//i.test(options.url)) throw new TypeError('The url option must be a ws:// or wss:// URL.');
    if (options.timeoutMs !== undefined && !(options.timeoutMs > 0)) throw new TypeError('The timeoutMs option must be a positive number.');
    const Ctor = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (Ctor === undefined) throw new TypeError('No WebSocket available: pass the WebSocket option (in Node: `import { WebSocket } from "ws"`).');
    this.#Ctor = Ctor;
    this.#o = { src: 'client', dest: 'gateway', timeoutMs: 10_000, ...options };
  }

  /** True while the socket is open. */
  get connected(): boolean {
    return this.#ws?.readyState === OPEN;
  }

  /** Session ids subscribed to and still live, as far as the client knows. */
  get subscriptions(): ReadonlySet<string> {
    return this.#live;
  }

  /**
   * Opens the connection (and keeps it open: reconnecting after unexpected closes, unless
   * `reconnect: false`). Resolves once it is open.
   */
  connect(): Promise<void> {
    this.#wanted = true;
    if (this.connected) return Promise.resolve();
    if (this.#opened === undefined) {
      let resolve!: () => void;
      let reject!: (err: Error) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      promise.catch(() => undefined); // the caller may not wait for it
      this.#opened = { resolve, reject, promise };
    }
    if (this.#ws === undefined && this.#retryTimer === undefined) this.#open();
    return this.#opened.promise;
  }

  /** Closes for good (until `connect()` again): no reconnect; pending requests are rejected. */
  close(): void {
    this.#wanted = false;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    const ws = this.#ws;
    this.#ws = undefined;
    if (ws !== undefined) {
      ws.onopen = ws.onmessage = ws.onerror = null;
      ws.onclose = null;
      try {
        ws.close(1000, 'client closed');
      } catch {
        // closing a socket that is still connecting throws in some runtimes
      }
    }
    this.#outbox = [];
    this.#failAll('The client was closed');
    this.#opened?.reject(new GatewayConnectionError('The client was closed before the connection opened'));
    this.#opened = undefined;
  }

  /** Drops the connection and opens a new one now (after a login, to bind the new cookie). */
  reconnect(): Promise<void> {
    this.close();
    return this.connect();
  }

  // ---- requests --------------------------------------------------------------------------

  /**
   * Sends any request; resolves with its reply body, rejects on an error reply or timeout.
   * A type of the protocol takes its fields and gives its replies as the gateway's schemas
   * define them; any other type (a newer gateway's) is sent as given.
   */
  request<T extends RequestType>(type: T, fields: RequestFields<T>, o?: { timeoutMs?: number }): Promise<ReplyTo<T>>;
  request<R extends Reply = Reply, T extends string = string>(type: T extends RequestType ? never : T, fields?: Record<string, unknown>, o?: { timeoutMs?: number }): Promise<R>;
  request(type: string, fields: Record<string, unknown> = {}, o: { timeoutMs?: number } = {}): Promise<Reply> {
    const msgId = ++this.#msgId;
    const ms = o.timeoutMs ?? this.#o.timeoutMs;
    const frame = JSON.stringify({ src: this.#o.src, dest: this.#o.dest, body: { ...fields, type, msg_id: msgId } });
    return new Promise<Reply>((resolve, reject) => {
      if (!this.#wanted) {
        reject(new GatewayConnectionError(`${type}: the client is not connected; call connect() first`));
        return;
      }
      const timer = setTimeout(() => {
        this.#pending.delete(msgId);
        this.#outbox = this.#outbox.filter((q) => q.msgId !== msgId);
        reject(new GatewayTimeoutError(type, ms));
      }, ms);
      this.#pending.set(msgId, { type, resolve, reject, timer });
      if (this.connected) this.#ws!.send(frame);
      else this.#outbox.push({ msgId, frame });
    });
  }

  init(nodeId: string, nodeIds?: string[]): Promise<InitOk> {
    return this.request('init', nodeIds === undefined ? { node_id: nodeId } : { node_id: nodeId, node_ids: nodeIds });
  }

  /** Service role only. */
  createSession(userId: string, o: { data?: Record<string, unknown>; ttl?: number } = {}): Promise<SessionCreated> {
    return this.request('create_session', { user_id: userId, ...o });
  }

  validateSession(sessionId: string): Promise<SessionValid | SessionInvalid> {
    return this.request('validate_session', { session_id: sessionId });
  }

  /** Service role only. */
  regenerateSession(oldSessionId: string): Promise<SessionRegenerated | SessionInvalid> {
    return this.request('regenerate_session', { old_session_id: oldSessionId });
  }

  destroySession(sessionId: string): Promise<SessionDestroyed> {
    return this.request('destroy_session', { session_id: sessionId });
  }

  /** Follows a session: `session_expired` is emitted when it ends. Re-subscribed after reconnects. */
  async subscribeSession(sessionId: string): Promise<Subscribed | SessionInvalid> {
    const r = await this.request('subscribe_session', { session_id: sessionId });
    if (r.type === 'subscribed') this.#live.add(sessionId);
    return r;
  }

  async unsubscribeSession(sessionId: string): Promise<Unsubscribed> {
    this.#live.delete(sessionId);
    return this.request('unsubscribe_session', { session_id: sessionId });
  }

  /** Service role only. */
  listSessions(userId: string): Promise<Sessions> {
    return this.request('list_sessions', { user_id: userId });
  }

  /** Service role only. */
  destroySessionHandle(userId: string, handle: string): Promise<SessionDestroyed> {
    return this.request('destroy_session_handle', { user_id: userId, handle });
  }

  /** Service role only. */
  revokeUserSessions(userId: string, exceptSessionId?: string): Promise<SessionsRevoked> {
    return this.request('revoke_user_sessions', exceptSessionId === undefined ? { user_id: userId } : { user_id: userId, except_session_id: exceptSessionId });
  }

  /** Service role only. */
  generateAccessToken(payload: Record<string, unknown>): Promise<TokenGenerated> {
    return this.request('generate_access_token', { payload });
  }

  verifyToken(token: string): Promise<TokenValid | TokenInvalid> {
    return this.request('verify_token', { token });
  }

  refreshToken(refreshToken: string): Promise<TokenRefreshed | TokenInvalid> {
    return this.request('refresh_token', { refresh_token: refreshToken });
  }

  revokeToken(token: string): Promise<TokenRevoked | TokenInvalid> {
    return this.request('revoke_token', { token });
  }

  exchangeSession(sessionId: string): Promise<TokenGenerated | SessionInvalid> {
    return this.request('exchange_session', { session_id: sessionId });
  }

  // ---- the socket ------------------------------------------------------------------------

  #open(): void {
    let ws: WebSocketLike;
    try {
      ws = this.#o.serviceKey === undefined
        ? new this.#Ctor(this.#o.url)
        : new this.#Ctor(this.#o.url, undefined, { headers: { Authorization: `Bearer ${this.#o.serviceKey}` } });
    } catch (err) {
      this.#opened?.reject(err instanceof Error ? err : new Error(String(err)));
      this.#opened = undefined;
      this.#wanted = false;
      return;
    }
    this.#ws = ws;
    this.#boundEndSeen = false;
    ws.onopen = () => this.#onOpen();
    ws.onmessage = (ev) => this.#onMessage(ev.data);
    ws.onerror = () => undefined; // the close event that follows carries what can be known
    ws.onclose = (ev) => this.#onClose(ev.code, ev.reason);
  }

  #onOpen(): void {
    const reconnected = this.#everOpened;
    this.#everOpened = true;
    this.#attempt = 0;
    for (const q of this.#outbox.splice(0)) this.#ws!.send(q.frame);
    this.#opened?.resolve();
    this.#opened = undefined;
    this.emit('open', { reconnected });
    if (reconnected) for (const id of [...this.#live]) void this.#resubscribe(id);
  }

  /** After a reconnect: follow again, or learn that the session ended meanwhile. */
  async #resubscribe(sessionId: string): Promise<void> {
    try {
      const r = await this.request('subscribe_session', { session_id: sessionId });
      if (r.type === 'session_invalid' && this.#live.delete(sessionId)) {
        this.emit('session_expired', { sessionId, bound: false, reason: 'unknown' });
      }
    } catch (err) {
      // Kept: tried again after the next reconnect.
      this.emit('error', err instanceof Error ? err : new Error(String(err)));
    }
  }

  #onMessage(data: unknown): void {
    let msg: { body?: Record<string, unknown> } | undefined;
    try {
      msg = JSON.parse(typeof data === 'string' ? data : String(data)) as typeof msg;
    } catch {
      msg = undefined;
    }
    const body = msg?.body;
    if (body === undefined || typeof body !== 'object' || typeof body.type !== 'string') {
      this.emit('error', new Error('The gateway sent a frame that is not a message'));
      return;
    }
    const inReplyTo = body.in_reply_to;
    if (typeof inReplyTo === 'number') {
      const p = this.#pending.get(inReplyTo);
      if (p === undefined) return; // timed out already
      this.#pending.delete(inReplyTo);
      clearTimeout(p.timer);
      if (body.type === 'error') {
        const e = body as unknown as ErrorReply;
        p.reject(new GatewayRequestError(p.type, e.code, e.text));
      } else {
        p.resolve(body as unknown as Reply);
      }
      return;
    }
    if (body.type === 'error') {
      // An error about a frame whose msg_id the gateway could not read.
      const e = body as unknown as ErrorReply;
      this.emit('error', new GatewayRequestError('(unreadable request)', e.code, e.text));
      return;
    }
    this.emit('push', body as ClientEvents['push']);
    if (body.type === 'session_expired') {
      const push = body as unknown as SessionExpiredPush;
      if (push.bound === true) this.#boundEndSeen = true;
      else if (push.session_id !== undefined) this.#live.delete(push.session_id);
      this.emit('session_expired', { sessionId: push.bound ? undefined : push.session_id, bound: push.bound === true, reason: push.reason });
    } else if (body.type === 'session_expiring') {
      const push = body as unknown as SessionExpiringPush;
      this.emit('session_expiring', { sessionId: push.bound ? undefined : push.session_id, bound: push.bound === true, expiresIn: push.expires_in });
    }
  }

  #onClose(code: number, reason: string): void {
    this.#ws = undefined;
    this.#failAll(`The connection closed (code ${code}) before the reply came`);
    if ((code === SESSION_ENDED || code === SESSION_REGENERATED) && !this.#boundEndSeen) {
      // Closed for the cookie's session without a push: it had ended before we connected.
      this.emit('session_expired', { bound: true, reason: code === SESSION_REGENERATED ? 'regenerated' : 'unknown' });
    }
    // 4001: the session this connection stood for is over; a new login calls connect() again.
    const willReconnect = this.#wanted && this.#o.reconnect !== false && code !== SESSION_ENDED;
    this.emit('close', { code, reason, willReconnect });
    if (!willReconnect) {
      this.#wanted = false;
      this.#opened?.reject(new GatewayConnectionError(`The connection closed (code ${code})${reason ? `: ${reason}` : ''}`));
      this.#opened = undefined;
      this.#outbox = [];
      this.#failAll(`The connection closed (code ${code})`);
      return;
    }
    // 4002: the session moved to a new cookie; come back at once to be bound to it.
    const delayMs = code === SESSION_REGENERATED ? 0 : code === SERVICE_RESTART ? this.#restartJitter() : this.#backoff();
    this.emit('reconnecting', { attempt: this.#attempt, delayMs });
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      if (this.#wanted) this.#open();
    }, delayMs);
  }

  /** 1012: the node is going; come back soon, at a random point of a short window. */
  #restartJitter(): number {
    const r = this.#o.reconnect === false ? {} : this.#o.reconnect ?? {};
    return Math.round(Math.random() * (r.restartJitterMs ?? 1000));
  }

  /** Exponential backoff with jitter (half fixed, half random), so clients do not return in step. */
  #backoff(): number {
    const r = this.#o.reconnect === false ? {} : this.#o.reconnect ?? {};
    const base = Math.min(r.maxDelayMs ?? 30_000, (r.initialDelayMs ?? 250) * (r.factor ?? 2) ** this.#attempt);
    this.#attempt++;
    return Math.round(base / 2 + (Math.random() * base) / 2);
  }

  #failAll(why: string): void {
    for (const [id, p] of this.#pending) {
      // Requests still waiting in the outbox were never sent: they wait for the next socket.
      if (this.#outbox.some((q) => q.msgId === id)) continue;
      clearTimeout(p.timer);
      this.#pending.delete(id);
      p.reject(new GatewayConnectionError(`${p.type}: ${why}`));
    }
  }
}
