export { closeKind, GatewayClient } from './gateway-client.js';
export type {
  ClientEvents,
  CloseKind,
  GatewayClientOptions,
  ReconnectOptions,
  SessionExpiredEvent,
  SessionExpiringEvent,
  SessionExtendedEvent,
  SessionRegeneratedEvent,
  SessionUpdatedEvent,
  WebSocketConstructor,
  WebSocketLike,
} from './gateway-client.js';
export { CloseCodes } from '../../src/protocol/codes.js';
export { ErrorCodes, GatewayClientError, GatewayConnectionError, GatewayRequestError, GatewayTimeoutError } from './errors.js';
export type { ErrorCodeName } from './errors.js';
export type * from './messages.js';
export { TabSession } from './tab-session.js';
export type { TabEvents, TabSessionOptions } from './tab-session.js';
