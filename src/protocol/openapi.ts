import { jsonSchemas } from './json-schema.js';
import { repliesTo } from './reply-schemas.js';

/** `validate_session` -> `ValidateSession`: component names that client generators turn into type names. */
const pascal = (type: string) => type.replace(/(^|_)([a-z])/g, (_m, _u: string, c: string) => c.toUpperCase());

/** Types `POST /v1/rpc` refuses (error 1001): subscriptions need a connection. */
const CONNECTION_ONLY = new Set(['subscribe_session', 'unsubscribe_session']);

const NO_STORE = { 'Cache-Control': { schema: { type: 'string', const: 'no-store' } } };

const json = (schema: unknown, description: string, headers: Record<string, unknown> = {}) => ({
  description,
  headers: { ...NO_STORE, ...headers },
  content: { 'application/json': { schema } },
});

/** `Retry-After` (RFC 9110 section 10.2.3) on the answers `when` says. */
const retryAfter = (when: string) => ({ 'Retry-After': { description: when, schema: { type: 'integer', minimum: 1 } } });

/** `WWW-Authenticate` (RFC 6750 section 3) on a 401. */
const WWW_AUTHENTICATE = { 'WWW-Authenticate': { description: 'Bearer', schema: { type: 'string', const: 'Bearer' } } };

/** `Allow` (RFC 9110 section 10.2.1) on a 405. */
const ALLOW_POST = { Allow: { description: 'POST', schema: { type: 'string', const: 'POST' } } };

/** `Accept-Encoding` (RFC 9110 section 15.5.16) on the 415 of a content coding. */
const ACCEPT_IDENTITY = {
  'Accept-Encoding': { description: 'identity, on the 415 of a Content-Encoding other than identity', schema: { type: 'string', const: 'identity' } },
};

/** The 415 of a route taking `type`: a wrong media type, or a coded body. */
const unsupported = (type: string) =>
  `Content-Type is not ${type}; or a Content-Encoding other than identity (the body is read uncoded only): Accept-Encoding: identity, and the connection is closed`;

/** The failed-auth throttle's 429, on every route; or the port's, to a new connection past the address's cap. */
const THROTTLE_RETRY = retryAfter('60 (failed authentications) or 1 (connections of the address)');

/** What the port answers on every path before a route reads the request (docs/protocol.md, HTTP). */
const HEAD_LATE = 'or the head did not: {"error": "The request head did not arrive in time"}, and the connection is closed';
const CONNECTION_CAP =
  'or a new connection of an address at GATEWAY_MAX_CONNECTIONS_PER_ADDRESS with none of them idle: {"error": ...} (Retry-After: 1), and the connection is closed';

const FORM = 'application/x-www-form-urlencoded';

/** The form of RFC 7662 section 2.1 and RFC 7009 section 2.1. */
const TOKEN_FORM = {
  type: 'object',
  required: ['token'],
  properties: {
    token: { type: 'string', minLength: 1, description: 'An access token or a refresh token of this gateway' },
    token_type_hint: { type: 'string', description: 'access_token or refresh_token: which kind is looked for first (the other is looked for too)' },
  },
};

const oauthError = { $ref: '#/components/schemas/OAuthError' };

/** The body of what the port answers a request it cannot read, on every path (docs/protocol.md, "Requests that cannot be read"). */
const unreadable = { $ref: '#/components/schemas/UnreadableRequest' };

/** The answers of every route to a head the port refuses before any route reads it; the connection is then closed. */
const UNREADABLE = {
  '417': json(
    unreadable,
    'An Expect other than 100-continue: {"error": "Expectation failed: only Expect: 100-continue is supported"}; the connection is closed',
  ),
  '431': json(
    unreadable,
    'The request head, or the trailer of a chunked body, is too large: {"error": "Request header fields too large"}; the connection is closed',
  ),
};

/** What a route's 400 and 413 also answer when the body itself cannot be read (at once, the connection then closed). */
const UNREADABLE_BODY_400 =
  'a chunked body that cannot be read or a Transfer-Encoding not ending in chunked: {"error": "Bad request: not a valid HTTP/1.1 request"}, and the connection is closed';
