import type { EndReason } from '../protocol/codes.js';
import { unixSeconds } from '../sessions/records.js';
import type { GatewayConnection } from './connection.js';
import type { FollowRefusal, PipelineServices } from './services.js';

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

export interface BindOptions {
  /** `session_expiring` this many ms before the end (0: none). */
  warnBeforeMs: number;
  /** Called once the session ended, after `session_expired` was pushed. */
  onEnded(reason: EndReason): void;
}

/**
 * Binds a connection to a cookie's session: `session_expiring` before the end and
 * `session_expired` at the end are pushed to BOUND_DEST, then `onEnded` runs. Says why not
 * when the session has as many followers as allowed.
 */
export function bindSession(conn: GatewayConnection, s: Extract<CookieSession, { valid: true }>, o: BindOptions): FollowRefusal | undefined {
  // The id stays out of the connection: bound pushes never echo it (see BOUND_DEST).
  const refused = conn.follow('bound', s.hash, '(cookie)', s.end, s.endReason, {
    onEnded: (why) => {
      conn.push(BOUND_DEST, { type: 'session_expired', session_id: s.hash, bound: true, reason: why });
      o.onEnded(why);
    },
    onExpiring: (expiresIn) => conn.push(BOUND_DEST, { type: 'session_expiring', session_id: s.hash, bound: true, expires_in: expiresIn }),
    warnBefore: o.warnBeforeMs > 0 ? o.warnBeforeMs : undefined,
    onExtended: (expiresIn) => conn.push(BOUND_DEST, { type: 'session_extended', session_id: s.hash, bound: true, expires_in: expiresIn }),
    // Without the data: session data stays server-side, the page asks its backend.
    onUpdated: () => conn.push(BOUND_DEST, { type: 'session_updated', session_id: s.hash, bound: true }),
  });
  if (refused === undefined) conn.bindSession(s.hash);
  // The session may have ended between the check and now: look again.
  if (refused === undefined) conn.gateway.hub.recheck(s.hash);
  return refused;
}
