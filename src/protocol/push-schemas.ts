import { Type, type Static, type TProperties } from '@sinclair/typebox';
import { END_REASONS } from './codes.js';

/**
 * One TypeBox schema per push (a message the gateway sends unasked, to the followers of a
 * session). A push carries the node's own `msg_id` and no `in_reply_to`.
 */

const msgId = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: "the node's own counter" });

/** A connection bound to a session by its cookie is told the session's handle, never its id. */
const followed = {
  session_id: Type.String({ description: 'the subscribed session id; for a bound connection, the session handle' }),
  bound: Type.Optional(Type.Boolean({ description: 'true when the session is the one of the connection cookie' })),
};

function pushOf<T extends string, P extends TProperties>(type: T, props: P) {
  return Type.Object({ type: Type.Literal(type), msg_id: msgId, ...followed, ...props }, { additionalProperties: false });
}

export const pushSchemas = {
  session_expired: pushOf('session_expired', {
    reason: Type.Union(
      END_REASONS.map((r) => Type.Literal(r)),
      { description: END_REASONS.join(', ') },
    ),
  }),
  session_expiring: pushOf('session_expiring', { expires_in: Type.Integer({ minimum: 0, description: 'whole seconds left, rounded up' }) }),
  session_extended: pushOf('session_extended', { expires_in: Type.Integer({ minimum: 0, description: 'whole seconds left after the extension, rounded up' }) }),
  /** `data` only to subscribers that named the session id; a bound connection is told of the change alone. */
  session_updated: pushOf('session_updated', { data: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: "the session's new data" })) }),
};

export type PushType = keyof typeof pushSchemas;
/** A push body as it goes on the wire. */
export type PushOf<K extends PushType> = Static<(typeof pushSchemas)[K]>;
export type AnyPush = { [K in PushType]: PushOf<K> }[PushType];
/** A push body before the connection numbers it. */
export type PushDraft<K extends PushType = PushType> = { [P in K]: Omit<PushOf<P>, 'msg_id'> }[K];
