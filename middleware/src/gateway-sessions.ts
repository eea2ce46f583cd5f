import type { IncomingMessage, ServerResponse } from 'node:http';
import { WebSocket } from 'ws';
import { ErrorCodes, GatewayConnectionError, GatewayRequestError } from '../../client/src/errors.js';
import { checkMs, GatewayClient, type ReconnectOptions, type WebSocketConstructor } from '../../client/src/gateway-client.js';
import { keepFromSharedCaches, readSessionCookie, sessionCookieLine, setSessionCookie, type CookieSettings } from './cookies.js';
import { closedError, GatewaySessionError, keyRefused, notReady, refused, unconfirmed, unavailable } from './errors.js';
import { reportRefusedUpgrades } from './refused-upgrade.js';
import { SessionCache, type GatewaySession, type SessionCacheStats } from './session-cache.js';

export interface GatewaySessionsOptions {
  /** ws:// or wss:// URL of the gateway. */
  url: string;
  /** The gateway's GATEWAY_SERVICE_KEY (at least 32 bytes): the middleware's connection has the service role. */
  serviceKey: string;
  /**
   * Name of the session cookie; it must be the one the gateway binds browser WebSockets with
   * (GATEWAY_SESSION_COOKIE). Default: `__Host-sid` when `secure` (the gateway's name over
   * https when GATEWAY_SESSION_COOKIE is unset), `sid` otherwise.
   */
  cookieName?: string;
  /** `Secure` on the cookie (default true). false only for plain-http development on localhost. */
  secure?: boolean;
  /** `SameSite` of the cookie (default `Lax`). */
  sameSite?: 'Lax' | 'Strict';
  /**
   * Most sessions cached, and so followed on the gateway, at once (default 5000). Keep it at
   * or below the gateway's GATEWAY_MAX_SUBSCRIPTIONS (default 10000): a subscription it
   * refuses is served from the gateway's answer, uncached.
   */
  cacheSize?: number;
  /**
   * A cached session is validated again, in the background, once this fraction of the time
   * the gateway last gave it has passed (default 0.5): validate_session counts as activity
   * for GATEWAY_SESSION_IDLE_TIMEOUT, and a cache hit does not.
   */
  revalidateFraction?: number;
  /**
   * Time limit of each request to the gateway, ms (default 5000); past it the request gets 503.
   * The middleware's check of a session (any wait for room in the cache, then its round trip) takes at most this long in all.
   */
  timeoutMs?: number;
  /** Reconnection backoff of the gateway link (default: from 100 ms, doubling, at most 5000 ms). */
  reconnect?: ReconnectOptions;
  /** Heartbeat of the gateway link (see GatewayClientOptions.heartbeat; default on: 20 s + 10 s). */
  heartbeat?: { intervalMs?: number; timeoutMs?: number } | false;
  /** The clock, epoch ms (default Date.now); tests pass their own. */
  now?: () => number;
  /** The WebSocket constructor (default `ws`'s). */
  WebSocket?: WebSocketConstructor;
}

/** A request the middleware has seen: `session` is the validated session, or null (optional mode) when there is none. */
export interface SessionRequest extends IncomingMessage {
  session?: GatewaySession | null;
}

/** Connect-style middleware, for Express (`app.use`) and node:http. */
export type SessionMiddleware = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;

/** What `login` takes: the fields of `create_session`. */
export interface LoginOptions {
  user_id: string;
  data?: Record<string, unknown>;
  /** Seconds (default: the gateway's GATEWAY_SESSION_TTL). */
  ttl?: number;
  /** The identity provider's session id and subject, for back-channel logout. */
  idp_sid?: string;
  idp_sub?: string;
}

/** Counters of the middleware. */
export interface GatewaySessionsStats extends SessionCacheStats {
  /** Sessions in the cache now. */
  cached: number;
  /** Cookies refused without asking the gateway (not a possible session id). */
  malformed: number;
}

/** Protocol errors that say the request itself is at fault (unknown type, malformed, not allowed). */
const REFUSALS: ReadonlySet<number> = new Set([ErrorCodes.NOT_SUPPORTED, ErrorCodes.MALFORMED, ErrorCodes.FORBIDDEN]);

