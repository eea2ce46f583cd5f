/**
 * auth-gateway as a library: start the gateway inside a Node process, and the protocol's
 * schemas and codes. The client is `auth-gateway/client`.
 */
export { startGateway, type RunningGateway, type StartOptions } from './start.js';
export { ConfigError } from './errors.js';
export { CloseCodes, END_REASONS, ErrorCodes, type CloseCodeName, type EndReason, type ErrorCode, type ErrorCodeName } from './protocol/codes.js';
export { jsonSchemas } from './protocol/json-schema.js';
export { openApiDocument } from './protocol/openapi.js';
export { envelopeSchema, requestSchemas, type AnyRequest, type Envelope, type RequestOf, type RequestType } from './protocol/messages.js';
export { pushSchemas, type AnyPush, type PushOf, type PushType } from './protocol/push-schemas.js';
export { repliesTo, replySchemas, type AnyReply, type ErrorReply, type ReplyOf, type ReplyTo, type ReplyType } from './protocol/reply-schemas.js';
