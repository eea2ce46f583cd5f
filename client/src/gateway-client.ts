import { Emitter } from './emitter.js';
import { CloseCodes } from '../../src/protocol/codes.js';
import { GatewayConnectionError, GatewayRequestError, GatewayTimeoutError } from './errors.js';
import type {
  EndReason,
  ErrorReply,
  InitOk,
  PushOf,
  Reply,
  SessionCreated,
  SessionDestroyed,
  SessionExpiredPush,
  SessionExpiringPush,
  SessionInvalid,
  SessionRegenerated,
  Sessions,
  SessionsRevoked,
  SessionValid,
  Subscribed,
  TokenGenerated,
  TokenInvalid,
  TokenRefreshed,
  TokenRevoked,
  TokenValid,
  Unsubscribed,
  ReplyTo,
  RequestFields,
  RequestType,
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
  /**
   * How long a connection must stay open before the backoff starts again from
   * `initialDelayMs` (default 10000). A gateway that accepts and then closes at once (1008,
   * 1011, 1013, or a 1012 right after the open) so meets a growing backoff, not a reconnect
   * storm.
   */
  resetAfterMs?: number;
}

/** The longest delay a timer takes (2^31 - 1 ms, about 24.8 days); longer ones fire at once. */
export const MAX_DELAY_MS = 2_147_483_647;

/** A duration option: a number of ms, positive (or zero where `zeroOk`), at most MAX_DELAY_MS. */
export function checkMs(name: string, value: number | undefined, zeroOk: boolean): void {
  if (value === undefined) return;
  if (typeof value === 'number' && (zeroOk ? value >= 0 : value > 0) && value <= MAX_DELAY_MS) return;
  throw new TypeError(`The ${name} option must be a ${zeroOk ? 'non-negative' : 'positive'} number of ms, at most ${MAX_DELAY_MS}.`);
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
  /** Time limit of each request, ms, including any wait for the connection, and of each opening handshake (default 10000). */
  timeoutMs?: number;
  /** Reconnect with exponential backoff after an unexpected close (default on); false: never. */
  reconnect?: ReconnectOptions | false;
  /**
   * Application-level heartbeat: after `intervalMs` (default 20000) without a frame from the
   * gateway the client sends `init` as a ping; when nothing at all arrives within `timeoutMs`
   * (default 10000) the link is declared dead (close code 1006, reason "heartbeat timeout")
   * and the client reconnects. A silent path is so noticed within `intervalMs + timeoutMs`.
   * false: no heartbeat.
   */
  heartbeat?: { intervalMs?: number; timeoutMs?: number } | false;
  /**
   * After 4002 (session regenerated) the new cookie may reach the browser later than the
   * push: for this long (ms, default 10000) the client retries (250 ms doubling to 3 s), and
   * a 4001 without a push means "not yet", not the end. Each retry that still carries the
   * old cookie counts as a failed authentication of the address at the gateway
   * (GATEWAY_FAILED_AUTH_LIMIT a minute): about seven per client and regeneration.
   */
  regenerationWindowMs?: number;
  /**
   * Asks the application's backend whether the page's cookie still names a live session
   * (the page cannot read the HttpOnly cookie). Called before every (re)connect (and given up
   * on after `timeoutMs`): a session the client knew of and that is gone now is reported as
   * ended (`pushed: false`). Resolve false only when the backend says the session is gone
   * (its 401); throw when the answer says nothing about it (a 503 while the backend cannot
   * reach the gateway): a throw means "learn nothing".
   */
  checkSession?: () => Promise<boolean>;
  /**
   * After a reconnect, subscribe again to the sessions still followed (default true). false:
   * the subscriptions are forgotten when the connection closes (the gateway ended them with
   * it), for an application that re-checks what it needs itself.
   */
  resubscribe?: boolean;
}

/** What a close code means for the application (see `closeKind`). */
export type CloseKind = 'ended' | 'regenerated' | 'retry';

/**
 * Classifies a close code: 4001 the bound session ended (final: no reconnect); 4002 it was
 * regenerated (reconnect, once the browser holds the new cookie); anything else (1001 going
 * away, 1006 lost, 1011 internal error, 1012 restart, 1013 try later, a heartbeat timeout...)
 * is retried with backoff and jitter.
 */
export function closeKind(code: number): CloseKind {
  if (code === CloseCodes.SESSION_ENDED) return 'ended';
  if (code === CloseCodes.SESSION_REGENERATED) return 'regenerated';
  return 'retry';
}

/** A session end, as the client reports it. */
export interface SessionExpiredEvent {
  /** The id as the app passed it to `subscribeSession`; absent for the bound session. */
  sessionId?: string;
  /** True for the session of the connection's cookie. */
  bound: boolean;
  /** `unknown` when the end was learned without a push (while disconnected, or at connect). */
  reason: EndReason | 'unknown';
  /** True when the gateway pushed the end; false when it was learned from a 4001 or a re-check. */
  pushed: boolean;
}

