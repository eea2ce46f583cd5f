import type { IncomingMessage } from 'node:http';
import { GatewayError } from '../../errors.js';
import type { Logger, Requester } from '../../log.js';
import { introspect, revoke, type TokenRequest } from '../../pipeline/oauth.js';
import type { PipelineServices } from '../../pipeline/services.js';
import type { ApiFront, HeadCheckedRoute as Route, RouteSpec } from './api-front.js';
import { STATUS_OF_CODE } from './rpc.js';

/**
 * An OAuth error answer (RFC 6749 section 5.2): a code from its registry and a safe text; a 400
 * is exactly `{"error": "invalid_request"}`, whatever made it (docs/protocol.md), so that no
 * 400 of these routes tells one refused form from another.
 */
export function oauthError(status: number, text: string): { error: string; error_description?: string } {
  if (status === 400) return { error: 'invalid_request' };
  const error = status === 401 ? 'invalid_client' : status === 429 || status >= 500 ? 'temporarily_unavailable' : 'invalid_request';
  return { error, error_description: text };
}

/** The requester of one OAuth request: its lines carry the route, the caller's kind and its address; the logger is made on first use. */
class RouteRequester implements Requester {
  #log: Logger | undefined;
  constructor(
    readonly parent: Logger,
    readonly fields: Record<string, string>,
  ) {}
  get log(): Logger {
    return (this.#log ??= this.parent.child(this.fields));
  }
}

/** Both routes take a form from a service or from an introspection key (resource servers). */
const SPEC: RouteSpec = {
  callers: new Set(['service', 'introspection']),
  mediaType: 'application/x-www-form-urlencoded',
  refusal: oauthError,
};

/**
 * The parameters of RFC 7662 section 2.1 and RFC 7009 section 2.1, or undefined when they are
 * unusable: no token, an empty one, any parameter sent twice (RFC 6749 section 3.2: request
 * parameters MUST NOT be included more than once, whichever they are), or a token in the URL
 * (which every access log on the way would keep).
 */
function parameters(req: IncomingMessage, text: string): { token: string; hint?: string } | undefined {
  if (new URL(req.url ?? '/', 'http://gateway.invalid').searchParams.has('token')) return undefined;
  const form = new URLSearchParams(text);
  const names = new Set<string>();
  for (const name of form.keys()) {
    if (names.has(name)) return undefined;
    names.add(name);
  }
  const token = form.get('token');
  if (token === null || token === '') return undefined;
  const hint = form.get('token_type_hint');
  return hint === null ? { token } : { token, hint };
}

/**
 * `POST /oauth2/introspect` (RFC 7662) and `POST /oauth2/revoke` (RFC 7009): the front's
 * checks, the form, then the pipeline's introspect/revoke (src/pipeline/oauth.ts). A store
 * that cannot answer is 503: nothing is said about the token.
 */
export function createOAuthRoutes(o: { gateway: PipelineServices; front: ApiFront }): { introspect: Route; revoke: Route } {
  const { gateway, front } = o;
  const route = (path: string, work: (p: TokenRequest) => Promise<unknown>): Route => {
    const serve: Route = (req, res) =>
      front.serve(req, res, SPEC, async (admitted) => {
        const p = parameters(req, admitted.text);
        // Exactly {"error": "invalid_request"}, as docs/protocol.md (HTTP) says.
        if (p === undefined) return front.answer(res, 400, { error: 'invalid_request' });
        // One traceparent header, else none (parentContext checks its form).
        const traceparent = typeof req.headers.traceparent === 'string' ? req.headers.traceparent : undefined;
        const by = new RouteRequester(gateway.log, { transport: 'http', route: path, role: admitted.caller ?? 'service', remote: admitted.remote });
        let body: unknown;
        try {
          body = await work(traceparent === undefined ? { ...p, by } : { ...p, traceparent, by });
        } catch (err) {
          // The pipeline answers with GatewayErrors only (failureOf); their texts are safe.
          const e = err instanceof GatewayError ? err : new GatewayError('INTERNAL', 'Internal error', { cause: err });
          const status = STATUS_OF_CODE[e.wireCode] ?? 500;
          if (status === 503) res.setHeader('Retry-After', '1');
          return front.answer(res, status, oauthError(status, e.message));
        }
        front.answer(res, 200, body);
      });
    serve.refuseHead = (req, res) => front.refuseHead(req, res, SPEC);
    return serve;
  };
  return {
    introspect: route('/oauth2/introspect', (p) => introspect(gateway, p)),
    // RFC 7009 section 2.2: 200 with no body, whether or not the token was one to revoke.
    revoke: route('/oauth2/revoke', async (p) => {
      await revoke(gateway, p);
      return undefined;
    }),
  };
}
