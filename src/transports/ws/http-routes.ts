import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Gateway } from '../../gateway.js';
import type { Logger } from '../../log.js';
import type { Metrics } from '../../metrics.js';
import { devLogin, type DevLoginOptions } from './dev-login.js';
import { BASE_HEADERS, badTarget, closeIfBody, pathForLog, send, sendJson, targetOf } from '../http/http-util.js';
import type { StaticFile } from './static-files.js';

export interface HttpContext {
  gateway: Gateway;
  metrics: Metrics;
  log: Logger;
  files: Map<string, StaticFile>;
  isAllowedOrigin: (origin: string) => boolean;
  isDraining: () => boolean;
  /** False when /metrics has a listen address of its own (GATEWAY_METRICS_ADDR). */
  serveMetrics: boolean;
  /** Set with `--dev` only: enables `/autosession`. */
  devLogin?: Pick<DevLoginOptions, 'cookieName' | 'isHttps' | 'defaultTtl'>;
  /** Routes of other transports on this port, by path (the entry point's: `/v1/rpc`, `/openapi.json`). */
  routes?: ReadonlyMap<string, RouteHandler>;
}

/** A route handed in by the entry point; it answers every method itself. */
export type RouteHandler = ((req: IncomingMessage, res: ServerResponse) => Promise<void> | void) & {
  /** For `Expect: 100-continue`: answers (true) a request its head alone refuses, before 100 Continue invites the body. */
  refuseHead?: (req: IncomingMessage, res: ServerResponse) => boolean;
};

/** The demo page loads only its own scripts and styles, and talks only to its own origin. */
const PAGE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const TEXT = 'text/plain; charset=utf-8';

/**
 * The HTTP side of the gateway's port: probes, metrics, the demo page and its modules, and
 * (dev only) the demo login. Everything else is 404.
 */
export function createHttpHandler(ctx: HttpContext): RequestListener {
  /** The GET (and HEAD) routes besides the static files; /metrics only when it is on this port. */
  const gets = new Map<string, (res: ServerResponse, head: boolean) => Promise<void> | void>([
    ['/healthz', (res, head) => send(res, 200, TEXT, 'ok\n', head)],
    [
      '/readyz',
      (res, head) => {
        if (ctx.isDraining()) return send(res, 503, TEXT, 'draining\n', head);
        if (!ctx.gateway.store.isReady()) return send(res, 503, TEXT, 'store unavailable\n', head);
        return send(res, 200, TEXT, 'ready\n', head);
      },
    ],
    // Public keys of EdDSA access tokens (RFC 7517); empty with HS256, whose secret is never published.
    ['/.well-known/jwks.json', (res, head) => send(res, 200, 'application/jwk-set+json', JSON.stringify(ctx.gateway.tokens.jwks()), head)],
  ]);
  if (ctx.serveMetrics) gets.set('/metrics', async (res, head) => send(res, 200, ctx.metrics.contentType, await ctx.metrics.text(), head));
  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = targetOf(req);
    if (url === undefined) return badTarget(res);
    const path = url.pathname;
    const head = req.method === 'HEAD';
    const handOff = ctx.routes?.get(path);
    if (handOff !== undefined) return handOff(req, res);
    // The routes below read no body but the dev login's (a few KB at most).
    if (path !== '/autosession') closeIfBody(req, res);
    if (path === '/autosession') {
      if (ctx.devLogin === undefined) return sendJson(res, 404, { error: 'Not found' });
      return devLogin(req, res, url, { gateway: ctx.gateway, isAllowedOrigin: ctx.isAllowedOrigin, ...ctx.devLogin });
    }
    // A path served here is 404 whatever the method: 405 (and its Allow) says the resource exists
    // and takes other methods (RFC 9110 section 15.5.6), which would pass a mistyped API path for
    // a wrong method.
    const get = gets.get(path);
    const file = ctx.files.get(path);
    if (get === undefined && file === undefined) return send(res, 404, TEXT, path === '/' ? 'demo page not built: run `npm run build`\n' : 'not found\n', head);
    if (req.method !== 'GET' && !head) {
      res.setHeader('Allow', 'GET, HEAD');
      return send(res, 405, TEXT, 'method not allowed\n');
    }
    if (get !== undefined) return get(res, head);
    // Neither a route nor a file was answered 404 above.
    const { type, body } = file!;
    if (type.startsWith('text/html')) res.setHeader('Content-Security-Policy', PAGE_CSP);
    res.writeHead(200, { ...BASE_HEADERS, 'Content-Type': type, 'Content-Length': body.length });
    res.end(head ? undefined : body);
  };
  return (req, res) => {
    route(req, res).catch((err: unknown) => {
      // A store failure in the dev login, say: a plain 503, the cause in the log only.
      ctx.log.error({ err, path: pathForLog(req) }, 'http request failed');
      if (!res.headersSent) sendJson(res, 503, { error: 'Service unavailable' });
      else res.destroy();
    });
  };
}

/**
 * The `checkContinue` listener (`Expect: 100-continue`): a route that can refuse a request from
 * its head alone does so now, without 100 Continue (RFC 9110 section 10.1.1: the client does
 * not send a body that would be refused unread); otherwise 100 Continue, and `serve` handles
 * the request as any other.
 */
export function createContinueHandler(routes: ReadonlyMap<string, RouteHandler> | undefined, serve: RequestListener): RequestListener {
  return (req, res) => {
    const path = targetOf(req)?.pathname;
    if (path !== undefined && routes?.get(path)?.refuseHead?.(req, res) === true) return;
    res.writeContinue();
    serve(req, res);
  };
}

/** The listener of GATEWAY_METRICS_ADDR: /metrics and nothing else. */
export function createMetricsHandler(metrics: Metrics, log: Logger): RequestListener {
  return (req, res) => {
    const url = targetOf(req);
    if (url === undefined) return badTarget(res);
    closeIfBody(req, res);
    if (url.pathname !== '/metrics') return send(res, 404, TEXT, 'not found\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return send(res, 405, TEXT, 'method not allowed\n');
    }
    metrics.text().then(
      (text) => send(res, 200, metrics.contentType, text, req.method === 'HEAD'),
      (err: unknown) => {
        log.error({ err }, 'metrics failed');
        send(res, 500, TEXT, 'metrics failed\n');
      },
    );
  };
}
