import { Type, type Static, type TProperties } from '@sinclair/typebox';
import { ErrorCodes } from './codes.js';
import type { RequestType } from './messages.js';

/**
 * One TypeBox schema per reply body: the gateway's handlers are typed by them, the client
 * takes its reply types from them (`import type`), and `auth-gateway schema` prints them
 * as JSON Schema. Bodies are closed (`additionalProperties: false`): a field the schema
 * does not name is a change of the protocol, and the reply-schema test catches it.
 */

const inReplyTo = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: "the request's msg_id" });
const secondsLeft = Type.Integer({ minimum: 0, description: 'whole seconds left, rounded up' });
const unixSeconds = Type.Integer({ minimum: 0, description: 'unix time in seconds (floor)' });
const sessionId = Type.String({ minLength: 1, description: 'a session id: keep it secret, like a password' });
const jsonObject = Type.Record(Type.String(), Type.Unknown(), { description: 'a JSON object' });
/** Spelled out, not mapped from ErrorCodes, so that the type is the union of the literals. */
const errorCode = Type.Union(
  [
    Type.Literal(ErrorCodes.NOT_SUPPORTED),
    Type.Literal(ErrorCodes.UNAVAILABLE),
    Type.Literal(ErrorCodes.MALFORMED),
    Type.Literal(ErrorCodes.INTERNAL),
    Type.Literal(ErrorCodes.FORBIDDEN),
    Type.Literal(ErrorCodes.RATE_LIMITED),
  ],
  { description: '10 not supported, 11 unavailable, 12 malformed, 13 internal, 1001 forbidden, 1002 rate limited' },
);
const reason = Type.String({ description: 'why, in words (e.g. "Session not found or expired", "Token expired")' });

function replyOf<T extends string, P extends TProperties>(type: T, props: P) {
  return Type.Object({ type: Type.Literal(type), in_reply_to: inReplyTo, ...props }, { additionalProperties: false });
}

const tokenPair = {
  access_token: Type.String({ description: 'a JWT' }),
  expires_in: Type.Integer({ minimum: 1, description: "the access token's lifetime in seconds" }),
  refresh_token: Type.String({ description: 'an opaque, single-use refresh token' }),
  refresh_expires_in: Type.Integer({ minimum: 1, description: "the refresh token's lifetime in seconds" }),
};

const sessionSummary = Type.Object(
  {
    handle: Type.String({ description: 'names the session for destroy_session_handle; not a session id' }),
    created_at: unixSeconds,
    expires_at: unixSeconds,
    data: Type.Optional(jsonObject),
  },
  { additionalProperties: false },
);

export const replySchemas = {
  init_ok: replyOf('init_ok', {
    bound: Type.Optional(Type.Boolean({ description: 'browser WebSocket connections only: whether the connection is bound to a live session by its cookie' })),
  }),
  session_created: replyOf('session_created', { session_id: sessionId, expires_at: unixSeconds, expires_in: secondsLeft }),
  session_valid: replyOf('session_valid', { user_id: Type.String(), expires_in: secondsLeft, data: Type.Optional(jsonObject) }),
  session_invalid: replyOf('session_invalid', { error: reason }),
  session_regenerated: replyOf('session_regenerated', { new_session_id: sessionId, expires_at: unixSeconds, expires_in: secondsLeft }),
  session_destroyed: replyOf('session_destroyed', { message: Type.Literal('Session destroyed') }),
  subscribed: replyOf('subscribed', { session_id: Type.String(), expires_in: secondsLeft }),
  unsubscribed: replyOf('unsubscribed', { session_id: Type.String() }),
  sessions: replyOf('sessions', { sessions: Type.Array(sessionSummary) }),
  sessions_revoked: replyOf('sessions_revoked', { count: Type.Integer({ minimum: 0, description: 'how many sessions ended' }) }),
  token_generated: replyOf('token_generated', tokenPair),
  token_refreshed: replyOf('token_refreshed', tokenPair),
  token_valid: replyOf('token_valid', {
    payload: Type.Object(
      { iat: Type.Number(), exp: Type.Number(), jti: Type.String() },
      { additionalProperties: true, description: "the verified claims: the token's payload plus iat, exp and jti" },
    ),
  }),
  token_invalid: replyOf('token_invalid', { error: reason }),
  token_revoked: replyOf('token_revoked', {}),
  session_extended: replyOf('session_extended', { expires_at: unixSeconds, expires_in: secondsLeft }),
  session_updated: replyOf('session_updated', { expires_in: secondsLeft }),
  tokens_revoked: replyOf('tokens_revoked', {
    before: Type.Integer({ minimum: 0, description: 'unix seconds: tokens of the user issued at or before it are refused' }),
  }),
  /** Maelstrom's error body; `in_reply_to` only when the request's `msg_id` was readable. */
  error: Type.Object(
    {
      type: Type.Literal('error'),
      in_reply_to: Type.Optional(inReplyTo),
      code: errorCode,
      text: Type.String({ description: 'a safe description of the error, for people' }),
    },
    { additionalProperties: false },
  ),
};

export type ReplyType = keyof typeof replySchemas;
/** A reply body as it goes on the wire. */
export type ReplyOf<K extends ReplyType> = Static<(typeof replySchemas)[K]>;
/** Any reply body, errors included. */
export type AnyReply = { [K in ReplyType]: ReplyOf<K> }[ReplyType];
/** A reply body before `reply()` points it at its request. */
export type ReplyDraft<K extends ReplyType = ReplyType> = { [P in K]: Omit<ReplyOf<P>, 'in_reply_to'> }[K];
export type ErrorReply = ReplyOf<'error'>;

/** The replies each request may get besides `error`: the handlers are typed by this table. */
export const repliesTo = {
  init: ['init_ok'],
  create_session: ['session_created'],
  validate_session: ['session_valid', 'session_invalid'],
  regenerate_session: ['session_regenerated', 'session_invalid'],
  destroy_session: ['session_destroyed'],
  subscribe_session: ['subscribed', 'session_invalid'],
  unsubscribe_session: ['unsubscribed'],
  list_sessions: ['sessions'],
  destroy_session_handle: ['session_destroyed'],
  revoke_user_sessions: ['sessions_revoked'],
  generate_access_token: ['token_generated'],
  verify_token: ['token_valid', 'token_invalid'],
  refresh_token: ['token_refreshed', 'token_invalid'],
  revoke_token: ['token_revoked', 'token_invalid'],
  exchange_session: ['token_generated', 'session_invalid'],
  extend_session: ['session_extended', 'session_invalid'],
  update_session: ['session_updated', 'session_invalid'],
  revoke_user_tokens: ['tokens_revoked'],
} as const satisfies { [T in RequestType]: readonly ReplyType[] };

/** The reply body a request of type `T` may get (errors aside). */
export type ReplyTo<T extends RequestType> = ReplyOf<(typeof repliesTo)[T][number]>;
