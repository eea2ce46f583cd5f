/**
 * Strength check for configured keys (`GATEWAY_JWT_SECRET(S)`, `GATEWAY_SERVICE_KEY`,
 * `GATEWAY_INTROSPECTION_KEYS`, `GATEWAY_LOG_SALT`).
 *
 * A key typed by a person is guessable: one token and a short dictionary recover a
 * 32-character password like `Password123!Password123!Password`. So a key must be the
 * encoding of random bytes, as `openssl rand -base64 32` prints: base64, base64url or hex,
 * canonical, decoding to at least 32 bytes, and showing none of the patterns a person
 * makes (repeats, runs, a single letter case). The text itself stays the key (an HS256
 * secret is used as given, as every JWT library does with a string secret).
 */

export const MIN_KEY_BYTES = 32;

/** How to make a key, quoted in every refusal. */
export const KEY_ADVICE = 'make one with `openssl rand -base64 32`';

const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

type Decoded = { bytes: Buffer; alphabet?: string } | undefined;

/** The bytes a key encodes, when it is canonical hex, base64 or base64url (one spelling per value). */
function decodeKey(text: string): Decoded {
  if (/^(?:[0-9a-f]{2})+$/.test(text) || /^(?:[0-9A-F]{2})+$/.test(text)) return { bytes: Buffer.from(text, 'hex') };
  if (/^[A-Za-z0-9+/]+={0,2}$/.test(text) && text.length % 4 === 0) {
    const bytes = Buffer.from(text, 'base64');
    if (bytes.toString('base64') === text) return { bytes, alphabet: BASE64 };
  }
  if (/^[A-Za-z0-9_-]+$/.test(text)) {
    const bytes = Buffer.from(text, 'base64url');
    if (bytes.toString('base64url') === text) return { bytes, alphabet: BASE64URL };
  }
  return undefined;
}

/** The bytes of keys published as examples: the HS256 key of RFC 7515 appendix A.1. */
const PUBLISHED_KEYS = ['AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow'].map((k) => Buffer.from(k, 'base64url'));

/**
 * True when `text` encodes the bytes of a published example key, in any spelling a key may
 * have (base64, base64url, hex in either case): the bytes are public whatever their encoding.
 */
export function isPublishedKey(text: string): boolean {
  const decoded = decodeKey(text);
  return decoded !== undefined && PUBLISHED_KEYS.some((k) => k.equals(decoded.bytes));
}

/** Steps between neighbours of at most one (repeats and runs like `abcd` or `0102...`). */
function smallSteps(values: number[]): number {
  let n = 0;
  for (let i = 1; i < values.length; i++) if (Math.abs(values[i]! - values[i - 1]!) <= 1) n++;
  return n;
}

/**
 * Why `text` is not plausibly random key material, or undefined when it is. The bounds
 * refuse a freshly generated random key with a chance below one in a billion each: 32
 * random bytes hold about 30 distinct values (at least 60% of the expected count is
 * required), about 0.4 neighbour steps of at most one (more than a quarter is refused),
 * and their base64 text has both letter cases.
 */
export function keyWeakness(text: string): string | undefined {
  const decoded = decodeKey(text);
  if (decoded === undefined) return `must be random bytes encoded as base64, base64url or hex; ${KEY_ADVICE}`;
  const { bytes, alphabet } = decoded;
  if (bytes.length < MIN_KEY_BYTES) return `must encode at least ${MIN_KEY_BYTES} random bytes (got ${bytes.length}); ${KEY_ADVICE}`;
  const expectedDistinct = 256 * (1 - (255 / 256) ** bytes.length);
  const patterned =
    new Set(bytes).size < 0.6 * expectedDistinct ||
    smallSteps([...bytes]) > (bytes.length - 1) / 4 ||
    (alphabet !== undefined &&
      (!/[A-Z]/.test(text) || !/[a-z]/.test(text) || smallSteps([...text.replace(/=+$/, '')].map((c) => alphabet.indexOf(c))) > (text.length - 1) / 4));
  if (patterned) return `does not look random (repeats, runs or a single letter case); ${KEY_ADVICE}`;
  return undefined;
}
