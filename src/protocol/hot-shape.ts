/**
 * The shape most requests have on the wire, read without `JSON.parse`:
 * `{"src":"S","dest":"D","body":{"type":"T","msg_id":N,"K":"V"}}` with no whitespace, in this
 * order, every string plain printable ASCII (no escape, no quote, so each one parses to its
 * own text) and `msg_id` a plain integer. That is what clients write for `validate_session`
 * and `verify_token`, the requests a gateway serves most. Anything else, one space included,
 * is not matched and goes through the full decode; `decode` makes the same schema check on
 * what is matched, so both paths accept and refuse the same messages (test/unit/protocol).
 */
export interface HotShape {
  src: string;
  dest: string;
  type: string;
  msgId: number;
  key: string;
  value: string;
}

/** Printable ASCII but `"` and `\`: a JSON string of these parses to itself. */
const PLAIN = '[\\x20\\x21\\x23-\\x5b\\x5d-\\x7e]*';
const NAME = '[a-z_]{1,32}';
/** `0` or a number without a leading zero, fewer than 17 digits (the safe-integer check follows). */
const INTEGER = '0|[1-9][0-9]{0,15}';
const HOT = new RegExp(`^\\{"src":"(${PLAIN})","dest":"(${PLAIN})","body":\\{"type":"(${NAME})","msg_id":(${INTEGER}),"(${NAME})":"(${PLAIN})"\\}\\}$`);

/** The parts of a message of the hot shape, or undefined when it has another shape. */
export function readHotShape(text: string): HotShape | undefined {
  const m = HOT.exec(text);
  if (m === null) return undefined;
  const msgId = Number(m[4]);
  const key = m[5]!;
  // A second `type` or `msg_id` is a duplicate name, which the full decode refuses; a
  // `__proto__` member is one that an assignment could not make the same way.
  if (!Number.isSafeInteger(msgId) || key === 'type' || key === 'msg_id' || key === '__proto__') return undefined;
  return { src: m[1]!, dest: m[2]!, type: m[3]!, msgId, key, value: m[6]! };
}
