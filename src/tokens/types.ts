import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/types.js';
import type { Ed25519Key } from './ed25519-keys.js';

/** Signing algorithms the gateway can be configured with (RFC 8725 section 3.1: an allow-list). */
export type SigningAlg = 'HS256' | 'EdDSA';

export interface TokenOptions {
  store: Store;
  clock: Clock;
  log: Logger;
  logRef: (value: string) => string;
  /** HS256 keys; the first signs (when `alg` is HS256), all verify. A `kid` goes into the header when set. */
  keys: { kid?: string; secret: Buffer }[];
  /** Algorithm of the access tokens this node signs; default HS256. */
  alg?: SigningAlg;
  /** Ed25519 keys (alg EdDSA): the first signs, all verify and are published by `jwks()`. */
  ed25519Keys?: Ed25519Key[];
  /**
   * When the session with this store hash ends (ms, the idle timeout included) while it is
   * live now, else undefined. Tokens bound to a session are refused once it is not live, even
   * when no end event was seen.
   */
  sessionEnd?: (sessionHash: string) => Promise<number | undefined>;
  accessTtl: number;
  refreshTtl: number;
  /** Seconds of leeway for `iat` in the future (clock skew between issuers). */
  clockTolerance: number;
  issuer?: string;
  audience?: string;
}

export interface TokenPair {
  access_token: string;
  expires_in: number;
  refresh_token: string;
  refresh_expires_in: number;
}

export type Verification = { valid: true; payload: Record<string, unknown> } | { valid: false; error: string };