const UNREADABLE_BODY_413 = 'chunk extensions too large: {"error": "Chunk extensions too large"}, and the connection is closed';

/** The answers both OAuth routes share (RFC 6749 section 5.2 error bodies). */
const OAUTH_REFUSALS = {
  '400': json(
    oauthError,
    `No token, an empty or repeated parameter, the token in the URL, or a body that is not UTF-8: exactly {"error": "invalid_request"}; or ${UNREADABLE_BODY_400}`,
  ),
  '401': json(oauthError, 'Missing or wrong key: invalid_client', WWW_AUTHENTICATE),
  '405': json(oauthError, 'Another method than POST', ALLOW_POST),
  '408': json(oauthError, `The body did not arrive in time; ${HEAD_LATE}`),
  '413': json(oauthError, `The body is over GATEWAY_MAX_MESSAGE_BYTES; or ${UNREADABLE_BODY_413}`),
  '415': json(oauthError, unsupported(FORM), ACCEPT_IDENTITY),
  '429': json(oauthError, `Too many failed authentications from this address (GATEWAY_FAILED_AUTH_LIMIT); ${CONNECTION_CAP}`, THROTTLE_RETRY),
  '500': json(oauthError, 'Internal error'),
  '503': json(oauthError, 'The store is unavailable (nothing is said about the token), or the server is shutting down', retryAfter('1')),
  ...UNREADABLE,
};

/** RFC 7662 section 2.2 answers: inactive says nothing more; active carries the claims. */
const INTROSPECTION = {
  oneOf: [
    { type: 'object', required: ['active'], properties: { active: { const: false } }, additionalProperties: false },
    {
      type: 'object',
      required: ['active', 'token_type', 'exp', 'iat', 'jti'],
      properties: {
        active: { const: true },
        token_type: { const: 'access_token' },
        exp: { type: 'integer' },
        iat: { type: 'integer' },
        jti: { type: 'string' },
        sub: { type: 'string' },
      },
      description: 'An access token verify_token accepts, with every claim of its payload',
    },
    {
      type: 'object',
      required: ['active', 'token_type', 'exp'],
      properties: { active: { const: true }, token_type: { const: 'refresh_token' }, exp: { type: 'integer' }, sub: { type: 'string' } },
      additionalProperties: false,
      description: 'A refresh token refresh_token would accept now',
    },
  ],
};

