import { firstCodePoints } from './code-points.js';
import { ErrorCodes, type ErrorCode } from './codes.js';
import { readEnvelopeHead } from './head.js';
import { readHotShape } from './hot-shape.js';
import { countMembers, scanJson } from './json-shape.js';
import type { AnyRequest, RequestType } from './messages.js';
import { requestChecks, type RequestCheck } from './request-checks.js';

/** A request that passed every check. */
export interface DecodedRequest {
  ok: true;
  src: string;
  dest: string;
  body: AnyRequest;
  /** W3C `traceparent` of the envelope, when the sender gave one (checked where it is used). */
  traceparent?: unknown;
}

/** A message that cannot be served: the error reply to send, with whatever could be read. */
export interface DecodeFailure {
  ok: false;
  src?: string;
  dest?: string;
  msgId?: number;
  code: ErrorCode;
  text: string;
}

export type Decoded = DecodedRequest | DecodeFailure;

/** The checks of messages.ts's schemas, compiled ahead of time (request-checks.ts): no schema compiler loads at start. */
const checks = new Map<string, RequestCheck>(Object.entries(requestChecks));

/**
 * Every request type and field name, each mapped to the program's own copy of it. A name read
 * from a line is a new string each time, and V8 looks each new string up in its string table
 * for every property it names; the program's copy is looked up once, here.
 */
