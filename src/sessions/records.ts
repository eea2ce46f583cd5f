/** A session as stored, under `s:<sha256(id)>`; short field names keep a million of them small. */
export interface SessionRecord {
  /** user id */
  u: string;
  /** created at, ms */
  c: number;
  /** absolute expiry, ms */
  e: number;
  /** last activity, ms (only when an idle timeout is configured) */
  s?: number;
  /** application data */
  d?: Record<string, unknown>;
  /** lifetime asked for at creation, seconds: what extend_session adds by default (absent: e - c) */
  t?: number;
  /** revision, raised by every extend and update, so that a racing write of a stale copy is seen and repaired */
  v?: number;
  /** SHA-256 of the identity provider's session id of the login (back-channel logout) */
  is?: string;
  /** SHA-256 of the identity provider's subject of the login */
  iu?: string;
}

export const sessionKey = (hash: string): string => `s:${hash}`;
export const userIndexKey = (userId: string): string => `u:${userId}`;
/** Sessions by the SHA-256 of the identity provider's session id, and of its subject (back-channel logout). */
export const idpSidIndexKey = (sidHash: string): string => `is:${sidHash}`;
export const idpSubIndexKey = (subHash: string): string => `iu:${subHash}`;

/** When a session ends on its own (ms), and why. */
export interface SessionEnd {
  at: number;
  reason: 'ttl' | 'idle';
}

/**
 * When the session ends, and why, given the idle timeout in ms (0: off). Only the session
 * service calls it; everyone else reads `end` and `endReason` of a `Validation`.
 */
export function endOf(r: SessionRecord, idleMs: number): SessionEnd {
  if (idleMs > 0 && r.s !== undefined && r.s + idleMs < r.e) return { at: r.s + idleMs, reason: 'idle' };
  return { at: r.e, reason: 'ttl' };
}

/** `expires_in`: whole seconds left, rounded up from the milliseconds left (docs/protocol.md). */
export const secondsLeft = (at: number, now: number): number => Math.max(0, Math.ceil((at - now) / 1000));

/** `expires_at`: unix seconds, floor. */
export const unixSeconds = (ms: number): number => Math.floor(ms / 1000);