/** The bound session moved to a new id (and cookie): a continuation, not an end. */
export interface SessionRegeneratedEvent {
  bound: true;
}

/** The session's end moved later (`extend_session`, from this page, another, or a service). */
export interface SessionExtendedEvent {
  sessionId?: string;
  bound: boolean;
  /** Whole seconds left after the extension. */
  expiresIn: number;
}

/** The session's data changed (`update_session`); `data` only for a session followed by its id (never the bound one: its data stays server-side). */
export interface SessionUpdatedEvent {
  sessionId?: string;
  bound: boolean;
  data?: Record<string, unknown>;
}

export interface SessionExpiringEvent {
  sessionId?: string;
  bound: boolean;
  expiresIn: number;
}

export interface ClientEvents extends Record<string, unknown> {
  open: { reconnected: boolean };
  close: { code: number; reason: string; kind: CloseKind; willReconnect: boolean };
  reconnecting: { attempt: number; delayMs: number };
  session_expired: SessionExpiredEvent;
  session_regenerated: SessionRegeneratedEvent;
  session_extended: SessionExtendedEvent;
  session_updated: SessionUpdatedEvent;
  session_expiring: SessionExpiringEvent;
  /**
   * Browser connections, after each open: whether the gateway bound the socket to a live
   * session by its cookie. An unbound socket where a session was known first reports its end.
   */
  bound: { bound: boolean };
  /** Every unsolicited message, raw. */
  push: Record<string, unknown> & { type: string };
  /** Something the client could not make sense of (a frame that is not a message, a push without its fields). */
  error: Error;
}

