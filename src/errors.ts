import { ErrorCodes, type ErrorCodeName } from './protocol/codes.js';

/**
 * Stable error codes of the gateway, each mapped to a wire code of the protocol
 * (docs/protocol.md; the table is in protocol/codes.ts, shared with the client).
 * The client sees a safe text; the cause stays on the error for the logs.
 */
export { ErrorCodes };

export type ErrorCode = ErrorCodeName;

/** The one error type the core throws on purpose. */
export class GatewayError extends Error {
  override name = 'GatewayError';
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  /** The protocol's numeric code. */
  get wireCode(): (typeof ErrorCodes)[ErrorCode] {
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