const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}$/;

function check(o: GatewaySessionsOptions): void {
  if (typeof o.url !== 'string' || !/^wss?:\/\//i.test(o.url)) throw new TypeError('The url option must be a ws:// or wss:// URL.');
  if (typeof o.serviceKey !== 'string' || Buffer.byteLength(o.serviceKey) < 32)
    throw new TypeError('The serviceKey option must be a string of at least 32 bytes.');
  if (o.cookieName !== undefined && !COOKIE_NAME.test(o.cookieName))
    throw new TypeError('The cookieName option must be a cookie name (1 to 64 token characters).');
  if (o.secure !== undefined && typeof o.secure !== 'boolean') throw new TypeError('The secure option must be a boolean.');
  if (o.secure === false && o.cookieName?.startsWith('__Host-')) throw new TypeError('The cookieName option may start with __Host- only when secure is true.');
  if (o.sameSite !== undefined && o.sameSite !== 'Lax' && o.sameSite !== 'Strict') throw new TypeError('The sameSite option must be "Lax" or "Strict".');
  if (o.cacheSize !== undefined && !(Number.isSafeInteger(o.cacheSize) && o.cacheSize >= 1))
    throw new TypeError('The cacheSize option must be a positive integer.');
  if (o.revalidateFraction !== undefined && !(o.revalidateFraction > 0 && o.revalidateFraction <= 1))
    throw new TypeError('The revalidateFraction option must be a number above 0 and at most 1.');
  checkMs('timeoutMs', o.timeoutMs, false);
  // The fields of reconnect and heartbeat are checked by the client; these are what it does not check.
  const isObject = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (o.reconnect !== undefined && !isObject(o.reconnect)) throw new TypeError('The reconnect option must be an object.');
  if (o.heartbeat !== undefined && o.heartbeat !== false && !isObject(o.heartbeat)) throw new TypeError('The heartbeat option must be an object or false.');
  if (o.now !== undefined && typeof o.now !== 'function') throw new TypeError('The now option must be a function.');
  if (o.WebSocket !== undefined && typeof o.WebSocket !== 'function') throw new TypeError('The WebSocket option must be a constructor.');
}

/** A plain-text answer that no cache keeps. */
function refuse(res: ServerResponse, status: 401 | 503): void {
  res.statusCode = status;
  res.setHeader('content-type', 'text/plain; charset=utf-8');
  res.setHeader('cache-control', 'no-store');
  if (status === 503) res.setHeader('retry-after', '1');
  res.end(status === 401 ? 'Not signed in' : 'Session service unavailable');
}

/**
 * Sessions of the auth gateway for a Node web application: one service connection to the
 * gateway, a bounded cache of validated sessions kept true by the gateway's pushes,
 * Connect-style middleware, a Fastify plugin, and login, logout and regenerate helpers that
 * set the session cookie the gateway's WebSocket binding reads.
 *
 * @example
 * const sessions = new GatewaySessions({ url: 'ws://127.0.0.1:8080', serviceKey: process.env.GATEWAY_SERVICE_KEY! });
 * await sessions.ready();
 * app.get('/me', sessions.middleware(), (req, res) => res.json(req.session));
 */
export class GatewaySessions {
  /** The service connection, shared: use it for other requests (`revokeUserSessions`, `listSessions`...). */
  readonly client: GatewayClient;
  readonly #cookie: CookieSettings;
  readonly #cache: SessionCache;
  readonly #ids = new WeakMap<IncomingMessage, string>();
  #malformed = 0;
  /** Set while the gateway's last answer to the connection was a refusal of the service key. */
  #refusal: GatewaySessionError | undefined;
  /** ready() calls waiting: each is told of a refusal, or of close(). */
  readonly #waiting = new Set<(err: GatewaySessionError) => void>();
  /** Set by close(), for good: nothing reopens the link. */
  #closed = false;

  constructor(options: GatewaySessionsOptions) {
    check(options);
    const secure = options.secure ?? true;
    this.#cookie = { name: options.cookieName ?? (secure ? '__Host-sid' : 'sid'), secure, sameSite: options.sameSite ?? 'Lax' };
    this.client = new GatewayClient({
      url: options.url,
      serviceKey: options.serviceKey,
      WebSocket: reportRefusedUpgrades(options.WebSocket ?? (WebSocket as unknown as WebSocketConstructor), (status) => this.#upgradeRefused(status)),
      src: 'middleware',
      timeoutMs: options.timeoutMs ?? 5000,
      reconnect: options.reconnect ?? { initialDelayMs: 100, maxDelayMs: 5000 },
      ...(options.heartbeat === undefined ? {} : { heartbeat: options.heartbeat }),
      // After a reconnect the cache starts empty and subscribes anew.
      resubscribe: false,
    });
    this.#cache = new SessionCache(this.client, {
      timeoutMs: options.timeoutMs ?? 5000,
      max: options.cacheSize ?? 5000,
      revalidateFraction: options.revalidateFraction ?? 0.5,
      now: options.now ?? Date.now,
      pingTimeoutMs: (options.heartbeat === false ? undefined : options.heartbeat?.timeoutMs) ?? 10_000,
    });
    this.client.on('error', () => undefined); // an unreadable frame: the request it answered times out (503)
    this.client.on('open', () => (this.#refusal = undefined));
    void this.client.connect().catch(() => undefined);
  }

  /**
   * Resolves once the gateway link is open (requests before that get 503). Rejects with
   * GatewaySessionError REFUSED when the gateway refuses the service key (HTTP 401 or 403 to
   * the upgrade): a configuration fault that retrying does not mend, though the link is still
   * retried with backoff (and opens once the gateway takes the key). After close() (and for
   * a ready() still waiting then) it rejects with UNAVAILABLE saying so: a closed object
   * stays closed. Without `timeoutMs` it waits as long as the gateway is unreachable; with
   * it, it rejects with UNAVAILABLE once that long has passed (the link is still retried).
   */
  ready(o: { timeoutMs?: number } = {}): Promise<void> {
    if (this.#closed) return Promise.reject(closedError());
    if (this.#refusal !== undefined) return Promise.reject(this.#refusal);
    return new Promise<void>((resolve, reject) => {
      const refusedNow = (err: GatewaySessionError) => reject(err);
      this.#waiting.add(refusedNow);
      this.client
        .connect(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs })
        .then(resolve, (err: unknown) => reject(err instanceof GatewayConnectionError ? notReady(err) : err))
        .finally(() => this.#waiting.delete(refusedNow));
    });
  }

  #upgradeRefused(status: number): void {
    if (status !== 401 && status !== 403) return;
    this.#refusal = keyRefused(status);
    for (const reject of this.#waiting) reject(this.#refusal);
    this.#waiting.clear();
  }

  /** True while the gateway link is up. */
  get connected(): boolean {
    return this.#cache.up;
  }

  /** The name of the session cookie. */
  get cookieName(): string {
    return this.#cookie.name;
  }

  get stats(): GatewaySessionsStats {
    return { ...this.#cache.stats, cached: this.#cache.size, malformed: this.#malformed };
  }

  /**
   * The request's session: from the cache (synchronously) or from the gateway (a promise).
   * null: no cookie, or no live session. Throws GatewaySessionError UNAVAILABLE (fail closed)
   * when the gateway cannot be asked.
   */
  authenticate(req: IncomingMessage): GatewaySession | null | Promise<GatewaySession | null> {
    const c = readSessionCookie(req, this.#cookie.name);
    if (c.kind === 'none') return null;
    if (c.kind === 'malformed') {
      this.#malformed++;
      return null;
    }
    const found = this.#cache.lookup(c.id);
    if (found instanceof Promise) return found.then((s) => this.#remember(req, c.id, s));
    return this.#remember(req, c.id, found);
  }

  #remember(req: IncomingMessage, id: string, s: GatewaySession | null): GatewaySession | null {
    if (s !== null) this.#ids.set(req, id);
    return s;
  }

  /**
   * The `Set-Cookie` value to add to the response of a request that carried a live session,
   * when the session's end may have moved past what the browser's cookie was last given: with an
   * idle timeout each validation moves it, and a cookie whose Max-Age ran out would end an
   * active user's session in the browser. Else undefined. (Used by the middleware and the
   * Fastify plugin, which also make the response `Cache-Control: private`: shared caches must
   * not store a response that carries it.)
   */
  cookieRefresh(req: IncomingMessage): string | undefined {
    const id = this.#ids.get(req);
    if (id === undefined) return undefined;
    const maxAge = this.#cache.cookieDue(id);
    return maxAge === undefined ? undefined : sessionCookieLine(this.#cookie, id, maxAge);
  }

  /**
   * Connect-style middleware: sets `req.session` and calls `next()`, or answers 401 (no
   * live session; with `optional: true`, sets `req.session = null` and goes on instead) or
   * 503 with `Retry-After: 1` (the gateway cannot be asked: never a stale "valid").
   */
  middleware(o: { optional?: boolean } = {}): SessionMiddleware {
    const optional = o.optional === true;
    return (req, res, next) => {
      const done = (s: GatewaySession | null): void => {
        (req as SessionRequest).session = s;
        if (s === null && !optional) return refuse(res, 401);
        const cookie = s === null ? undefined : this.cookieRefresh(req);
        if (cookie !== undefined) {
          res.appendHeader('set-cookie', cookie);
          keepFromSharedCaches(res);
        }
        next();
      };
      const failed = (err: unknown): void => {
        if (err instanceof GatewaySessionError) refuse(res, 503);
        else next(err);
      };
      let found: ReturnType<GatewaySessions['authenticate']>;
      try {
        found = this.authenticate(req);
      } catch (err) {
        failed(err);
        return;
      }
      if (found instanceof Promise) found.then(done, failed);
      else done(found);
    };
  }

  /** Creates a session (`create_session`) and sets its cookie on `res`. Throws GatewaySessionError UNAVAILABLE when the gateway cannot be asked. */
  async login(res: ServerResponse, o: LoginOptions): Promise<GatewaySession> {
    const fields = {
      user_id: o.user_id,
      ...(o.data === undefined ? {} : { data: o.data }),
      ...(o.ttl === undefined ? {} : { ttl: o.ttl }),
      ...(o.idp_sid === undefined ? {} : { idp_sid: o.idp_sid }),
      ...(o.idp_sub === undefined ? {} : { idp_sub: o.idp_sub }),
    };
    const created = await this.#ask(
      () => this.client.request('create_session', fields),
      'a session may have been created, but its cookie is not set: the user is not signed in',
    );
    // Not sent again by the next request unless the session's end may pass it.
    setSessionCookie(res, this.#cookie, created.session_id, this.#cache.cookieSet(created.session_id, created.expires_in));
    return o.data === undefined ? { user_id: o.user_id, expires_in: created.expires_in } : { user_id: o.user_id, data: o.data, expires_in: created.expires_in };
  }

  /**
   * Ends the request's session (`destroy_session`: every page of it is told) and clears the
   * cookie. Without a session cookie it only clears the cookie. Throws GatewaySessionError
   * UNAVAILABLE and leaves the cookie when the gateway cannot be asked (the session lives on)
   * or does not confirm the end, answering late or not at all (the session may have ended or
   * not: call it again, as destroy_session is idempotent).
   */
  async logout(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const id = this.#idOf(req);
    if (id !== undefined) {
      try {
        await this.#ask(
          () => this.client.destroySession(id),
          'the session may have ended or may still live; logout can be retried (destroy_session is idempotent)',
        );
      } finally {
        // Whatever came of it, the next request asks the gateway, which serves a session's requests in order.
        this.#cache.forget(id);
        this.#ids.delete(req);
      }
    }
    setSessionCookie(res, this.#cookie, '', 0);
  }

  /**
   * Moves the request's session to a new id (`regenerate_session`, after a privilege change)
   * and sets the new cookie; the old id ends at once (reason `regenerated`) and its pages
   * reconnect with the new cookie. `data`, when given, replaces the session's data
   * (`update_session`) before the new cookie is set. Resolves with the session under its new
   * id (also set as `req.session`). Throws GatewaySessionError NO_SESSION when the request has
   * no live session, UNAVAILABLE when the gateway cannot be asked or does not confirm a step.
   * A failure never leaves the user on a session without its new data: either the old id
   * lives on, or the user is signed out (a regeneration carried out late ends the old id and
   * its new id is never delivered; when `data` is refused or not answered, the new id is
   * destroyed and not delivered).
   */
  async regenerate(req: IncomingMessage, res: ServerResponse, o: { data?: Record<string, unknown> } = {}): Promise<GatewaySession> {
    const id = this.#idOf(req);
    const noSession = () => new GatewaySessionError('NO_SESSION', 'The request has no live session to regenerate');
    if (id === undefined) throw noSession();
    let r: Awaited<ReturnType<GatewayClient['regenerateSession']>>;
    try {
      r = await this.#ask(
        () => this.client.regenerateSession(id),
        'the session may still live under its old id, or have ended there (its new id is then never delivered: the user is signed out)',
      );
    } finally {
      this.#cache.forget(id);
      this.#ids.delete(req);
    }
    if (r.type !== 'session_regenerated') throw noSession();
    const newId = r.new_session_id;
    const data = o.data;
    if (data !== undefined) {
      try {
        await this.#ask(
          () => this.client.updateSession(newId, data),
          'the session was regenerated but its new data may not be set, so its new id was ended and not delivered: the user is signed out',
        );
      } catch (err) {
        // Never hand out the new id with the old data (a privilege drop would not take). The
        // gateway serves the destroy after the update, whenever that is carried out.
        void this.client.destroySession(newId).catch(() => undefined);
        throw err;
      }
    }
    setSessionCookie(res, this.#cookie, newId, this.#cache.cookieSet(newId, r.expires_in));
    // Cached (and followed) under the new id at once: the next request with the new cookie is a hit.
    const session = await this.#cache.lookup(newId);
    if (session === null) throw noSession();
    this.#ids.set(req, newId);
    (req as SessionRequest).session = session;
    return session;
  }

  /**
   * Ends every session of `userId` ("log out everywhere": `revoke_user_sessions`), but the
   * one of `exceptCurrent` when given: each of their pages is told, and this cache forgets
   * them at once. Resolves with how many ended.
   */
  async revokeUser(userId: string, o: { exceptCurrent?: IncomingMessage } = {}): Promise<number> {
    const except = o.exceptCurrent === undefined ? undefined : this.#idOf(o.exceptCurrent);
    const r = await this.#ask(() => this.client.revokeUserSessions(userId, except), 'the sessions may have ended or not; revokeUser can be retried');
    this.#cache.forgetUser(userId, except);
    return r.count;
  }

  /**
   * Closes the gateway link for good: the middleware answers 503 from then on, and the
   * helpers and ready() reject with UNAVAILABLE (nothing reopens the link; make a new
   * GatewaySessions to connect again).
   */
  close(): void {
    this.#closed = true;
    for (const reject of this.#waiting) reject(closedError());
    this.#waiting.clear();
    this.#cache.close();
    this.client.close();
  }

  #idOf(req: IncomingMessage): string | undefined {
    const known = this.#ids.get(req);
    if (known !== undefined) return known;
    const c = readSessionCookie(req, this.#cookie.name);
    return c.kind === 'id' ? c.id : undefined;
  }

  /**
   * One request to the gateway, failing fast (UNAVAILABLE, nothing asked) while the link is
   * down. A request the gateway refuses as malformed or not allowed is REFUSED: asking again
   * would not help. Any other failure of a request sent (no answer in time, the link's close,
   * an error 11 or 13) is UNAVAILABLE with `unknown`: what that leaves, as the gateway may
   * have carried it out, or may still.
   */
  async #ask<T>(call: () => Promise<T>, unknown: string): Promise<T> {
    if (!this.#cache.up) throw unavailable();
    try {
      return await call();
    } catch (err) {
      if (err instanceof GatewayRequestError && REFUSALS.has(err.code)) throw refused(err.text, err);
      throw unconfirmed(unknown, err);
    }
  }
}
