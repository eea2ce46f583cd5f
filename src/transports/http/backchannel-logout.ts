import type { IncomingMessage, ServerResponse } from 'node:http';
import { redactUrl, type Config } from '../../config.js';
import { hashSecret } from '../../crypto.js';
import type { Gateway } from '../../gateway.js';
import { audit, type Logger } from '../../log.js';
import type { Metrics } from '../../metrics.js';
import { idpKeySet } from '../../oidc/key-set.js';
import { createLogoutTokenVerifier, LOGOUT_TOKEN_MAX_AGE_S, type LogoutCheck, type LogoutToken } from '../../oidc/logout-token.js';
import type { ApiFront, HeadCheckedRoute, RouteSpec } from './api-front.js';
import { sendJsonAndClose } from './http-util.js';
import { oauthError } from './oauth.js';

/** What became of one call, as a metric label (a closed set). */
export type BackchannelOutcome = 'ended' | 'refused' | 'replayed' | 'unavailable';

export interface BackchannelLogoutOptions {
  gateway: Gateway;
  log: Logger;
  /** The checks of every HTTP API route (drain, method, media type, body limits); no key here. */
  front: ApiFront;
  /** The logout token verifier (createLogoutTokenVerifier); without one the route answers 404. */
  verify?: (jwt: string) => Promise<LogoutCheck>;
  /** Seconds of leeway on `iat` (as given to the verifier): part of how long a `jti` is remembered. */
  clockTolerance: number;
  /** Told the outcome of every call that reached the token (metrics). */
  onOutcome?: (outcome: BackchannelOutcome) => void;
}

/** The answer to every refused token (Back-Channel Logout 1.0 §2.8; nothing of the token in it). */
const INVALID = { error: 'invalid_request' };

/** A form open to anyone: the IdP has no key of ours; its signature on the token is what counts. */
const SPEC: RouteSpec = { callers: 'anyone', mediaType: 'application/x-www-form-urlencoded', refusal: oauthError };

/** How often the release of a `jti` whose logout failed is tried again while the store refuses it. */
const RELEASE_RETRY_MS = 1000;

/** Store key of a used `jti`: hashed, so the store holds no token material. */
const jtiKey = (jti: string) => `bl:${hashSecret(jti)}`;

/**
 * `POST /oidc/backchannel-logout` (OpenID Connect Back-Channel Logout 1.0): the IdP posts a
 * form-encoded `logout_token`; a valid one ends every session of that IdP login (by `sid`,
 * else by `sub`) with reason `revoked`, pushed as every end is. No service key: the token's
 * signature by the IdP is the authentication. Each `jti` is accepted once across all nodes
 * (claimed in the store before anything ends). A refused token counts against the sender's
 * address in the failed-auth throttle: past GATEWAY_FAILED_AUTH_LIMIT, 429 until it clears.
 */
