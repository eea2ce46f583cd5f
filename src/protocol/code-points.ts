/**
 * The longest `user_id` (where it is stored), `idp_sid` and `idp_sub`, in characters (code
 * points). Here, in a module that imports nothing, so that the token code can name it without
 * loading the schemas (stdio's start-up loads them only when a request needs them).
 */
export const MAX_ID = 256;

/**
 * How many characters `s` holds as JSON Schema counts them for `maxLength` and `minLength`
 * (code points: a surrogate pair is one, a lone surrogate one), where `s.length` counts UTF-16
 * code units. The request checks call it only when the length in units leaves a doubt.
 */
export function codePointCount(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length - 1; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n--;
        i++;
      }
    }
  }
  return n;
}

/**
 * The first `max` characters (code points) of `s`: a cut by UTF-16 units could split a
 * surrogate pair and put a lone surrogate into a reply, which strict JSON readers refuse
 * (RFC 8259 section 8.2: such text is not interoperable).
 */
export function firstCodePoints(s: string, max: number): string {
  let units = 0;
  for (let n = 0; n < max && units < s.length; n++) {
    const c = s.charCodeAt(units);
    const d = s.charCodeAt(units + 1);
    units += c >= 0xd800 && c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff ? 2 : 1;
  }
  return s.slice(0, units);
}
