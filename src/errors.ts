/**
 * Stable error codes of the gateway, each mapped to a wire code of the protocol (docs/protocol.md).
 * The client sees a safe text; the cause stays on the error for the logs.
 */
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

export type ErrorCode = keyof typeof ErrorCodes;

/** The one error type the core throws on purpose. */
export class GatewayError extends Error {
  override name = 'GatewayError';
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  /** The protocol's numeric code. */
  get wireCode(): number {
    return ErrorCodes[this.code];
  }

  /** Wraps a store failure: the client learns only that the store is unavailable. */
  static unavailable(cause: unknown): GatewayError {
    return cause instanceof GatewayError ? cause : new GatewayError('UNAVAILABLE', 'Store unavailable', { cause });
  }
}

/** A bad configuration value: the process stops with this one line. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}
