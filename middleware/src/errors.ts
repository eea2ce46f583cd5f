/** Why a session operation of the middleware could not be done: `switch (err.code)`. */
export type SessionErrorCode =
  /**
   * The gateway link is down (nothing was asked), or the gateway did not confirm what was
   * asked (no answer in time, the link closed, a store outage: it may have been carried out,
   * or may still be; the message says what that leaves). Answer 503.
   */
  | 'UNAVAILABLE'
  /** The request carries no live session (regenerate needs one). */
  | 'NO_SESSION'
  /**
   * The gateway refused what was asked as malformed or not allowed (error 10, 12 or 1001: an
   * empty or too long `user_id`, a `ttl` out of range, `data` it does not take), or refused the
   * service key (`ready()`). Asking again gives the same answer: a fault of the caller (answer
   * 400 or 500) or of its configuration, not an outage.
   */
  | 'REFUSED';

/** The one error type of `auth-gateway/middleware`. Its message never names a session id. */
export class GatewaySessionError extends Error {
  override name = 'GatewaySessionError';
  readonly code: SessionErrorCode;

  constructor(code: SessionErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** The gateway answered that what was asked is malformed or not allowed; the message carries its text (never an id). */
export function refused(text: string, cause: unknown): GatewaySessionError {
  return new GatewaySessionError('REFUSED', `The gateway refused the request: ${text}`, { cause });
}

/** The gateway refused the connection's service key (HTTP 401 or 403 to the upgrade). The message never shows the key. */
export function keyRefused(status: number): GatewaySessionError {
  return new GatewaySessionError(
    'REFUSED',
    `The gateway refused the service key (HTTP ${status} to the WebSocket upgrade): the serviceKey option must be the gateway's GATEWAY_SERVICE_KEY`,
  );
}

/**
 * A request was sent and not confirmed: no answer in time, the link closed first, or an error
 * such as 11 (store unavailable) that does not say nothing was done. The gateway may have
 * carried it out, or may still: `outcome` says what that leaves.
 */
export function unconfirmed(outcome: string, cause: unknown): GatewaySessionError {
  return new GatewaySessionError('UNAVAILABLE', `The session service did not confirm the request: ${outcome}`, { cause });
}

/** The gateway could not be asked: fail closed. */
export function unavailable(cause?: unknown): GatewaySessionError {
  return new GatewaySessionError('UNAVAILABLE', 'The session service is unavailable', cause === undefined ? undefined : { cause });
}

/** ready({ timeoutMs }) that passed before the link opened (UNAVAILABLE; the link is still retried). */
export function notReady(cause: Error): GatewaySessionError {
  return new GatewaySessionError('UNAVAILABLE', `The session service is unavailable: ${cause.message}`, { cause });
}

/** ready() after close(): a closed GatewaySessions never reconnects (UNAVAILABLE, as its middleware answers 503). */
export function closedError(): GatewaySessionError {
  return new GatewaySessionError('UNAVAILABLE', 'The session service was closed: close() is final; create a new GatewaySessions to connect again');
}
