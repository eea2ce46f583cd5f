/**
 * Reads `src`, `dest` and `body.msg_id` from the beginning of a message that is too large
 * to parse whole (stdio never buffers an oversized line: it keeps only its first bytes).
 * The error 12 it gets can then carry `in_reply_to` and go to the right `dest`, as
 * the protocol wants whenever the `msg_id` is readable. A value cut off by the end of the
 * head is not read: nothing is guessed.
 */
export interface EnvelopeHead {
  src?: string;
  dest?: string;
  body?: { msg_id?: number };
}

/** A JSON number (RFC 8259 section 6: no leading zero, no lone `-` or `.`), read only when a delimiter follows it. */
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

/** What may follow a value in JSON. */
const DELIMITERS = ',}] \t\n\r';

class Truncated extends Error {}

export function readEnvelopeHead(text: string): EnvelopeHead {
  const out: EnvelopeHead = {};
  let i = 0;
  const n = text.length;
  const ws = () => {
    while (i < n && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++;
    if (i >= n) throw new Truncated();
  };
  const expect = (c: string) => {
    ws();
    if (text[i] !== c) throw new SyntaxError(c);
    i++;
  };
  const string = (): string => {
    let j = i + 1;
    while (j < n && text.charCodeAt(j) !== 34) j += text.charCodeAt(j) === 92 ? 2 : 1;
    if (j >= n) throw new Truncated();
    const s = JSON.parse(text.slice(i, j + 1)) as string;
    i = j + 1;
    return s;
  };
  const skip = () => {
    ws();
    const c = text[i];
    if (c === '"') return void string();
    if (c === '{' || c === '[') {
      let depth = 0;
      do {
        const d = text[i];
        if (d === '"') {
          string();
          continue;
        }
        if (d === '{' || d === '[') depth++;
        else if (d === '}' || d === ']') depth--;
        i++;
        if (i >= n && depth > 0) throw new Truncated();
      } while (depth > 0);
      return;
    }
    while (i < n && !DELIMITERS.includes(text[i]!)) i++;
    if (i >= n) throw new Truncated();
  };
  /** Reads the members of an object, handing each key to `member` positioned at its value. */
  const object = (member: (key: string) => void) => {
    expect('{');
    ws();
    if (text[i] === '}') return void i++;
    for (;;) {
      ws();
      if (text[i] !== '"') throw new SyntaxError('key');
      const key = string();
      expect(':');
      ws();
      member(key);
      ws();
      if (text[i] === ',') i++;
      else if (text[i] === '}') return void i++;
      else throw new SyntaxError(',');
    }
  };
  try {
    object((key) => {
      if ((key === 'src' || key === 'dest') && text[i] === '"') out[key] = string();
      else if (key === 'body' && text[i] === '{') {
        out.body = {};
        object((k) => {
          if (k !== 'msg_id') return skip();
          NUMBER.lastIndex = i;
          const m = NUMBER.exec(text);
          if (!m) return skip();
          i += m[0].length;
          if (i >= n) throw new Truncated();
          // `007`, `1.` or `7x` are not JSON: the parse of the whole message would refuse them.
          if (!DELIMITERS.includes(text[i]!)) throw new SyntaxError('number');
          out.body!.msg_id = Number(m[0]);
        });
      } else skip();
    });
  } catch {
    // Truncated or not JSON: what was read so far stands.
  }
  return out;
}