interface Pending {
  type: string;
  resolve: (body: Reply) => void;
  reject: (err: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

const OPEN = 1;
const { SERVICE_RESTART } = CloseCodes;
/** The longest wait between tries of a re-subscription that failed (ms). */
const RESUBSCRIBE_MAX_MS = 30_000;
/** After a regeneration, a socket that stays open this long (ms) is bound to the new cookie. */
const REBIND_CONFIRM_MS = 1000;

/**
 * A request's body: `type` and `msg_id` first, since of a frame over its size limit the gateway
 * reads only the start for the `msg_id` its error 12 answers; set again after the fields, so
 * that no field overrides them (reassigning keeps their place).
 */
function requestBody(type: string, msgId: number, fields: Record<string, unknown>): Record<string, unknown> {
  const body: Record<string, unknown> = { type, msg_id: msgId, ...fields };
  body.type = type;
  body.msg_id = msgId;
  return body;
}

/** Whether a push of a type the client acts on carries the fields it reads (other types pass). */
function pushWellFormed(body: Record<string, unknown>): boolean {
  const { type, session_id, bound, reason, expires_in } = body;
  if (type !== 'session_expired' && type !== 'session_expiring' && type !== 'session_extended' && type !== 'session_updated') return true;
  if (typeof session_id !== 'string' || (bound !== undefined && typeof bound !== 'boolean')) return false;
  if (type === 'session_expired') return typeof reason === 'string';
  if (type === 'session_expiring' || type === 'session_extended') return typeof expires_in === 'number';
  return true;
}

/**
 * A client of the auth gateway for browsers and Node: typed methods for every request, each
 * a promise settled by the reply with its `msg_id` (or a timeout); events for pushes;
 * reconnection with backoff that re-subscribes to the sessions still live; a heartbeat that
 * notices a silent link; and, for a browser's cookie-bound session, regeneration handled as
 * a continuation and ends reported once, whether pushed or found after a reconnect.
 *
 * @example
 * const client = new GatewayClient({ url: 'wss://auth.example.com/ws' });
 * client.on('session_expired', () => showLoggedOut());
 * await client.connect();
 */
export class GatewayClient extends Emitter<ClientEvents> {
  readonly #o: Required<
    Omit<GatewayClientOptions, 'serviceKey' | 'reconnect' | 'WebSocket' | 'heartbeat' | 'regenerationWindowMs' | 'checkSession' | 'resubscribe'>
  > &
    GatewayClientOptions;
  readonly #Ctor: WebSocketConstructor;
  #ws: WebSocketLike | undefined;
  #msgId = 0;
  readonly #pending = new Map<number, Pending>();
  /** Requests waiting for the connection to open. */
  #outbox: { msgId: number; frame: string }[] = [];
  /** Sessions subscribed to and not known to have ended: re-subscribed after a reconnect. */
  readonly #live = new Set<string>();
  /**
   * The latest `subscribeSession` of each session still waiting for its reply: only that one
   * may add the session to `#live`, and an unsubscribe made meanwhile withdraws it.
   */
  readonly #asked = new Map<string, object>();
  /** Re-subscriptions that failed, waiting to be tried again on the same connection. */
  readonly #resubTimers = new Set<ReturnType<typeof setTimeout>>();
  #wanted = false;
  /** Reconnects since the last connection that stayed open `resetAfterMs` (the `reconnecting` event's `attempt`). */
  #attempt = 0;
  /** The exponent of the next backoff delay (the 1012 jitter does not advance it). */
  #step = 0;
  /** When the current socket opened (epoch ms), if it did. */
  #openedAt: number | undefined;
  #everOpened = false;
  /** Sockets that opened (a 4001 on the first, with no known session, is a stale cookie). */
  #opens = 0;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  /** The epoch of the checkSession call under way before the next socket opens, if any. */
  #checking: number | undefined;
  /** Ends the waits for checkSession answers under way (close(): their timers must not keep a Node process alive). */
  readonly #checkWaits = new Set<() => void>();
  /** Moves on at close(), and at connect() with new knowledge: a checkSession answer of an older epoch is stale. */
  #epoch = 0;
  #boundEndSeen = false;
  #regenSeen = false;
  /** Whether the page holds a live bound session, as far as the client knows (undefined: no idea). */
  #hasSession: boolean | undefined;
  /** Until when (epoch ms) a 4001 without a push means "the new cookie is not here yet". */
  #regenUntil = 0;
  #regenAttempt = 0;
  /** Confirms the rebinding after a regeneration once a socket opened after it stays open. */
  #rebindTimer: ReturnType<typeof setTimeout> | undefined;
  #lastRx = 0;
  #heartbeatTimer: ReturnType<typeof setTimeout> | undefined;
  /** Gives up a socket whose opening handshake is not answered within timeoutMs. */
  #connectTimer: ReturnType<typeof setTimeout> | undefined;
  #wakeInstalled = false;
  /** Back online, or the tab shown again (a hidden tab's visibilitychange is no reason). */
  readonly #wake = () => {
    if (typeof document === 'undefined' || document.visibilityState !== 'hidden') this.wake();
  };
  #opened: { resolve: () => void; reject: (err: Error) => void; promise: Promise<void> } | undefined;
  /** The code of the last close, for a connect() that gives up waiting. */
  #lastClose: number | undefined;

  constructor(options: GatewayClientOptions) {
    super();
    if (!/^wss?:\/\//i.test(options.url)) throw new TypeError('The url option must be a ws:// or wss:// URL.');
    checkMs('timeoutMs', options.timeoutMs, false);
    checkMs('regenerationWindowMs', options.regenerationWindowMs, true);
    const hb = options.heartbeat;
    if (hb !== undefined && hb !== false) {
      for (const k of ['intervalMs', 'timeoutMs'] as const) checkMs(`heartbeat.${k}`, hb[k], false);
    }
    const rc = options.reconnect;
    if (rc !== undefined && rc !== false) {
      checkMs('reconnect.initialDelayMs', rc.initialDelayMs, false);
      checkMs('reconnect.maxDelayMs', rc.maxDelayMs, false);
      checkMs('reconnect.restartJitterMs', rc.restartJitterMs, true);
      checkMs('reconnect.resetAfterMs', rc.resetAfterMs, true);
      if (rc.factor !== undefined && !(typeof rc.factor === 'number' && rc.factor >= 1 && rc.factor <= 100))
        throw new TypeError('The reconnect.factor option must be a number from 1 to 100.');
      // A first delay above the cap would silently be the cap.
      const max = rc.maxDelayMs ?? 30_000;
      if (rc.initialDelayMs !== undefined && rc.initialDelayMs > max)
        throw new TypeError(`The reconnect.initialDelayMs option (${rc.initialDelayMs}) must not exceed reconnect.maxDelayMs (${max}).`);
    }
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

  /** Whether the page holds a live cookie-bound session, as far as the client knows (undefined: not known). */
  get hasSession(): boolean | undefined {
    return this.#hasSession;
  }

  /**
   * Opens the connection (and keeps it open: reconnecting after unexpected closes, unless
   * `reconnect: false`). Resolves once it is open. While the gateway cannot be reached it
   * waits, trying again with backoff (a `close` event per failed attempt), and rejects only
   * at `close()` or a close that ends the retries (4001, `reconnect: false`); `timeoutMs`
   * bounds that wait: past it the promise rejects with `GatewayConnectionError`, and the
   * client goes on trying until `close()`. `session: true` tells the client that the page
   * holds a session (it just logged in, or another tab knew it): an end found at connect is
   * then reported.
   */
  connect(o: { session?: boolean; timeoutMs?: number } = {}): Promise<void> {
    try {
      checkMs('timeoutMs', o.timeoutMs, false);
    } catch (err) {
      return Promise.reject(err as TypeError);
    }
    this.#wanted = true;
    if (o.session !== undefined && o.session !== this.#hasSession) {
      this.#hasSession = o.session;
      this.#epoch++; // a checkSession answer asked for before this is stale
    }
    this.#installWake();
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
    if (this.#ws === undefined && this.#retryTimer === undefined && this.#checking !== this.#epoch) void this.#connectNow();
    return o.timeoutMs === undefined ? this.#opened.promise : this.#openedWithin(this.#opened.promise, o.timeoutMs);
  }

  /** `opened`, or a GatewayConnectionError saying how the last attempt ended once `ms` have passed; the attempts go on. */
  #openedWithin(opened: Promise<void>, ms: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const last = this.#lastClose === undefined ? '' : ` (the last attempt closed with code ${this.#lastClose})`;
        reject(new GatewayConnectionError(`The connection did not open within ${ms} ms${last}; the client goes on trying until close()`));
      }, ms);
      opened.then(
        () => (clearTimeout(timer), resolve()),
        (err: unknown) => (clearTimeout(timer), reject(err as Error)),
      );
    });
  }

  /** Closes for good (until `connect()` again): no reconnect; pending requests are rejected. */
  close(): void {
    this.#wanted = false;
    this.#epoch++;
    for (const stop of [...this.#checkWaits]) stop(); // their answers are stale now
    this.#clearResubscribes();
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#stopHeartbeat();
    clearTimeout(this.#connectTimer);
    this.#removeWake();
    this.#regenUntil = 0;
    clearTimeout(this.#rebindTimer);
    this.#rebindTimer = undefined;
    this.#openedAt = undefined;
    const ws = this.#ws;
    this.#ws = undefined;
    if (ws !== undefined) this.#detach(ws, 1000, 'client closed');
    this.#outbox = [];
    this.#failAll('The client was closed');
    this.#opened?.reject(new GatewayConnectionError('The client was closed before the connection opened'));
    this.#opened = undefined;
  }

  /**
   * Drops the connection and opens a new one now: after a login (to bind the new cookie:
   * pass `session: true`), or when another tab says the cookie changed.
   */
  reconnect(o: { session?: boolean } = {}): Promise<void> {
    const regen = this.#regenUntil;
    this.close();
    this.#attempt = 0;
    this.#step = 0;
    this.#regenUntil = regen;
    return this.connect(o);
  }

  // ---- requests --------------------------------------------------------------------------

  /**
   * Sends any request; resolves with its reply body, rejects on an error reply or timeout.
   * A type of the protocol takes its fields and gives its replies as the gateway's schemas
   * define them; any other type (a newer gateway's) is sent as given.
   */
  request<T extends RequestType>(type: T, fields: RequestFields<T>, o?: { timeoutMs?: number }): Promise<ReplyTo<T>>;
  request<R extends Reply = Reply, T extends string = string>(
    type: T extends RequestType ? never : T,
    fields?: Record<string, unknown>,
    o?: { timeoutMs?: number },
  ): Promise<R>;
  request(type: string, fields: Record<string, unknown> = {}, o: { timeoutMs?: number } = {}): Promise<Reply> {
    const msgId = ++this.#msgId;
    const ms = o.timeoutMs ?? this.#o.timeoutMs;
    return new Promise<Reply>((resolve, reject) => {
      // In the executor: fields JSON cannot encode (a BigInt, a cycle) reject the promise, never throw.
      const frame = JSON.stringify({ src: this.#o.src, dest: this.#o.dest, body: requestBody(type, msgId, fields) });
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

  /**
   * Follows a session: `session_expired` is emitted when it ends. Re-subscribed after
   * reconnects. An `unsubscribeSession` made before the reply wins: the session is not followed.
   */
  async subscribeSession(sessionId: string, o: { timeoutMs?: number } = {}): Promise<Subscribed | SessionInvalid> {
    const ask = {};
    this.#asked.set(sessionId, ask);
    try {
      const r = await this.request('subscribe_session', { session_id: sessionId }, o);
      if (r.type === 'subscribed' && this.#asked.get(sessionId) === ask) this.#live.add(sessionId);
      return r;
    } finally {
      if (this.#asked.get(sessionId) === ask) this.#asked.delete(sessionId);
    }
  }

  async unsubscribeSession(sessionId: string, o: { timeoutMs?: number } = {}): Promise<Unsubscribed> {
    this.#live.delete(sessionId);
    this.#asked.delete(sessionId);
    return this.request('unsubscribe_session', { session_id: sessionId }, o);
  }

  /**
   * Moves the session's end to now + `ttl` (default: its own ttl), capped by
   * GATEWAY_SESSION_MAX_LIFETIME. A browser extends its own bound session (no `sessionId`;
   * naming one is refused with 1001); a service names it. Every page of the session is told
   * (`session_extended`).
   */
  extendSession(o: { sessionId?: string; ttl?: number } = {}): Promise<ReplyTo<'extend_session'>> {
    return this.request('extend_session', {
      ...(o.sessionId === undefined ? {} : { session_id: o.sessionId }),
      ...(o.ttl === undefined ? {} : { ttl: o.ttl }),
    });
  }

  /** Service role only: replaces the session's data; its followers are told (`session_updated`). */
  updateSession(sessionId: string, data: Record<string, unknown>): Promise<ReplyTo<'update_session'>> {
    return this.request('update_session', { session_id: sessionId, data });
  }

  /** Service role only: refuses every access token of the user issued at or before `before` (unix seconds, default now). */
  revokeUserTokens(userId: string, before?: number): Promise<ReplyTo<'revoke_user_tokens'>> {
    return this.request('revoke_user_tokens', before === undefined ? { user_id: userId } : { user_id: userId, before });
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

  /**
   * Asks checkSession (when given, and not while waiting for a regenerated cookie), then opens.
   * An answer to a question asked before a close(), reconnect() or connect() that changed what
   * is known is dropped: that call runs its own check.
   */
  async #connectNow(): Promise<void> {
    const check = this.#o.checkSession;
    if (check !== undefined && Date.now() >= this.#regenUntil) {
      const epoch = this.#epoch;
      this.#checking = epoch;
      let live: boolean | undefined;
      let timer: ReturnType<typeof setTimeout> | undefined;
      let stop: (() => void) | undefined;
      try {
        // Bounded: a backend that does not answer must not hold the reconnect back; nor, after a close(), the process.
        const late = new Promise<undefined>((resolve) => {
          timer = setTimeout(() => resolve(undefined), this.#o.timeoutMs);
          stop = () => resolve(undefined);
          this.#checkWaits.add(stop);
        });
        live = await Promise.race([check(), late]);
      } catch {
        live = undefined; // the backend is away: learn nothing
      } finally {
        clearTimeout(timer);
        if (stop !== undefined) this.#checkWaits.delete(stop);
        if (this.#checking === epoch) this.#checking = undefined;
      }
      if (epoch !== this.#epoch || !this.#wanted || this.#ws !== undefined || this.#retryTimer !== undefined) return;
      if (live === false && this.#hasSession === true) this.#boundEnded('unknown', false);
      else if (live !== undefined) this.#hasSession = live;
      // A session_expired listener may have called close() or reconnect(): that call decides.
      if (epoch !== this.#epoch || !this.#wanted || this.#ws !== undefined) return;
    }
    this.#open();
  }

  #open(): void {
    let ws: WebSocketLike;
    try {
      ws =
        this.#o.serviceKey === undefined
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
    this.#regenSeen = false;
    ws.onopen = () => this.#onOpen();
    ws.onmessage = (ev) => this.#onMessage(ev.data);
    ws.onerror = () => undefined; // the close event that follows carries what can be known
    ws.onclose = (ev) => this.#onClose(ev.code, ev.reason);
    // A silent path (the connection accepted, the upgrade never answered) would hold the socket
    // connecting for minutes (Chromium gives up after 240 s), out of reach of the heartbeat and
    // the wake-ups: given up after timeoutMs, as a lost connection, and tried again with backoff.
    clearTimeout(this.#connectTimer);
    this.#connectTimer = setTimeout(() => {
      if (this.#ws !== ws || ws.readyState === OPEN) return;
      this.#ws = undefined;
      this.#detach(ws);
      this.#onClose(1006, 'connect timeout');
    }, this.#o.timeoutMs);
  }

  /** Forgets a socket: no more events from it; closes it if it can still be closed. */
  #detach(ws: WebSocketLike, code?: number, reason?: string): void {
    ws.onopen = ws.onmessage = null;
    ws.onclose = null;
    // Not null: closing a socket that is still connecting makes Node's `ws` emit an error on the
    // next tick, and an 'error' event with no listener would end the process.
    ws.onerror = () => undefined;
    try {
      ws.close(code, reason);
    } catch {
      // closing a socket that is still connecting throws in some runtimes
    }
  }

  #onOpen(): void {
    clearTimeout(this.#connectTimer);
    const reconnected = this.#everOpened;
    this.#everOpened = true;
    this.#opens++;
    // The backoff starts again only once this socket has stayed open resetAfterMs (#onClose).
    this.#openedAt = Date.now();
    if (this.#regenUntil > 0) {
      // After a regeneration: a dead cookie is closed (4001) right after the open; a socket
      // that stays open a second (or gets a frame) is bound to the new cookie.
      const opened = this.#ws;
      clearTimeout(this.#rebindTimer);
      this.#rebindTimer = setTimeout(() => this.#ws === opened && this.#rebound(), REBIND_CONFIRM_MS);
    }
    this.#lastRx = Date.now();
    this.#armHeartbeat();
    for (const q of this.#outbox.splice(0)) this.#ws!.send(q.frame);
    this.#opened?.resolve();
    this.#opened = undefined;
    const ws = this.#ws;
    this.emit('open', { reconnected });
    if (this.#ws !== ws) return; // an 'open' listener called close() or reconnect()
    if (this.#o.serviceKey === undefined) this.#askBound();
    if (reconnected && this.#o.resubscribe !== false) for (const id of [...this.#live]) void this.#resubscribe(id);
  }

  /**
   * Browser connections: asks whether the socket that just opened is bound (`init_ok.bound`).
   * A cookie the browser dropped (its Max-Age passed while the page was offline) opens an
   * unbound socket, with no 4001 and no push: the only sign that the session is over.
   */
  #askBound(): void {
    const ws = this.#ws;
    const epoch = this.#epoch;
    this.request('init', { node_id: this.#o.dest }).then(
      (r) => {
        // A gateway that does not say (an older one) teaches nothing; nor does an answer about a replaced socket.
        if (this.#ws !== ws || this.#epoch !== epoch || typeof r.bound !== 'boolean') return;
        if (r.bound) this.#boundLive();
        else if (this.#hasSession === true) this.#boundEnded(this.#regenUntil > 0 ? 'regenerated' : 'unknown', false);
        else this.#hasSession = false;
        this.emit('bound', { bound: r.bound });
      },
      () => undefined, // the socket closed first (a 4001 says more), or no answer: learn nothing
    );
  }

  /** After a reconnect: follow again, or learn that the session ended meanwhile. */
  async #resubscribe(sessionId: string, attempt = 0): Promise<void> {
    const ws = this.#ws;
    try {
      const r = await this.request('subscribe_session', { session_id: sessionId });
      if (r.type === 'session_invalid' && this.#live.delete(sessionId)) {
        this.emit('session_expired', { sessionId, bound: false, reason: 'unknown', pushed: false });
      }
    } catch (err) {
      this.emit('error', err instanceof Error ? err : new Error(String(err)));
      // Kept, and tried again on this connection (the gateway's store may be away for a
      // while: error 11), 1 s doubling to 30 s; a reconnect starts over.
      if (!this.#live.has(sessionId) || this.#ws !== ws) return;
      const timer = setTimeout(
        () => {
          this.#resubTimers.delete(timer);
          if (this.#ws === ws && this.connected && this.#live.has(sessionId)) void this.#resubscribe(sessionId, attempt + 1);
        },
        Math.min(RESUBSCRIBE_MAX_MS, 1000 * 2 ** attempt),
      );
      this.#resubTimers.add(timer);
    }
  }

  #clearResubscribes(): void {
    for (const t of this.#resubTimers) clearTimeout(t);
    this.#resubTimers.clear();
  }

  #onMessage(data: unknown): void {
    this.#lastRx = Date.now();
    let msg: { body?: Record<string, unknown> } | undefined;
    try {
      msg = JSON.parse(typeof data === 'string' ? data : String(data)) as typeof msg;
    } catch {
      msg = undefined;
    }
    const body = msg !== null && typeof msg === 'object' ? msg.body : undefined;
    if (body === undefined || body === null || typeof body !== 'object' || typeof body.type !== 'string') {
      this.emit('error', new Error('The gateway sent a frame that is not a message'));
      return;
    }
    const inReplyTo = body.in_reply_to;
    if (typeof inReplyTo === 'number') {
      const p = this.#pending.get(inReplyTo);
      if (p === undefined) return; // timed out already, or a heartbeat's reply
      this.#pending.delete(inReplyTo);
      clearTimeout(p.timer);
      if (body.type === 'error') {
        const e = body as unknown as ErrorReply;
        p.reject(
          typeof e.code === 'number' && typeof e.text === 'string'
            ? new GatewayRequestError(p.type, e.code, e.text)
            : new GatewayRequestError(p.type, 0, 'the gateway sent an error reply without its code or text'),
        );
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
    if (!pushWellFormed(body)) {
      // Not taken for an event: a session_expired without its session_id would read as the end of the bound session.
      this.emit('error', new Error(`The gateway sent a ${body.type} push without its fields`));
      return;
    }
    if (body.type === 'session_expired') {
      const push = body as unknown as SessionExpiredPush;
      if (push.bound === true && push.reason !== 'regenerated') this.#rebound();
      if (push.bound === true && push.reason === 'regenerated') {
        this.#regenSeen = true;
        this.#regenerated();
      } else if (push.bound === true) {
        this.#boundEndSeen = true;
        this.#boundEnded(push.reason, true);
      } else {
        this.#live.delete(push.session_id);
        this.emit('session_expired', { sessionId: push.session_id, bound: false, reason: push.reason, pushed: true });
      }
    } else if (body.type === 'session_extended') {
      const push = body as unknown as PushOf<'session_extended'>;
      if (push.bound === true) this.#boundLive();
      this.emit('session_extended', { sessionId: push.bound ? undefined : push.session_id, bound: push.bound === true, expiresIn: push.expires_in });
    } else if (body.type === 'session_updated') {
      const push = body as unknown as PushOf<'session_updated'>;
      const e: SessionUpdatedEvent = { sessionId: push.bound ? undefined : push.session_id, bound: push.bound === true };
      if (push.data !== undefined) e.data = push.data;
      this.emit('session_updated', e);
    } else if (body.type === 'session_expiring') {
      const push = body as unknown as SessionExpiringPush;
      if (push.bound === true) this.#boundLive();
      this.emit('session_expiring', { sessionId: push.bound ? undefined : push.session_id, bound: push.bound === true, expiresIn: push.expires_in });
    }
  }

  /** A push for the bound session: the socket is bound to a live session. */
  #boundLive(): void {
    this.#hasSession = true;
    this.#rebound();
  }

  /** A socket stayed bound after a regeneration: later ends found without a push are 'unknown', not 'regenerated'. */
  #rebound(): void {
    clearTimeout(this.#rebindTimer);
    this.#rebindTimer = undefined;
    this.#regenUntil = 0;
  }

  /** The bound session moved to a new cookie: wait for it (regenerationWindowMs), tell the app. */
  #regenerated(): void {
    clearTimeout(this.#rebindTimer);
    this.#rebindTimer = undefined;
    this.#hasSession = true;
    this.#regenUntil = Date.now() + (this.#o.regenerationWindowMs ?? 10_000);
    this.#regenAttempt = 0;
    this.emit('session_regenerated', { bound: true });
  }

  /** Reports the end of the bound session once. */
  #boundEnded(reason: EndReason | 'unknown', pushed: boolean): void {
    this.#hasSession = false;
    this.#regenUntil = 0;
    this.emit('session_expired', { bound: true, reason, pushed });
  }

  #onClose(code: number, reason: string): void {
    this.#ws = undefined;
    this.#lastClose = code;
    clearTimeout(this.#connectTimer);
    this.#clearResubscribes();
    clearTimeout(this.#rebindTimer);
    this.#rebindTimer = undefined;
    // A connection that stayed open long enough resets the backoff; one closed at once does not.
    const rc = this.#o.reconnect === false ? {} : (this.#o.reconnect ?? {});
    if (this.#openedAt !== undefined && Date.now() - this.#openedAt >= (rc.resetAfterMs ?? 10_000)) {
      this.#attempt = 0;
      this.#step = 0;
    }
    this.#openedAt = undefined;
    this.#stopHeartbeat();
    if (this.#o.resubscribe === false) this.#live.clear();
    this.#failAll(`The connection closed (code ${code}) before the reply came`);
    const epoch = this.#epoch;
    const kind = closeKind(code);
    let retry = this.#wanted && this.#o.reconnect !== false;
    let delayMs: number | undefined;
    if (kind === 'regenerated') {
      if (!this.#regenSeen) this.#regenerated();
      delayMs = this.#regenBackoff();
    } else if (kind === 'ended' && !this.#boundEndSeen && Date.now() < this.#regenUntil) {
      // The browser still sent the old cookie: the new one is on its way. Try again.
      delayMs = this.#regenBackoff();
    } else if (kind === 'ended') {
      retry = false;
      // Closed for the cookie's session without a push: it ended while the client was away
      // (reported), or the cookie was stale from the start (a page that never had a session).
      const known = this.#hasSession === true || (this.#hasSession === undefined && this.#opens > 1);
      if (!this.#boundEndSeen && known) this.#boundEnded(this.#regenUntil > 0 ? 'regenerated' : 'unknown', false);
      this.#hasSession = false;
    }
    this.emit('close', { code, reason, kind, willReconnect: retry });
    // A listener (of this close, session_expired or session_regenerated) that called close(),
    // reconnect() or connect() has decided: no second socket, no reconnect after a close().
    if (epoch !== this.#epoch || this.#ws !== undefined || this.#checking !== undefined) return;
    if (!retry) {
      this.#wanted = false;
      this.#removeWake();
      this.#opened?.reject(new GatewayConnectionError(`The connection closed (code ${code})${reason ? `: ${reason}` : ''}`));
      this.#opened = undefined;
      this.#outbox = [];
      this.#failAll(`The connection closed (code ${code})`);
      return;
    }
    // 1012 after a connection that had stayed open: the node drains, come back within the
    // jitter window; a 1012 right after an open backs off like any other close.
    this.#schedule(delayMs ?? (code === SERVICE_RESTART && this.#attempt === 0 ? this.#restartJitter() : this.#backoff()));
  }

  #schedule(delayMs: number): void {
    // The timer first: a 'reconnecting' listener's close() or reconnect() clears it.
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      if (this.#wanted) void this.#connectNow();
    }, delayMs);
    this.emit('reconnecting', { attempt: ++this.#attempt, delayMs });
  }

  /** 1012: the node is going; come back soon, at a random point of a short window. */
  #restartJitter(): number {
    const r = this.#o.reconnect === false ? {} : (this.#o.reconnect ?? {});
    return Math.round(Math.random() * (r.restartJitterMs ?? 1000));
  }

  /**
   * While waiting for a regenerated cookie: 250 ms doubling to 3 s, so a late cookie is picked
   * up soon, yet the old cookie is presented only about seven times in the default 10 s window
   * (each such upgrade counts against the address's failed-authentication limit).
   */
  #regenBackoff(): number {
    return Math.min(3000, 250 * 2 ** this.#regenAttempt++);
  }

  // ---- heartbeat and wake-ups ------------------------------------------------------------

  #armHeartbeat(): void {
    const hb = this.#o.heartbeat;
    if (hb === false) return;
    clearTimeout(this.#heartbeatTimer);
    this.#heartbeatTimer = setTimeout(() => this.#beat(), hb?.intervalMs ?? 20_000);
  }

  /** Pings when the link has been quiet for a whole interval; any frame at all counts as an answer. */
  #beat(force = false): void {
    const hb = this.#o.heartbeat;
    const ws = this.#ws;
    if (hb === false || ws === undefined || ws.readyState !== OPEN) return;
    const interval = hb?.intervalMs ?? 20_000;
    const idle = Date.now() - this.#lastRx;
    clearTimeout(this.#heartbeatTimer);
    if (!force && idle < interval) {
      this.#heartbeatTimer = setTimeout(() => this.#beat(), interval - idle);
      return;
    }
    const sentAt = Date.now();
    // `init` is allowed on every connection and has no effect beyond naming the node (the dest we address).
    ws.send(JSON.stringify({ src: this.#o.src, dest: this.#o.dest, body: { type: 'init', msg_id: ++this.#msgId, node_id: this.#o.dest } }));
    this.#heartbeatTimer = setTimeout(() => {
      if (this.#ws !== ws) return;
      if (this.#lastRx >= sentAt) return this.#beat();
      // Nothing came back: the path is dead even if the socket does not know it yet.
      this.#ws = undefined;
      this.#detach(ws);
      this.#onClose(1006, 'heartbeat timeout');
    }, hb?.timeoutMs ?? 10_000);
  }

  #stopHeartbeat(): void {
    clearTimeout(this.#heartbeatTimer);
    this.#heartbeatTimer = undefined;
  }

  /**
   * The user is back (the browser online again, a tab shown): reconnects now instead of at the
   * backoff slot, or pings an open socket to find out at once whether its path still works.
   * The client does this itself on `online` and `visibilitychange`; `TabSession` calls it when
   * another tab of the group is shown.
   */
  wake(): void {
    if (!this.#wanted) return;
    if (this.#retryTimer !== undefined) {
      clearTimeout(this.#retryTimer);
      this.#retryTimer = undefined;
      void this.#connectNow();
    } else if (this.connected) {
      this.#beat(true);
    }
  }

  #installWake(): void {
    if (this.#wakeInstalled || typeof addEventListener !== 'function') return;
    this.#wakeInstalled = true;
    addEventListener('online', this.#wake);
    if (typeof document !== 'undefined') document.addEventListener('visibilitychange', this.#wake);
  }

  #removeWake(): void {
    if (!this.#wakeInstalled) return;
    this.#wakeInstalled = false;
    removeEventListener('online', this.#wake);
    if (typeof document !== 'undefined') document.removeEventListener('visibilitychange', this.#wake);
  }

  /** Exponential backoff with jitter (half fixed, half random), so clients do not return in step. */
  #backoff(): number {
    const r = this.#o.reconnect === false ? {} : (this.#o.reconnect ?? {});
    const base = Math.min(r.maxDelayMs ?? 30_000, (r.initialDelayMs ?? 250) * (r.factor ?? 2) ** this.#step);
    this.#step++;
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
