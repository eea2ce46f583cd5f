/**
 * The protocol's constants: error codes, WebSocket close codes and session end reasons.
 * This module imports nothing, so the browser client loads it as it is (the gateway
 * serves it beside the client module) and the server and the client share one table.
 */

/** Wire codes of error replies (`{"type":"error","code":C}`), by name. */
export const ErrorCodes = {
  /** Unknown message type. */
  NOT_SUPPORTED: 10,
  /** The store cannot answer: nothing is valid until it can. */
  UNAVAILABLE: 11,
  /** Not JSON, not an envelope, a missing or mistyped field, a reserved claim, too large. */
  MALFORMED: 12,
  /** An unexpected failure inside the gateway; the node keeps serving. */
  INTERNAL: 13,
  /** Not allowed on this connection. */
  FORBIDDEN: 1001,
  /** Too many requests. */
  RATE_LIMITED: 1002,
} as const;

export type ErrorCodeName = keyof typeof ErrorCodes;
export type ErrorCode = (typeof ErrorCodes)[ErrorCodeName];

/** Codes the gateway closes WebSocket connections with. */
export const CloseCodes = {
  /** Service restart (drain): reconnect, to another node (RFC 6455 registry, 1012). */
  SERVICE_RESTART: 1012,
  /** Policy: the peer does not read what it is sent, or (browser) keeps sending what cannot be decoded. */
  POLICY: 1008,
  /** A frame beyond 16 times the message size limit. */
  MESSAGE_TOO_BIG: 1009,
  /** The bound session ended. */
  SESSION_ENDED: 4001,
  /** The bound session was regenerated: reconnect with the new cookie. */
  SESSION_REGENERATED: 4002,
} as const;

export type CloseCodeName = keyof typeof CloseCodes;

/** Why a session ended, as pushed in `session_expired`. */
export const END_REASONS = ['ttl', 'idle', 'destroyed', 'regenerated', 'revoked'] as const;

export type EndReason = (typeof END_REASONS)[number];
