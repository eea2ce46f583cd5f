import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { MAX_ID } from './code-points.js';

/**
 * One TypeBox schema per request body: the runtime check (compiled once) and the
 * TypeScript type come from the same definition, and `requestSchemas` exports as
 * JSON Schema. Each field's `description` completes the sentence "Field X must be ...",
 * which is the text of error 12.
 */

export { MAX_ID };

const msgId = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'a non-negative integer' });
/** Any string names a session: one that was never issued gets `session_invalid`, not an error. */
const sessionId = Type.String({ description: 'a string' });
const userId = Type.String({ minLength: 1, maxLength: MAX_ID, description: `a non-empty string of at most ${MAX_ID} characters` });
/** A user or handle looked up, not stored: any string; one that names nobody gets the typed reply (an empty list, count 0). */
const lookupName = Type.String({ description: 'a string' });
const jsonObject = Type.Record(Type.String(), Type.Unknown(), { description: 'a JSON object' });
const ttl = Type.Integer({ minimum: 1, maximum: 31_536_000, description: 'an integer number of seconds from 1 to 31536000' });
const idpName = Type.String({ maxLength: MAX_ID, description: `a string of at most ${MAX_ID} characters` });

function request<T extends string, P extends Record<string, TSchema>>(type: T, props: P) {
  return Type.Object({ type: Type.Literal(type), msg_id: msgId, ...props }, { additionalProperties: true });
}

export const requestSchemas = {
  init: request('init', {
    node_id: Type.String({ pattern: '^[\\w.:-]{1,128}$', description: 'a node id of 1-128 characters A-Z a-z 0-9 _ . : -' }),
    node_ids: Type.Optional(
      Type.Array(Type.String({ maxLength: 128 }), { maxItems: 1024, description: 'an array of at most 1024 strings of at most 128 characters' }),
    ),
  }),
  create_session: request('create_session', {
    user_id: userId,
    data: Type.Optional(jsonObject),
    ttl: Type.Optional(ttl),
    idp_sid: Type.Optional(idpName),
    idp_sub: Type.Optional(idpName),
  }),
  validate_session: request('validate_session', { session_id: sessionId }),
  regenerate_session: request('regenerate_session', { old_session_id: sessionId }),
  destroy_session: request('destroy_session', { session_id: sessionId }),
  subscribe_session: request('subscribe_session', { session_id: sessionId }),
  unsubscribe_session: request('unsubscribe_session', { session_id: sessionId }),
  list_sessions: request('list_sessions', { user_id: lookupName }),
  destroy_session_handle: request('destroy_session_handle', { user_id: lookupName, handle: lookupName }),
  revoke_user_sessions: request('revoke_user_sessions', { user_id: lookupName, except_session_id: Type.Optional(sessionId) }),
  generate_access_token: request('generate_access_token', { payload: jsonObject }),
  verify_token: request('verify_token', { token: Type.String({ description: 'a string' }) }),
  refresh_token: request('refresh_token', { refresh_token: Type.String({ description: 'a string' }) }),
  revoke_token: request('revoke_token', { token: Type.String({ description: 'a string' }) }),
  exchange_session: request('exchange_session', { session_id: sessionId }),
  /** Without `session_id`: the session a browser connection is bound to by its cookie. */
  extend_session: request('extend_session', { session_id: Type.Optional(sessionId), ttl: Type.Optional(ttl) }),
  update_session: request('update_session', { session_id: sessionId, data: jsonObject }),
  revoke_user_tokens: request('revoke_user_tokens', {
    user_id: userId,
    before: Type.Optional(Type.Integer({ minimum: 0, maximum: 253_402_300_799, description: 'an integer, unix time in seconds' })),
  }),
};

export type RequestType = keyof typeof requestSchemas;
export type RequestOf<T extends RequestType> = Static<(typeof requestSchemas)[T]>;
export type AnyRequest = { [T in RequestType]: RequestOf<T> }[RequestType];

/** The message types a browser connection may send (docs/protocol.md, WebSocket). */
export const BROWSER_TYPES: ReadonlySet<string> = new Set([
  'init',
  'validate_session',
  'subscribe_session',
  'unsubscribe_session',
  'destroy_session',
  'verify_token',
  'refresh_token',
  'revoke_token',
  'exchange_session',
  'extend_session',
]);

/** The envelope of every message on every transport. */
export const envelopeSchema = Type.Object({
  src: Type.String({ description: 'a string' }),
  dest: Type.String({ description: 'a string' }),
  body: Type.Object({ type: Type.String(), msg_id: Type.Optional(msgId) }, { additionalProperties: true }),
  /** W3C Trace Context of the request (optional): its span becomes a child of this trace. */
  traceparent: Type.Optional(Type.String({ description: 'a W3C traceparent, e.g. 00-<32 hex>-<16 hex>-01' })),
});

export interface Envelope<B = Record<string, unknown>> {
  src: string;
  dest: string;
  body: B;
}

export type { EndReason } from './codes.js';
