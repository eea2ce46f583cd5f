import type { IncomingMessage, ServerResponse } from 'node:http';
import { redactUrl, type Config } from '../../config.js';
import { hashSecret } from '../../crypto.js';
import type { Gateway } from '../../gateway.js';
import { audit, type Logger } from '../../log.js';
import type { Metrics } from '../../metrics.js';
import { idpKeySet } from '../../oidc/key-set.js';
import { createLogoutTokenVerifier, LOGOUT_TOKEN_MAX_AGE_S, type LogoutCheck, type LogoutToken } from '../../oidc/logout-token.js';
import { BASE_HEADERS, readLimited, sendJson, sendJsonAndClose } from './http-util.js';

/** What became of one call, as a metric label (a closed set). */
export type BackchannelOutcome = 'ended' | 'refused' | 'replayed' | 'unavailable';

export interface BackchannelLogoutOptions {
  gateway: Gateway;
  log: Logger;
  /** The logout token verifier (createLogoutTokenVerifier); without one the route answers 404. */
  verify?: (jwt: string) => Promise<LogoutCheck>;
  /** Seconds of leeway on `iat` (as given to the verifier): part of how long a `jti` is remembered. */
  clockTolerance: number;
  /** Largest body served; a larger one is answered 413 and not read further. */
  maxMessageBytes: number;
  /** A body not received in full within this many ms is answered 408. */
  bodyTimeoutMs: number;
  /** Told the outcome of every call that reached the token (metrics). */
  onOutcome?: (outcome: BackchannelOutcome) => void;
}

/** The answer to every refused call (Back-Channel Logout 1.0 §2.8; nothing of the token in it). */
const INVALID = { error: 'invalid_request' };
const UNAVAILABLE = { error: 'temporarily_unavailable' };

const isForm = (type: string | undefined) => type !== undefined && /^application\/x-www-form-urlencoded\s*(;|$)/i.test(type);

/** Store key of a used `jti`: hashed, so the store holds no token material. */
const jtiKey = (jti: string) => `bl:${hashSecret(jti)}`;

/** 200 with an empty body and Cache-Control: no-store (§2.8). */
function sendOk(res: ServerResponse): void {
  res.writeHead(200, { ...BASE_HEADERS, 'Content-Length': 0 });
  res.end();
}

/**
 * `POST /oidc/backchannel-logout` (OpenID Connect Back-Channel Logout 1.0): the IdP posts a
 * form-encoded `logout_token`; a valid one ends every session of that IdP login (by `sid`,
 * else by `sub`) with reason `revoked`, pushed as every end is. No service key: the token's
 * signature by the IdP is the authentication. Each `jti` is accepted once across all nodes
 * (claimed in the store before anything ends).
 */
export function createBackchannelLogoutHandler(o: BackchannelLogoutOptions): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const { gateway, log, verify } = o;
  const outcome = (what: BackchannelOutcome, fields: Record<string, unknown>) => {
    o.onOutcome?.(what);
    // Refusals may come from anyone: sampled, one line per reason and interval.
    if (what === 'refused') {
      gateway.sampledLog.hit(`backchannel logout refused ${String(fields.reason)}`, (suppressed) =>
        audit(log, 'backchannel logout refused', suppressed > 0 ? { ...fields, suppressed } : fields),
      );
    } else if (what === 'unavailable') {
      gateway.sampledLog.hit(`backchannel logout unavailable`, (suppressed) =>
        log.warn({ event: 'backchannel logout unavailable', ...fields, suppressed }, 'backchannel logout could not be served'),
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

  return async (req, res) => {
    if (verify === undefined) return sendJson(res, 404, { error: 'Not found' });
    if (req.method !== 'POST') {
      res.setHeader('Allow', 'POST');
      return sendJsonAndClose(res, 405, INVALID);
    }
    if (!isForm(req.headers['content-type'])) return sendJsonAndClose(res, 415, INVALID);
    const read = await readLimited(req, o.maxMessageBytes, o.bodyTimeoutMs);
    if ('refused' in read) {
      if (read.refused === 'too_large') return sendJsonAndClose(res, 413, INVALID);
      if (read.refused === 'timeout') return sendJsonAndClose(res, 408, INVALID);
      return void res.destroy();
    }
    const tokens = new URLSearchParams(read.text).getAll('logout_token');
    if (tokens.length !== 1 || tokens[0] === '') {
      outcome('refused', { reason: tokens.length > 1 ? 'duplicate_parameter' : 'missing_parameter' });
      return sendJson(res, 400, INVALID);
    }
    const check = await verify(tokens[0]!);
    if (!check.ok) {
      if ('unavailable' in check) {
        outcome('unavailable', { reason: 'jwks', err: check.cause });
        res.setHeader('Retry-After', '5');
        return sendJson(res, 503, UNAVAILABLE);
      }
      outcome('refused', { reason: check.refused });
      return sendJson(res, 400, INVALID);
    }
    const token = check.token;
    const key = jtiKey(token.jti);
    // Remembered as long as a token with this iat can pass the age check, and a little more.
    const rememberMs = (token.iat + LOGOUT_TOKEN_MAX_AGE_S + o.clockTolerance + 1) * 1000 - gateway.clock.now();
    let claimed = false;
    try {
      if (!(await gateway.store.claim(key, Math.max(1000, rememberMs)))) {
        outcome('replayed', refs(token));
        return sendJson(res, 400, INVALID);
      }
      claimed = true;
      const count = await gateway.sessions.endByIdp(token.sid !== undefined ? { sid: token.sid } : { sub: token.sub! });
      outcome('ended', { ...refs(token), by: token.sid !== undefined ? 'sid' : 'sub', count });
      return sendOk(res);
    } catch (err) {
      // Fail closed: 503, and the IdP may deliver the same token again, so its jti is released
      // (when the store lets us: otherwise a retry is refused as a replay, and logged as one).
      if (claimed) await gateway.store.delete(key).catch(() => undefined);
      outcome('unavailable', { reason: 'store', ...refs(token), err });
      res.setHeader('Retry-After', '1');
      return sendJson(res, 503, UNAVAILABLE);
    }
  };
}

/**
 * The route as the entry point mounts it: configured from `GATEWAY_OIDC_*` (404 when they are
 * unset), the IdP's key set opened now (a bad JWKS file stops the start with one line).
 */
export function backchannelLogoutRoute(
  config: Config,
  o: { gateway: Gateway; log: Logger; metrics?: Metrics; bodyTimeoutMs: number },
): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const oidc = config.oidc;
  if (oidc !== undefined && 'url' in oidc.jwks && /^http:/i.test(oidc.jwks.url))
    o.log.warn({ jwks: redactUrl(oidc.jwks.url) }, 'GATEWAY_OIDC_JWKS is fetched over plain http: whoever can alter that traffic can sign logout tokens');
  const verify =
    oidc === undefined
      ? undefined
      : createLogoutTokenVerifier({
          issuer: oidc.issuer,
          audience: oidc.audience,
          keys: idpKeySet(oidc.jwks),
          clock: o.gateway.clock,
          clockTolerance: config.clockTolerance,
        });
  return createBackchannelLogoutHandler({
    gateway: o.gateway,
    log: o.log,
    verify,
    clockTolerance: config.clockTolerance,
    maxMessageBytes: config.maxMessageBytes,
    bodyTimeoutMs: o.bodyTimeoutMs,
    onOutcome: o.metrics && ((outcome) => o.metrics!.backchannelLogouts.inc({ outcome })),
  });
}
