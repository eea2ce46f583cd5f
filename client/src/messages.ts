/**
 * The gateway's replies and pushes, as the client sees them: types only, taken from the
 * server's TypeBox schemas (src/protocol), so both ends read one definition. `import type`
 * is erased from the built module: the browser loads none of the server's code.
 */
import type { RequestOf, RequestType } from '../../src/protocol/messages.js';
import type { AnyReply, ReplyOf } from '../../src/protocol/reply-schemas.js';
import type { PushOf } from '../../src/protocol/push-schemas.js';

export type { EndReason } from '../../src/protocol/codes.js';
export type { AnyReply, ErrorReply, ReplyOf, ReplyTo, ReplyType } from '../../src/protocol/reply-schemas.js';
export type { RequestOf, RequestType } from '../../src/protocol/messages.js';

/** The fields of a request of type `T`, as `request(type, fields)` takes them (the client sets `type` and `msg_id`). */
export type RequestFields<T extends RequestType> = Omit<RequestOf<T>, 'type' | 'msg_id'>;
export type { AnyPush, PushOf, PushType } from '../../src/protocol/push-schemas.js';
export type { Envelope } from '../../src/protocol/messages.js';

export type InitOk = ReplyOf<'init_ok'>;
export type SessionCreated = ReplyOf<'session_created'>;
export type SessionValid = ReplyOf<'session_valid'>;
export type SessionInvalid = ReplyOf<'session_invalid'>;
export type SessionRegenerated = ReplyOf<'session_regenerated'>;
export type SessionDestroyed = ReplyOf<'session_destroyed'>;
export type Subscribed = ReplyOf<'subscribed'>;
export type Unsubscribed = ReplyOf<'unsubscribed'>;
export type Sessions = ReplyOf<'sessions'>;
export type SessionSummary = Sessions['sessions'][number];
export type SessionsRevoked = ReplyOf<'sessions_revoked'>;
export type TokenGenerated = ReplyOf<'token_generated'>;
export type TokenRefreshed = ReplyOf<'token_refreshed'>;
export type TokenPair = Omit<TokenGenerated, 'type' | 'in_reply_to'>;
export type TokenValid = ReplyOf<'token_valid'>;
export type TokenInvalid = ReplyOf<'token_invalid'>;
export type TokenRevoked = ReplyOf<'token_revoked'>;

/** Every reply body the client can resolve with (error replies reject instead). */
export type Reply = Exclude<AnyReply, { type: 'error' }>;

/**
 * `session_expired` as pushed. A bound connection (browser with the session cookie) gets
 * `bound: true` and `session_id` = the session's handle (a store hash, as in `list_sessions`),
 * never the id: the page never sees its HttpOnly cookie's value.
 */
export type SessionExpiredPush = PushOf<'session_expired'>;
export type SessionExpiringPush = PushOf<'session_expiring'>;
