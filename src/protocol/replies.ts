import { jsonOf } from './frozen-json.js';
import type { Envelope } from './messages.js';
import type { AnyPush } from './push-schemas.js';
import type { AnyReply, ErrorReply, ReplyDraft } from './reply-schemas.js';

/** Any body the gateway sends: a reply (errors included) or a push. */
export type Body = AnyReply | AnyPush;

/**
 * A reply swaps the request's ends and points back at its `msg_id`. `body` must be fresh
 * (every handler builds one per request): `in_reply_to` is set on it in place, because
 * copying each body with a spread is a real share of the validate path.
 */
export function reply(req: { src: string; dest: string }, inReplyTo: number, body: ReplyDraft): Envelope<AnyReply> {
  const done = body as AnyReply;
  done.in_reply_to = inReplyTo;
  return { src: req.dest, dest: req.src, body: done };
}

/** Maelstrom's error body; `in_reply_to` only when the request's `msg_id` was readable. */
export function errorBody(code: ErrorReply['code'], text: string, inReplyTo?: number): ErrorReply {
  return inReplyTo === undefined ? { type: 'error', code, text } : { type: 'error', in_reply_to: inReplyTo, code, text };
}

/**
 * An error reply. When the request's ends were unreadable it comes from `nodeId`
 * and names no `dest`, since there is nobody to address.
 */
export function errorReply(
  at: { src?: string; dest?: string; msgId?: number },
  nodeId: string,
  code: ErrorReply['code'],
  text: string,
): Envelope<ErrorReply> | Omit<Envelope<ErrorReply>, 'dest'> {
  const body = errorBody(code, text, at.msgId);
  return at.src !== undefined && at.dest !== undefined ? { src: at.dest, dest: at.src, body } : { src: nodeId, body };
}

/**
 * Serializes an outgoing message. Never throws: should a value refuse to serialize (the
 * schemas bound nesting, so this is a last line of defence), the reply becomes error 13
 * to the same request, so it is still answered exactly once and the node keeps serving.
 */
export function encode(m: { src: string; dest?: string; body: Body }): string {
  try {
    return encodeHot(m) ?? JSON.stringify(m);
  } catch {
    const inReplyTo = 'in_reply_to' in m.body && typeof m.body.in_reply_to === 'number' ? m.body.in_reply_to : undefined;
    return JSON.stringify({ ...m, body: errorBody(13, 'Internal error: the reply could not be serialized', inReplyTo) });
  }
}

/**
 * `JSON.stringify(s)` of a string: written in place when every character is printable ASCII
 * other than `"` and `\` (what names and ids are), by the full serializer otherwise.
 */
function q(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return JSON.stringify(s);
  }
  return `"${s}"`;
}

/**
 * The two replies a gateway sends most (`session_valid` without data, `token_valid`) written
 * by template: the same text as `JSON.stringify` of the envelope (test/unit/protocol), without
 * walking the envelope and body objects. Their bodies have just these members, in this order
 * (the handlers build them, `reply` adds `in_reply_to`). Undefined for anything else.
 */
function encodeHot(m: { src: string; dest?: string; body: Body }): string | undefined {
  const b = m.body;
  if (m.dest === undefined || !('in_reply_to' in b) || !Number.isSafeInteger(b.in_reply_to)) return undefined;
  if (b.type === 'session_valid') {
    if (b.data !== undefined || !Number.isSafeInteger(b.expires_in) || typeof b.user_id !== 'string') return undefined;
    return `{"src":${q(m.src)},"dest":${q(m.dest)},"body":{"type":"session_valid","user_id":${q(b.user_id)},"expires_in":${b.expires_in},"in_reply_to":${b.in_reply_to}}}`;
  }
  if (b.type === 'token_valid') {
    if (typeof b.payload !== 'object' || b.payload === null) return undefined;
    return `{"src":${q(m.src)},"dest":${q(m.dest)},"body":{"type":"token_valid","payload":${jsonOf(b.payload)},"in_reply_to":${b.in_reply_to}}}`;
  }
  return undefined;
}