const names = new Map<string, string>();
for (const [type, check] of checks) {
  names.set(type, type);
  for (const f of check.fields) names.set(f.name, f.name);
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isMsgId = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function fail(code: ErrorCode, text: string, at: Partial<DecodeFailure> = {}): DecodeFailure {
  return { ok: false, code, text, ...at };
}

/**
 * The first violation of `check` in `body`, in the order TypeBox reports them (a missing
 * required field first, then the fields in schema order), as "Missing field ..." / "Field ...
 * must be ...". A violation inside a field's value (an item of an array) gives the field's
 * description too (which says what its items must be), or "a JSON object" for the
 * application's `data` and `payload`.
 */
function describe(check: RequestCheck, body: Record<string, unknown>): string {
  for (const f of check.fields) if (f.required && !Object.hasOwn(body, f.name)) return `Missing field "${f.name}"`;
  for (const f of check.fields) {
    const value = body[f.name];
    if (value === undefined || f.check(value)) continue;
    if (f.own === undefined || !f.own(value)) return `Field "${f.name}" must be ${f.description ?? 'well-formed'}`;
    return `Field "${f.name}" must be ${f.name === 'data' || f.name === 'payload' ? 'a JSON object' : (f.description ?? 'well-formed')}`;
  }
  return 'Malformed body';
}

/** Reads `{src, dest, body}` from a parsed value, then checks the body against its schema. */
export function decodeValue(value: unknown): Decoded {
  if (!isObject(value)) return fail(ErrorCodes.MALFORMED, 'Not an envelope: expected a JSON object with src, dest and body');
  const { src, dest, body } = value;
  if (typeof src === 'string' && typeof dest === 'string' && isObject(body) && typeof body.type === 'string' && isMsgId(body.msg_id)) {
    // The common case, without building the error context.
    const check = checks.get(body.type);
    if (
      check !== undefined &&
      check.check(body) &&
      !tooDeep(body) &&
      illFormed(body) === undefined &&
      protoMember(body) === undefined &&
      outOfRange(body) === undefined
    ) {
      return { ok: true, src, dest, body: body as AnyRequest, traceparent: value.traceparent };
    }
  }
  const ends = typeof src === 'string' && typeof dest === 'string' ? { src, dest } : {};
  const msgId = isObject(body) && isMsgId(body.msg_id) ? body.msg_id : undefined;
  const at = { ...ends, msgId };
  if (typeof src !== 'string') return fail(ErrorCodes.MALFORMED, src === undefined ? 'Missing field "src"' : 'Field "src" must be a string', at);
  if (typeof dest !== 'string') return fail(ErrorCodes.MALFORMED, dest === undefined ? 'Missing field "dest"' : 'Field "dest" must be a string', at);
  if (!isObject(body)) return fail(ErrorCodes.MALFORMED, body === undefined ? 'Missing field "body"' : 'Field "body" must be a JSON object', at);
  if (body.msg_id === undefined) return fail(ErrorCodes.MALFORMED, 'Missing field "msg_id"', at);
  if (msgId === undefined) return fail(ErrorCodes.MALFORMED, 'Field "msg_id" must be a non-negative integer', at);
  if (body.type === undefined) return fail(ErrorCodes.MALFORMED, 'Missing field "type"', at);
  if (typeof body.type !== 'string') return fail(ErrorCodes.MALFORMED, 'Field "type" must be a string', at);
  const check = checks.get(body.type);
  if (!check) return fail(ErrorCodes.NOT_SUPPORTED, `Unknown message type "${firstCodePoints(body.type, 64)}"`, at);
  if (!check.check(body)) return fail(ErrorCodes.MALFORMED, describe(check, body), at);
  const deep = tooDeep(body);
  if (deep) return fail(ErrorCodes.MALFORMED, `Field "${deep}" must not nest deeper than ${MAX_DEPTH} levels`, at);
  const bad = illFormed(body);
  if (bad) return fail(ErrorCodes.MALFORMED, `Field "${bad}" must be well-formed UTF-16 text (no lone surrogate)`, at);
  const proto = protoMember(body);
  if (proto) return fail(ErrorCodes.MALFORMED, `Field "${proto}" must not have a member named "__proto__"`, at);
  const range = outOfRange(body);
  if (range) return fail(ErrorCodes.MALFORMED, `Field "${range}" must not hold a number out of range`, at);
  return { ok: true, src, dest, body: body as AnyRequest, traceparent: value.traceparent };
}

/**
 * How deep application JSON (`data`, `payload`) may nest. The message size limit alone
 * would let 30,000 levels through, which parse fine but overflow the stack when the
 * value is serialized again in a reply: one stored session could then take a node down.
 */
export const MAX_DEPTH = 32;

/** True when `v` nests objects or arrays more than `left` levels deep. */
export function depthExceeds(v: unknown, left: number): boolean {
  if (typeof v !== 'object' || v === null) return false;
  if (left === 0) return true;
  if (Array.isArray(v)) {
    for (const x of v) if (depthExceeds(x, left - 1)) return true;
    return false;
  }
  for (const k in v) if (depthExceeds((v as Record<string, unknown>)[k], left - 1)) return true;
  return false;
}

/** The name of the field that nests too deep, if one does. */
function tooDeep(body: Record<string, unknown>): 'data' | 'payload' | undefined {
  if (body.data !== undefined && depthExceeds(body.data, MAX_DEPTH)) return 'data';
  if (body.payload !== undefined && depthExceeds(body.payload, MAX_DEPTH)) return 'payload';
  return undefined;
}

/** A lone surrogate: with the `u` flag, a paired one is one code point and does not match. */
const LONE_SURROGATE = /\p{Cs}/u;

/** True when a string, member name or array item anywhere in `v` holds a lone surrogate. */
export function hasLoneSurrogate(v: unknown): boolean {
  if (typeof v === 'string') return LONE_SURROGATE.test(v);
  if (typeof v !== 'object' || v === null) return false;
  if (Array.isArray(v)) return v.some(hasLoneSurrogate);
  for (const k in v) if (LONE_SURROGATE.test(k) || hasLoneSurrogate((v as Record<string, unknown>)[k])) return true;
  return false;
}

/**
 * The field holding ill-formed UTF-16, if one does. Redis keys and hashes see text as
 * UTF-8, which turns every lone surrogate into U+FFFD: `"alice\ud800"` and `"alice\ufffd"`
 * would then name one user index. No text needs one, so none gets in. Runs after the depth
 * check, so the walk is bounded.
 */
function illFormed(body: Record<string, unknown>): string | undefined {
  // Only the fields that are stored or signed: a string that only names something (a session,
  // token or handle, a user looked up) is looked up as it is (nothing was ever stored under
  // ill-formed text, so it names nothing and gets the typed reply), and a field the request
  // does not define is ignored, whatever it holds.
  for (const k of STORED_FIELDS) {
    if (k === 'user_id' && LOOKUP_TYPES.has(body.type as string)) continue;
    if (body[k] !== undefined && hasLoneSurrogate(body[k])) return k;
  }
  return undefined;
}

/** The fields of a request whose text is stored or signed (`user_id` but where it is looked up). */
const STORED_FIELDS: readonly string[] = ['user_id', 'data', 'payload', 'idp_sid', 'idp_sub'];
/** Requests whose `user_id` is looked up, not stored (each checks the owner of every record it reaches). */
const LOOKUP_TYPES: ReadonlySet<string> = new Set(['list_sessions', 'revoke_user_sessions', 'destroy_session_handle']);

/** True when an object anywhere in `v` has an own member named `__proto__`. */
export function hasProtoMember(v: unknown): boolean {
  if (typeof v !== 'object' || v === null) return false;
  if (Array.isArray(v)) return v.some(hasProtoMember);
  if (Object.hasOwn(v, '__proto__')) return true;
  for (const k in v) if (hasProtoMember((v as Record<string, unknown>)[k])) return true;
  return false;
}

/** The application object (`payload`, `data`) for which `has` is true, if one is. */
function appObjectWhere(body: Record<string, unknown>, has: (v: unknown) => boolean): 'data' | 'payload' | undefined {
  if (body.payload !== undefined && has(body.payload)) return 'payload';
  if (body.data !== undefined && has(body.data)) return 'data';
  return undefined;
}

/**
 * The application object that has a member named `__proto__`, if one does. JSON.parse makes
 * it an ordinary member, but it would be signed into a token or handed back to applications
 * whose object merges read it as the prototype (prototype pollution). Runs after the depth
 * check, so the walk is bounded.
 */
const protoMember = (body: Record<string, unknown>) => appObjectWhere(body, hasProtoMember);

/** True when a number anywhere in `v` is not finite. */
export function hasNonFinite(v: unknown): boolean {
  if (typeof v === 'number') return !Number.isFinite(v);
  if (typeof v !== 'object' || v === null) return false;
  if (Array.isArray(v)) return v.some(hasNonFinite);
  for (const k in v) if (hasNonFinite((v as Record<string, unknown>)[k])) return true;
  return false;
}

/**
 * The application object holding a number JSON.parse read as Infinity (`1e400`), if one does:
 * JSON has no spelling for it, so it would be stored or signed as `null`, a value the client
 * never sent. Runs after the depth check, so the walk is bounded.
 */
const outOfRange = (body: Record<string, unknown>) => appObjectWhere(body, hasNonFinite);

/**
 * How deep a whole message may nest before it is refused unparsed: the envelope's own levels
 * plus MAX_DEPTH, doubled so that a moderately deep field still gets the error naming it.
 */
export const MAX_MESSAGE_DEPTH = 2 * (MAX_DEPTH + 3);

/**
 * The error for `text`, addressed from the `src`, `dest` and `msg_id` that can be read from it
 * without parsing it (readEnvelopeHead: one pass, no recursion, so a deep message cannot
 * overflow it). `text` is what the caller may read: the head of a message too large to hold,
 * or a whole message within the size limit (then a top-level `msg_id` is found wherever it is).
 */
export function failureFromHead(text: string, code: ErrorCode, message: string): DecodeFailure {
  const h = readEnvelopeHead(text);
  const ends = h.src !== undefined && h.dest !== undefined ? { src: h.src, dest: h.dest } : {};
  const msgId = h.body?.msg_id;
  return fail(code, message, { ...ends, msgId: isMsgId(msgId) ? msgId : undefined });
}

/**
 * Parses one line or frame of text; never throws. A scan first refuses, unparsed, a message
 * nesting deeper than MAX_MESSAGE_DEPTH; after the parse, a member count lower than the scan's
 * means a duplicate name (JSON.parse keeps the last silently: `{"user_id":"a","user_id":"b"}`
 * must not mean one thing here and another to a proxy or log reader that keeps the first).
 */
export function decode(text: string): Decoded {
  return decodeHot(text) ?? decodeFull(text);
}

/** A request of the hot shape (src/protocol/hot-shape.ts) that passes its schema, or undefined. */
function decodeHot(text: string): DecodedRequest | undefined {
  const hot = readHotShape(text);
  if (hot === undefined) return undefined;
  const type = names.get(hot.type);
  const check = type === undefined ? undefined : checks.get(type);
  if (check === undefined) return undefined;
  const body: Record<string, unknown> = { type, msg_id: hot.msgId };
  body[names.get(hot.key) ?? hot.key] = hot.value;
  if (!check.check(body)) return undefined;
  return { ok: true, src: hot.src, dest: hot.dest, body: body as AnyRequest, traceparent: undefined };
}

/** `decode` without the hot shape's shortcut: every message can be read this way. */
export function decodeFull(text: string): Decoded {
  const shape = scanJson(text, MAX_MESSAGE_DEPTH);
  if (shape.tooDeep) return failureFromHead(text, ErrorCodes.MALFORMED, `Message nests deeper than ${MAX_MESSAGE_DEPTH} levels`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // Addressed when its head, before the fault, holds `src`, `dest` and `msg_id` whole: the
    // client waiting for that reply is told, not left waiting (`{...} trailing`, a typo late in a body).
    return failureFromHead(text, ErrorCodes.MALFORMED, 'Malformed JSON');
  }
  const d = decodeValue(value);
  if (countMembers(value) === shape.members) return d;
  const at = d.ok ? { src: d.src, dest: d.dest, msgId: d.body.msg_id } : { src: d.src, dest: d.dest, msgId: d.msgId };
  if (at.src === undefined) delete at.src;
  if (at.dest === undefined) delete at.dest;
  return fail(ErrorCodes.MALFORMED, 'Duplicate member name in a JSON object', at);
}

/** The error for a line or frame over the size limit; `value` is its parse when the transport could afford one. */
export function oversized(bytes: number | undefined, limit: number, value?: unknown): DecodeFailure {
  const text = `Message too large${bytes === undefined ? '' : ` (${bytes} bytes)`}: the limit is ${limit} bytes`;
  if (isObject(value)) {
    const { src, dest, body } = value;
    const ends = typeof src === 'string' && typeof dest === 'string' ? { src, dest } : {};
    return fail(ErrorCodes.MALFORMED, text, { ...ends, msgId: isObject(body) && isMsgId(body.msg_id) ? body.msg_id : undefined });
  }
  return fail(ErrorCodes.MALFORMED, text);
}

/**
 * A message whose bytes are not UTF-8 (over WebSocket, ws closes with 1007 instead): refused
 * whole, never read with replacement characters, which would make two spellings one (a
 * `user_id` of `caf\xe9` and one of `caf\xe8` would name the same user). `value`: its head, to
 * address the error.
 */
export function notUtf8(value?: unknown): DecodeFailure {
  const text = 'Message is not valid UTF-8';
  if (isObject(value)) {
    const { src, dest, body } = value;
    const ends = typeof src === 'string' && typeof dest === 'string' ? { src, dest } : {};
    return fail(ErrorCodes.MALFORMED, text, { ...ends, msgId: isObject(body) && isMsgId(body.msg_id) ? body.msg_id : undefined });
  }
  return fail(ErrorCodes.MALFORMED, text);
}

/**
 * The error for a bare body (HTTP) that is not UTF-8, addressed as `decodeBody` would address
 * it: `lossy` is the body read with replacement characters, parsed only to find its `msg_id`
 * (0 when it has none; read from the head when the parse fails). Nothing else of it is used.
 */
export function notUtf8Body(lossy: string, src: string, dest: string): DecodeFailure {
  const failure = notUtf8();
  const at = (msgId: unknown) => fail(failure.code, failure.text, { src, dest, msgId: isMsgId(msgId) ? msgId : undefined });
  if (scanJson(lossy, MAX_MESSAGE_DEPTH).tooDeep) return at(undefined);
  let value: unknown;
  try {
    value = JSON.parse(lossy);
  } catch {
    return at(readEnvelopeHead(`{"body":${lossy}`).body?.msg_id);
  }
  if (!isObject(value)) return at(undefined);
  return at(value.msg_id === undefined ? 0 : value.msg_id);
}

export type { RequestType };

/**
 * Parses a bare body (request-reply transports: HTTP), never throws: the checks of `decode`,
 * addressed as if from `src` to `dest`. Without `msg_id`, the body is read as `msg_id` 0.
 */
export function decodeBody(text: string, src: string, dest: string): Decoded {
  const shape = scanJson(text, MAX_MESSAGE_DEPTH);
  if (shape.tooDeep) return fail(ErrorCodes.MALFORMED, `Message nests deeper than ${MAX_MESSAGE_DEPTH} levels`, { src, dest });
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // As decode does: the `msg_id` of the head, when it stands whole before the fault.
    const msgId = readEnvelopeHead(`{"body":${text}`).body?.msg_id;
    return fail(ErrorCodes.MALFORMED, 'Malformed JSON', { src, dest, msgId: isMsgId(msgId) ? msgId : undefined });
  }
  // The text of the other transports, whose envelope carries this as its `body` field.
  if (!isObject(value)) return fail(ErrorCodes.MALFORMED, 'Field "body" must be a JSON object', { src, dest });
  const duplicate = countMembers(value) !== shape.members;
  const body = value.msg_id === undefined ? { ...value, msg_id: 0 } : value;
  const d = decodeValue({ src, dest, body });
  if (!duplicate) return d;
  return fail(ErrorCodes.MALFORMED, 'Duplicate member name in a JSON object', { src, dest, msgId: d.ok ? d.body.msg_id : d.msgId });
}
