import type { Requester } from '../log.js';
import { activeSpans } from '../tracing.js';
import { failureOf } from './failure.js';
import type { PipelineServices } from './services.js';

/** The kinds of token the gateway issues, as RFC 7662 and RFC 7009 name them. */
export type TokenKind = 'access_token' | 'refresh_token';

/**
 * An introspection answer (RFC 7662 section 2.2). An inactive token gets `{active: false}` and
 * nothing else: no reason, so that a caller cannot tell a revoked token from a forged one.
 */
export type Introspection = { active: false } | ({ active: true; token_type: TokenKind } & Record<string, unknown>);

/**
 * The kinds to look for, the hinted one first. RFC 7662 section 2.1: a hint only orders the
 * search; a token not found under it is looked for under the other kind too.
 */
function searchOrder(hint: string | undefined): TokenKind[] {
  return hint === 'refresh_token' ? ['refresh_token', 'access_token'] : ['access_token', 'refresh_token'];
}

/** A request of either route: the token, the hint, and the caller's W3C trace context. */
export interface TokenRequest {
  token: string;
  hint?: string;
  traceparent?: string;
  /** Who asked: the lines of the work carry its route, caller and address. */
  by?: Requester;
}

/**
 * Runs one request of `type` as the pipeline runs a message: timed and counted by outcome,
 * a span when tracing is on (in the caller's trace when `traceparent` says so), failures
 * handled by failureOf.
 */
function served<T>(g: PipelineServices, type: string, traceparent: string | undefined, work: () => Promise<T>, outcome: (result: T) => string): Promise<T> {
  const started = performance.now();
  const spans = activeSpans();
  const parent = spans?.parentContext(traceparent);
  const span = parent === undefined ? undefined : spans?.startMessageSpan(type, parent);
  const finish = (result: string) => {
    g.observer.message?.(type, result, (performance.now() - started) / 1000);
    if (span !== undefined) spans?.endMessageSpan(span, result);
  };
  const run = async () => {
    try {
      const result = await work();
      finish(outcome(result));
      return result;
    } catch (err) {
      const failure = failureOf(g, g.log, type, err);
      finish(`error_${failure.wireCode}`);
      throw failure;
    }
  };
  return spans === undefined || parent === undefined || span === undefined ? run() : spans.withSpan(parent, span, run);
}

/**
 * RFC 7662 introspection: an access token that verify_token accepts is active with its
 * claims; a refresh token is active while refresh_token would accept it (looked at, never
 * spent). Anything else is inactive. Throws GatewayError UNAVAILABLE when the store cannot
 * answer: never "active" on a guess, never "inactive" for a live token.
 */
export function introspect(g: PipelineServices, { token, hint, traceparent, by }: TokenRequest): Promise<Introspection> {
  return served(
    g,
    'oauth2_introspect',
    traceparent,
    async (): Promise<Introspection> => {
      for (const kind of searchOrder(hint)) {
        if (kind === 'access_token') {
          const v = await g.tokens.verify(token, by);
          // The fields of RFC 7662 first, and kept whatever claims the payload sets.
          if (v.valid) return Object.assign({ active: true, token_type: kind }, v.payload, { active: true, token_type: kind } as const);
        } else {
          const r = await g.tokens.inspectRefresh(token);
          if (r !== undefined) return { active: true, token_type: kind, ...r };
        }
      }
      return { active: false };
    },
    (answer) => (answer.active ? 'active' : 'inactive'),
  );
}

/**
 * RFC 7009 revocation, as revoke_token does it: an access token is denied until it expires, a
 * refresh token's whole family is revoked. A token the gateway did not issue changes nothing
 * (the caller is not told: section 2.2). Throws GatewayError UNAVAILABLE when the store cannot answer.
 */
export async function revoke(g: PipelineServices, { token, traceparent, by }: TokenRequest): Promise<void> {
  await served(
    g,
    'oauth2_revoke',
    traceparent,
    () => g.tokens.revoke(token, by),
    (r) => ('error' in r ? 'token_invalid' : 'token_revoked'),
  );
}
