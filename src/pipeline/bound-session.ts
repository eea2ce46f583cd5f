import type { EndReason } from '../protocol/codes.js';
import { unixSeconds } from '../sessions/records.js';
import type { GatewayConnection } from './connection.js';
import type { FollowOptions, FollowRefusal, PipelineServices } from './services.js';

/**
 * `dest` of the pushes to a bound connection. A browser names no `src` when it connects, and
 * its pushes must not carry the session id either (the cookie is HttpOnly: echoing the id
 * would hand it to page scripts), so bound pushes say `bound: true`, name the session by its
 * handle (as `list_sessions` does: a store hash that cannot be presented as an id) and go to
 * "client".
 */
export const BOUND_DEST = 'client';

/** The session a cookie names, as a transport may hold it: no id, only the handle and its end. */
export type CookieSession = { valid: true; hash: string; end: number; endReason: 'ttl' | 'idle' } | { valid: false };

/**
 * Checks the session a browser's cookie names, as `validate_session` does (it counts as a
 * use). Rejects (error 11) when the store cannot answer: such a session can be neither
 * trusted nor refused.
 */
export async function checkCookie(services: PipelineServices, sessionId: string): Promise<CookieSession> {
  const v = await services.sessions.validate(sessionId);
  return v.valid ? { valid: true, hash: v.hash, end: v.end, endReason: v.endReason } : { valid: false };
}

/** Whose session a cookie names and when it ends, without counting as a use (a page asking who is logged in). */
export async function lookupCookie(
  services: PipelineServices,
  sessionId: string,
): Promise<{ userId: string; expiresAt: number; expiresIn: number; expiresInMs: number } | undefined> {
  const v = await services.sessions.peek(services.sessions.hashOf(sessionId));
  if (!v.valid) return undefined;
  return { userId: v.record.u, expiresAt: unixSeconds(v.end), expiresIn: v.expiresIn, expiresInMs: Math.max(0, v.end - services.clock.now()) };
}

/**
 * Told once a bound connection's session ended, after `session_expired` was pushed and every
 * other follower of the session was told (the transport closes it).
 */
export interface BoundEnd {
  /**
   * Told just before `session_expired` is pushed: `sessionEnded` follows in the same turn, so
   * the transport may hold the push and send it with its close.
   */
  sessionEnding(): void;
  sessionEnded(reason: EndReason): void;
}

/** What a bound connection follows its session with: pushes to BOUND_DEST, one object per connection. */
class BoundFollow implements FollowOptions {
  readonly warnBefore: number | undefined;
  readonly #conn: GatewayConnection;
  readonly #hash: string;
  readonly #end: BoundEnd;

  constructor(conn: GatewayConnection, hash: string, warnBeforeMs: number, end: BoundEnd) {
    this.#conn = conn;
    this.#hash = hash;
    this.#end = end;
    this.warnBefore = warnBeforeMs > 0 ? warnBeforeMs : undefined;
  }

  onEnded(reason: EndReason): void {
    this.#end.sessionEnding();
    this.#conn.push(BOUND_DEST, { type: 'session_expired', session_id: this.#hash, bound: true, reason });
    // The hub tells the session's other followers in the same turn, and the connection may be
    // one of them (it subscribed to its own session by id): they are told before it closes.
    const end = this.#end;
    queueMicrotask(() => end.sessionEnded(reason));
  }

  onExpiring(expiresIn: number): void {
    this.#conn.push(BOUND_DEST, { type: 'session_expiring', session_id: this.#hash, bound: true, expires_in: expiresIn });
  }

  onExtended(expiresIn: number): void {
    this.#conn.push(BOUND_DEST, { type: 'session_extended', session_id: this.#hash, bound: true, expires_in: expiresIn });
  }

  /** Without the data: session data stays server-side, the page asks its backend. */
  onUpdated(): void {
    this.#conn.push(BOUND_DEST, { type: 'session_updated', session_id: this.#hash, bound: true });
  }
}

/**
 * Binds a connection to a cookie's session: `session_expiring` `warnBeforeMs` before the end
 * (0: none) and `session_expired` at the end are pushed to BOUND_DEST, then `end` is told.
 * Says why not when the session has as many followers as allowed.
 */
export function bindSession(
  conn: GatewayConnection,
  s: Extract<CookieSession, { valid: true }>,
  warnBeforeMs: number,
  end: BoundEnd,
): FollowRefusal | undefined {
  // The id stays out of the connection: bound pushes never echo it (see BOUND_DEST).
  const refused = conn.follow('bound', s.hash, '(cookie)', s.end, s.endReason, new BoundFollow(conn, s.hash, warnBeforeMs, end));
  if (refused === undefined) conn.bindSession(s.hash);
  // The session may have ended between the check and now: look again.
  if (refused === undefined) conn.gateway.hub.recheck(s.hash);
  return refused;
}
