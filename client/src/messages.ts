/**
 * The gateway's replies and pushes, as the client sees them (PROTOCOL.md). Hand-written
 * rather than imported from the server, so the browser module depends on nothing.
 */

export type EndReason = 'ttl' | 'idle' | 'destroyed' | 'regenerated' | 'revoked';

export interface InitOk { type: 'init_ok' }
export interface SessionCreated { type: 'session_created'; session_id: string; expires_at: number; expires_in: number }
export interface SessionValid { type: 'session_valid'; user_id: string; expires_in: number; data?: Record<string, unknown> }
export interface SessionInvalid { type: 'session_invalid'; error: string }
export interface SessionRegenerated { type: 'session_regenerated'; new_session_id: string; expires_at: number; expires_in: number }
export interface SessionDestroyed { type: 'session_destroyed'; message: string }
export interface Subscribed { type: 'subscribed'; session_id: string; expires_in: number }
export interface Unsubscribed { type: 'unsubscribed'; session_id: string }
export interface SessionSummary { handle: string; created_at: number; expires_at: number; data?: Record<string, unknown> }
export interface Sessions { type: 'sessions'; sessions: SessionSummary[] }
export interface SessionsRevoked { type: 'sessions_revoked'; count: number }
export interface TokenPair { access_token: string; expires_in: number; refresh_token: string; refresh_expires_in: number }
export interface TokenGenerated extends TokenPair { type: 'token_generated' }
export interface TokenRefreshed extends TokenPair { type: 'token_refreshed' }
export interface TokenValid { type: 'token_valid'; payload: Record<string, unknown> }
export interface TokenInvalid { type: 'token_invalid'; error: string }
export interface TokenRevoked { type: 'token_revoked' }

/** Every reply body the client can resolve with (error replies reject instead). */
export type Reply =
  | InitOk | SessionCreated | SessionValid | SessionInvalid | SessionRegenerated | SessionDestroyed
  | Subscribed | Unsubscribed | Sessions | SessionsRevoked | TokenGenerated | TokenRefreshed
  | TokenValid | TokenInvalid | TokenRevoked;

/** Maelstrom's error body. */
export interface ErrorReply { type: 'error'; in_reply_to?: number; code: number; text: string }

/**
 * `session_expired` as pushed. A bound connection (browser with the session cookie) gets
 * `bound: true` and `session_id` = the session's handle (a store hash, as in `list_sessions`),
 * never the id: the page never sees its HttpOnly cookie's value.
 */
export interface SessionExpiredPush { type: 'session_expired'; msg_id: number; session_id?: string; bound?: boolean; reason: EndReason }
export interface SessionExpiringPush { type: 'session_expiring'; msg_id: number; session_id?: string; bound?: boolean; expires_in: number }

/** The envelope of every message. */
export interface Envelope<B = Record<string, unknown>> {
  src: string;
  dest?: string;
  body: B;
}
