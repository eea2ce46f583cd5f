import { jsonSchemas } from './json-schema.js';
import { repliesTo } from './reply-schemas.js';

/** `validate_session` -> `ValidateSession`: component names that client generators turn into type names. */
const pascal = (type: string) => type.replace(/(^|_)([a-z])/g, (_m, _u: string, c: string) => c.toUpperCase());

/** Types `POST /v1/rpc` refuses (error 1001): subscriptions need a connection. */
const CONNECTION_ONLY = new Set(['subscribe_session', 'unsubscribe_session']);

const json = (schema: unknown, description: string) => ({
  description,
  headers: { 'Cache-Control': { schema: { type: 'string', const: 'no-store' } } },
  content: { 'application/json': { schema } },
});

/**
 * The OpenAPI 3.1 document of the HTTP transport, generated from the TypeBox schemas of
 * every request and reply (OpenAPI 3.1 takes JSON Schema 2020-12 as it is), so that other
 * languages generate clients from it. `GET /openapi.json` serves it; `auth-gateway openapi`
 * prints it.
 */
export function openApiDocument(): Record<string, unknown> {
  const { requests, replies } = jsonSchemas();
  const schemas: Record<string, unknown> = {};
  const requestRefs: { $ref: string }[] = [];
  const requestMapping: Record<string, string> = {};
  for (const [type, schema] of Object.entries(requests)) {
    if (CONNECTION_ONLY.has(type)) continue;
    const s = schema as { required?: string[]; description?: string };
    const name = `${pascal(type)}Request`;
    // msg_id is optional over HTTP (read as 0); the reply echoes it as in_reply_to.
    schemas[name] = {
      ...s,
      required: (s.required ?? []).filter((f) => f !== 'msg_id'),
      description: `Answered with ${repliesTo[type as keyof typeof repliesTo].join(' or ')} (or error).`,
    };
    requestRefs.push({ $ref: `#/components/schemas/${name}` });
    requestMapping[type] = `#/components/schemas/${name}`;
  }
  const replyRefs: { $ref: string }[] = [];
  const replyMapping: Record<string, string> = {};
  for (const [type, schema] of Object.entries(replies)) {
    const name = `${pascal(type)}Reply`;
    schemas[name] = schema;
    if (type === 'error') continue;
    replyRefs.push({ $ref: `#/components/schemas/${name}` });
    replyMapping[type] = `#/components/schemas/${name}`;
  }
  const error = { $ref: '#/components/schemas/ErrorReply' };
  return {
    openapi: '3.1.0',
    info: {
      title: 'auth-gateway HTTP API',
      version: '2',
      description: 'One protocol body in, its reply body out, through the same pipeline as the WebSocket and stdio transports (docs/protocol.md).',
    },
    components: {
      securitySchemes: { serviceKey: { type: 'http', scheme: 'bearer', description: 'GATEWAY_SERVICE_KEY' } },
      schemas,
    },
    paths: {
      '/v1/rpc': {
        post: {
          operationId: 'rpc',
          summary: 'Serve one protocol request',
          security: [{ serviceKey: [] }],
          requestBody: {
            required: true,
            content: { 'application/json': { schema: { oneOf: requestRefs, discriminator: { propertyName: 'type', mapping: requestMapping } } } },
          },
          responses: {
            '200': json(
              { oneOf: replyRefs, discriminator: { propertyName: 'type', mapping: replyMapping } },
              'The typed reply (session_invalid and token_invalid included)',
            ),
            '400': json(error, 'Error 12: malformed body, missing or mistyped field'),
            '401': json(error, 'Missing or wrong service key'),
            '403': json(error, 'Error 1001: not allowed here (subscribe_session, unsubscribe_session)'),
            '404': json(error, 'Error 10: unknown message type'),
            '408': json(error, 'The body did not arrive in time'),
            '413': json(error, 'The body is over GATEWAY_MAX_MESSAGE_BYTES'),
            '415': json(error, 'Content-Type is not application/json'),
            '429': json(error, 'Error 1002: rate limited'),
            '500': json(error, 'Error 13: internal error'),
            '503': json(error, 'Error 11: the store is unavailable'),
          },
        },
      },
      '/openapi.json': {
        get: {
          operationId: 'openapi',
          summary: 'This document (no service key needed)',
          security: [],
          responses: { '200': { description: 'The OpenAPI document', content: { 'application/json': { schema: { type: 'object' } } } } },
        },
      },
    },
  };
}
