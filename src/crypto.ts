import { createHash, createHmac, hash, randomBytes, timingSafeEqual } from 'node:crypto';

/** A fresh URL-safe id from the CSPRNG, `bytes` * 8 random bits (32 bytes: 256 bits). */
export function randomId(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

/**
 * SHA-256 of a secret value, base64url. Session ids and refresh tokens are stored
 * under this, so a dump of the store holds no usable credential. Ids carry at least
 * 128 random bits, so an unsalted fast hash is enough (no dictionary to try).
 */
export function hashSecret(value: string): string {
  // One-shot hash: no Hash object per call (this runs on every validate).
  return hash('sha256', value, 'base64url');
}

/** Compares two strings in time independent of where they differ. */
export function constantTimeEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb) && a.length === b.length;
}

/**
 * Salted, truncated reference for logs: lets one follow an id through the log
 * without the log holding the id or its store key.
 */
export function createLogRef(salt: string): (value: string) => string {
  return (value) => createHmac('sha256', salt).update(value).digest('base64url').slice(0, 16);
}
