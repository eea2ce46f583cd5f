/**
 * One pass over the text of a JSON message, before `JSON.parse`, for the two things the parse
 * hides or makes costly: how deep it nests (a frame of 60,000 nested arrays parses slowly and
 * builds a value that overflows the stack later) and how many object members it has (a parse
 * keeps only the last of duplicate names, so counting them here and in the parsed value finds
 * a duplicate without a reviver, which would slow every parse).
 */
export interface JsonShape {
  /** True when objects and arrays nest deeper than the limit; the scan stops there. */
  tooDeep: boolean;
  /** Colons outside strings: in valid JSON, one per object member. */
  members: number;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;

/** Scans `text` (valid JSON or not; the parse that follows judges that). */
export function scanJson(text: string, maxDepth: number): JsonShape {
  let depth = 0;
  let members = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) i = stringEnd(text, i);
    else if (c === COLON) members++;
    else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > maxDepth) return { tooDeep: true, members };
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) depth--;
  }
  return { tooDeep: false, members };
}

/** Index of the quote closing the string opened at `open` (or the text's length). */
function stringEnd(text: string, open: number): number {
  let q = open;
  for (;;) {
    q = text.indexOf('"', q + 1);
    if (q < 0) return text.length;
    // Escaped when preceded by an odd number of backslashes.
    let b = q - 1;
    while (text.charCodeAt(b) === BACKSLASH) b--;
    if ((q - 1 - b) % 2 === 0) return q;
  }
}

/** Object members in a parsed value (nesting already bounded by the scan). */
export function countMembers(v: unknown): number {
  if (typeof v !== 'object' || v === null) return 0;
  let count = 0;
  if (Array.isArray(v)) {
    for (const x of v) count += countMembers(x);
    return count;
  }
  const o = v as Record<string, unknown>;
  for (const k in o) {
    count++;
    const x = o[k];
    if (typeof x === 'object' && x !== null) count += countMembers(x);
  }
  return count;
}
