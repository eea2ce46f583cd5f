/** Why a session operation of the middleware could not be done: `switch (err.code)`. */
export type SessionErrorCode =
  /** The gateway link is down, or the gateway did not answer in time: nothing can be checked (answer 503). */
  | 'UNAVAILABLE'
  /** The request carries no live session (regenerate needs one). */
  | 'NO_SESSION';

/** The one error type of `auth-gateway/middleware`. Its message never names a session id. */
export class GatewaySessionError extends Error {
  override name = 'GatewaySessionError';
  readonly code: SessionErrorCode;

  constructor(code: SessionErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** The gateway could not be asked: fail closed. */
export function unavailable(cause?: unknown): GatewaySessionError {
  return new GatewaySessionError('UNAVAILABLE', 'The session service is unavailable', cause === undefined ? undefined : { cause });
}