/** An /oauth2 route: a form from either key, `ok` its 200 answer. */
const oauthRoute = (operationId: string, summary: string, ok: unknown) => ({
  post: {
    operationId,
    summary,
    security: [{ serviceKey: [] }, { introspectionKey: [] }],
    requestBody: { required: true, content: { [FORM]: { schema: TOKEN_FORM } } },
    responses: { '200': ok, ...OAUTH_REFUSALS },
  },
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
      description:
        'One protocol body in, its reply body out, through the same pipeline as the WebSocket and stdio transports (docs/protocol.md); and OAuth token introspection (RFC 7662) and revocation (RFC 7009).',
    },
    components: {
      securitySchemes: {
        serviceKey: { type: 'http', scheme: 'bearer', description: 'GATEWAY_SERVICE_KEY' },
        introspectionKey: { type: 'http', scheme: 'bearer', description: 'One of GATEWAY_INTROSPECTION_KEYS: /oauth2/introspect and /oauth2/revoke only' },
      },
      schemas: {
        ...schemas,
        OAuthError: {
          type: 'object',
          required: ['error'],
          properties: { error: { type: 'string' }, error_description: { type: 'string' } },
        },
        UnreadableRequest: {
          type: 'object',
          required: ['error'],
          properties: { error: { type: 'string' } },
          additionalProperties: false,
          description: 'A request the port could not read or would not take, answered before any route sees it',
        },
      },
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
            '400': json(
              { oneOf: [error, unreadable] },
              `Error 12: malformed body, missing or mistyped field; or a request that is not valid HTTP/1.1 (two Content-Length, bytes that are not HTTP): {"error": "Bad request: not a valid HTTP/1.1 request"}, and the connection is closed; or ${UNREADABLE_BODY_400}`,
            ),
            '401': json(error, 'Missing or wrong service key', WWW_AUTHENTICATE),
            '405': json(error, 'Another method than POST', ALLOW_POST),
            '403': json(error, 'Error 1001: not allowed here (subscribe_session, unsubscribe_session), or an introspection key'),
            '404': json(error, 'Error 10: unknown message type'),
            '408': json(
              { oneOf: [error, unreadable] },
              'The body did not arrive in time; or the head did not: {"error": "The request head did not arrive in time"}',
            ),
            '413': json({ oneOf: [error, unreadable] }, `The body is over GATEWAY_MAX_MESSAGE_BYTES; or ${UNREADABLE_BODY_413}`),
            '415': json(error, unsupported('application/json'), ACCEPT_IDENTITY),
            '429': json(
              { oneOf: [error, unreadable] },
              'Error 1002: rate limited; or the address used GATEWAY_FAILED_AUTH_LIMIT (Retry-After: 60); or a new connection of an address at GATEWAY_MAX_CONNECTIONS_PER_ADDRESS with none of them idle: {"error": ...} (Retry-After: 1), and the connection is closed',
              retryAfter('60 (failed authentications) or 1 (connections of the address)'),
            ),
            '500': json(error, 'Error 13: internal error'),
            '503': json(error, 'Error 11: the store is unavailable, or the server is shutting down', retryAfter('1: the server is shutting down')),
            ...UNREADABLE,
          },
        },
      },
      '/oauth2/introspect': oauthRoute(
        'introspect',
        'Token introspection (RFC 7662); read only',
        json(INTROSPECTION, 'Whether the token is active, and if so its type and claims'),
      ),
      '/oauth2/revoke': oauthRoute('revoke', 'Token revocation (RFC 7009): an access token, or a refresh token with its whole family', {
        description: 'Empty: revoked, or not a token of this gateway',
        headers: { 'Cache-Control': { schema: { type: 'string', const: 'no-store' } } },
      }),
      '/oidc/backchannel-logout': {
        post: {
          operationId: 'backchannelLogout',
          summary: "OpenID Connect Back-Channel Logout 1.0: the identity provider's logout token ends the sessions of that login",
          description:
            'Served when GATEWAY_OIDC_ISSUER, GATEWAY_OIDC_AUDIENCE and GATEWAY_OIDC_JWKS are set (404 otherwise); the signature is the authentication.',
          security: [],
          requestBody: {
            required: true,
            content: {
              [FORM]: {
                schema: {
                  type: 'object',
                  required: ['logout_token'],
                  properties: { logout_token: { type: 'string', description: 'A JWT signed by the IdP' } },
                },
              },
            },
          },
          responses: {
            '200': { description: 'Valid: the sessions of that login ended (empty body)', headers: NO_STORE },
            '400': json(
              oauthError,
              `The token is invalid, replayed or missing, or the body is not UTF-8: exactly {"error": "invalid_request"}; nothing ended; or ${UNREADABLE_BODY_400}`,
            ),
            '404': { description: 'Back-channel logout is not configured' },
            '405': json(oauthError, 'Another method than POST', ALLOW_POST),
            '408': json(oauthError, `The body did not arrive in time; ${HEAD_LATE}`),
            '413': json(oauthError, `The body is over GATEWAY_MAX_MESSAGE_BYTES; or ${UNREADABLE_BODY_413}`),
            '415': json(oauthError, unsupported(FORM), ACCEPT_IDENTITY),
            '429': json(
              oauthError,
              `The address sent GATEWAY_FAILED_AUTH_LIMIT refused tokens within the last minute (or used it with wrong keys on the other routes), or more than four times the limit wait their turn: the token is not read; ${CONNECTION_CAP}`,
              THROTTLE_RETRY,
            ),
            '503': json(
              oauthError,
              "The store or the IdP's JWK Set could not answer, or the server is shutting down (temporarily_unavailable); nothing ended silently",
              retryAfter('1 (the store, a drain) or 5 (the JWK Set)'),
            ),
            ...UNREADABLE,
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
