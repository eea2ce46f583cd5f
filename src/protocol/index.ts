export { decode, decodeValue, oversized, type Decoded, type DecodedRequest, type DecodeFailure } from './decode.js';
export { requestSchemas, envelopeSchema, jsonSchemas, BROWSER_TYPES, type AnyRequest, type RequestOf, type RequestType, type Envelope, type EndReason } from './messages.js';
export { reply, errorBody, errorReply, encode, type Body } from './replies.js';
