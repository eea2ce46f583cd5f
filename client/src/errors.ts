import { ErrorCodes, type ErrorCodeName } from '../../src/protocol/codes.js';

export { ErrorCodes, type ErrorCodeName };

const NAMES = new Map<number, ErrorCodeName>(Object.entries(ErrorCodes).map(([k, v]) => [v, k as ErrorCodeName]));

/** Base of the client's errors: `switch (err.kind)` to tell them apart. */
export class GatewayClientError extends Error {
  override name = 'GatewayClientError';
  readonly kind: 'request' | 'timeout' | 'connection';

  constructor(kind: GatewayClientError['kind'], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.kind = kind;
  }
}

/**
 * The gateway answered a request with a protocol error (not an auth outcome: those are
 * typed replies). `code` is the wire code, `codeName` its name.
 */
export class GatewayRequestError extends GatewayClientError {
  override name = 'GatewayRequestError';
  readonly code: number;
  readonly codeName: ErrorCodeName | 'UNKNOWN';
  readonly requestType: string;
  readonly text: string;

  constructor(requestType: string, code: number, text: string) {
    const codeName = NAMES.get(code) ?? 'UNKNOWN';
    super('request', `${requestType} failed: error ${code} (${codeName}): ${text}`);
    this.code = code;
    this.codeName = codeName;
    this.requestType = requestType;
    this.text = text;
  }
}

/** No reply came within the request's time limit. */
export class GatewayTimeoutError extends GatewayClientError {
  override name = 'GatewayTimeoutError';
  readonly requestType: string;

  constructor(requestType: string, ms: number) {
    super('timeout', `${requestType} got no reply within ${ms} ms`);
    this.requestType = requestType;
  }
}

/**
 * The connection closed before the reply came, or the client was closed. The request may
 * or may not have been served; it is not re-sent (a refresh token, say, is single use).
 */
export class GatewayConnectionError extends GatewayClientError {
  override name = 'GatewayConnectionError';

  constructor(message: string) {
    super('connection', message);
  }
}