export function createBackchannelLogoutHandler(o: BackchannelLogoutOptions): HeadCheckedRoute {
  const { gateway, log, front, verify } = o;
  const outcome = (what: BackchannelOutcome, fields: Record<string, unknown>) => {
    o.onOutcome?.(what);
    // Refusals may come from anyone: sampled, one line per reason and interval.
    if (what === 'refused') {
      gateway.sampledLog.hit(`backchannel logout refused ${String(fields.reason)}`, () => audit(log, 'backchannel logout refused', fields), { audit: true });
    } else if (what === 'unavailable') {
      gateway.sampledLog.hit(`backchannel logout unavailable`, () =>
        log.warn({ event: 'backchannel logout unavailable', ...fields }, 'backchannel logout could not be served'),
      );
    } else {
      audit(log, `backchannel logout ${what}`, fields);
    }
  };
  const refs = (t: LogoutToken) => ({
    jti: gateway.logRef(t.jti),
    ...(t.sid !== undefined && { idp_sid: gateway.logRef(t.sid) }),
    ...(t.sub !== undefined && { idp_sub: gateway.logRef(t.sub) }),
  });
  const unavailable = (res: ServerResponse, retryAfter: string, text: string) => {
    res.setHeader('Retry-After', retryAfter);
    front.answer(res, 503, oauthError(503, text));
  };

  /** Deletes a claimed `jti`, again each second while the store refuses, for at most `forMs`. */
  const release = (key: string, forMs: number): void => {
    const until = gateway.clock.now() + forMs;
    const attempt = (): void => {
      gateway.store.delete(key).then(
        () => undefined,
        () => {
          if (gateway.clock.now() + RELEASE_RETRY_MS < until) gateway.clock.setTimer(attempt, RELEASE_RETRY_MS);
        },
      );
    };
    attempt();
  };

  /** The token's work, once it is read: verify, claim its jti, end the sessions. */
  const logout = async (req: IncomingMessage, res: ServerResponse, jwt: string): Promise<void> => {
    const check = await verify!(jwt);
    if (!check.ok) {
      if ('unavailable' in check) {
        outcome('unavailable', { reason: 'jwks', err: check.cause });
        return unavailable(res, '5', "The identity provider's keys could not be fetched");
      }
      outcome('refused', { reason: check.refused });
      // A key the set lacks is no guess at anything (refused before any signature is checked):
      // it is what an identity provider sends for a minute after it rotates its keys, and
      // counting it would lock that provider's address out of its own valid logouts.
      if (check.refused !== 'unknown_key') front.failed(req);
      return front.answer(res, 400, INVALID);
    }
    const token = check.token;
    const key = jtiKey(token.jti);
    // Remembered as long as a token with this iat can pass the age check, and a little more.
    const rememberMs = (token.iat + LOGOUT_TOKEN_MAX_AGE_S + o.clockTolerance + 1) * 1000 - gateway.clock.now();
    try {
      if (!(await gateway.store.claim(key, Math.max(1000, rememberMs)))) {
        outcome('replayed', refs(token));
        front.failed(req);
        return front.answer(res, 400, INVALID);
      }
      const count = await gateway.sessions.endByIdp(token.sid !== undefined ? { sid: token.sid } : { sub: token.sub! });
      outcome('ended', { ...refs(token), by: token.sid !== undefined ? 'sid' : 'sub', count });
      return front.answer(res, 200);
    } catch (err) {
      // Fail closed: 503, and the IdP may deliver the same token again, so its jti is released.
      // The claim may have been carried out even if it failed here (a store too slow to answer
      // in time), and the release may fail for the same reason: it is tried again until the
      // store takes it, or the token is too old to be accepted anyway.
      release(key, rememberMs);
      outcome('unavailable', { reason: 'store', ...refs(token), err });
      return unavailable(res, '1', 'The store is unavailable');
    }
  };

  const route: HeadCheckedRoute = async (req, res) => {
    if (verify === undefined) return sendJsonAndClose(res, 404, { error: 'Not found' }); // its body is never read
    await front.serve(req, res, SPEC, async (admitted) => {
      // A token in the URL is refused, alone or beside one in the body: access logs keep URLs.
      const inQuery = new URL(req.url ?? '/', 'http://gateway.invalid').searchParams.has('logout_token');
      const tokens = new URLSearchParams(admitted.text).getAll('logout_token');
      if (inQuery || tokens.length !== 1 || tokens[0] === '') {
        outcome('refused', { reason: inQuery ? 'token_in_query' : tokens.length > 1 ? 'duplicate_parameter' : 'missing_parameter' });
        front.failed(req);
        return front.answer(res, 400, INVALID);
      }
      await logout(req, res, tokens[0]!);
    });
  };
  route.refuseHead = (req, res) => {
    if (verify !== undefined) return front.refuseHead(req, res, SPEC);
    sendJsonAndClose(res, 404, { error: 'Not found' });
    return true;
  };
  return route;
}

/**
 * The route as the entry point mounts it: configured from `GATEWAY_OIDC_*` (404 when they are
 * unset), the IdP's key set opened now (a bad JWKS file stops the start with one line).
 */
export function backchannelLogoutRoute(config: Config, o: { gateway: Gateway; log: Logger; front: ApiFront; metrics?: Metrics }): HeadCheckedRoute {
  const oidc = config.oidc;
  if (oidc !== undefined && 'url' in oidc.jwks && /^http:/i.test(oidc.jwks.url))
    o.log.warn({ jwks: redactUrl(oidc.jwks.url) }, 'GATEWAY_OIDC_JWKS is fetched over plain http: whoever can alter that traffic can sign logout tokens');
  const verify =
    oidc === undefined
      ? undefined
      : createLogoutTokenVerifier({
          issuer: oidc.issuer,
          audience: oidc.audience,
          keys: idpKeySet(oidc.jwks, { now: () => o.gateway.clock.now(), log: o.log }),
          clock: o.gateway.clock,
          clockTolerance: config.clockTolerance,
        });
  return createBackchannelLogoutHandler({
    gateway: o.gateway,
    log: o.log,
    front: o.front,
    verify,
    clockTolerance: config.clockTolerance,
    onOutcome: o.metrics && ((outcome) => o.metrics!.backchannelLogouts.inc({ outcome })),
  });
}
