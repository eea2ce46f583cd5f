export { GatewayClient } from './gateway-client.js';
export type {
  ClientEvents, GatewayClientOptions, ReconnectOptions, SessionExpiredEvent, SessionExpiringEvent, WebSocketConstructor, WebSocketLike,
} from './gateway-client.js';
export { CloseCodes } from '../../src/protocol/codes.js';
export { ErrorCodes, GatewayClientError, GatewayConnectionError, GatewayRequestError, GatewayTimeoutError } from './errors.js';
export type { ErrorCodeName } from './errors.js';
export type * from './messages.js';
