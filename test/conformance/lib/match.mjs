// @ts-check
// Patterns a reply is checked against. A string is a regular expression that must match
// the whole value (a non-string value is tested as its JSON text); numbers, booleans and
// null must be equal; an array matches element by element with equal length; an object
// names the keys it checks (others may be present), plus two directives:
//   {"$absent": ["k"]}          "k" must not be present
//   {"$not_contains": ["text"]} the object's JSON text must not contain "text"
import { isObject, substitute } from './values.mjs';

/** @param {string} text */
const escapeRegExp = (text) => text.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');

/**
 * A pattern with captured variables filled in, each as literal text.
 * @param {unknown} pattern @param {import('./values.mjs').Vars} vars
 */
export const fillPattern = (pattern, vars) => substitute(pattern, vars, escapeRegExp);

/** @type {Map<string, RegExp>} */
const compiled = new Map();

/** @param {string} source */
function fullMatch(source) {
  let re = compiled.get(source);
  if (!re) {
    // `s`: a `.` in a pattern also crosses the newlines of long error texts.
    re = new RegExp(`^(?:${source})$`, 's');
    compiled.set(source, re);
  }
  return re;
}

/** @param {unknown} v */
const show = (v) => {
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 160 ? `${text.slice(0, 160)}…` : text;
};

/**
 * Why `actual` does not match `pattern`, or null when it does.
 * @param {unknown} pattern @param {unknown} actual @param {string} [at]
 * @returns {string | null}
 */
export function mismatch(pattern, actual, at = 'body') {
  if (typeof pattern === 'string') {
    if (actual === undefined) return `${at} is missing (expected /${pattern}/)`;
    const text = typeof actual === 'string' ? actual : JSON.stringify(actual);
    return fullMatch(pattern).test(text) ? null : `${at} = ${show(actual)} does not match /${pattern}/`;
  }
  if (Array.isArray(pattern)) {
    if (!Array.isArray(actual)) return `${at} = ${show(actual)}, expected an array`;
    if (actual.length !== pattern.length) return `${at} has ${actual.length} items, expected ${pattern.length}`;
    for (const [i, p] of pattern.entries()) {
      const why = mismatch(p, actual[i], `${at}[${i}]`);
      if (why) return why;
    }
    return null;
  }
  if (isObject(pattern)) {
    if (!isObject(actual)) return `${at} = ${show(actual)}, expected an object`;
    for (const [key, p] of Object.entries(pattern)) {
      if (key === '$absent') {
        for (const name of /** @type {string[]} */ (p)) if (Object.hasOwn(actual, name)) return `${at}.${name} should be absent, is ${show(actual[name])}`;
      } else if (key === '$not_contains') {
        const text = JSON.stringify(actual);
        for (const needle of /** @type {string[]} */ (p)) if (text.includes(needle)) return `${at} should not contain ${show(needle)}`;
      } else {
        const why = mismatch(p, actual[key], `${at}.${key}`);
        if (why) return why;
      }
    }
    return null;
  }
  return Object.is(pattern, actual) ? null : `${at} = ${show(actual)}, expected ${show(pattern)}`;
}

/**
 * The value at a dotted path (`body.session_id`), or undefined.
 * @param {unknown} value @param {string} path
 */
export function valueAt(value, path) {
  /** @type {unknown} */
  let v = value;
  for (const key of path.split('.')) {
    if (isObject(v)) v = v[key];
    else if (Array.isArray(v)) v = v[Number(key)];
    else return undefined;
  }
  return v;
}
