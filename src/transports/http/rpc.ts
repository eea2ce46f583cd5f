import type { IncomingMessage, ServerResponse } from 'node:http';
import { constantTimeEqual } from '../../crypto.js';
import type { Gateway } from '../../gateway.js';
import type { Logger } from '../../log.js';
import { serveOne } from '../../pipeline/serve-one.js';
import { ErrorCodes } from '../../protocol/codes.js';
import { decodeBody, oversized, type Decoded } from '../../protocol/decode.js';
import { requestSchemas } from '../../protocol/messages.js';
import { errorBody } from '../../protocol/replies.js';
import { readLimited, sendJson, sendJsonAndClose } from './http-util.js';

export interface RpcOptions {
  gateway: Gateway;
  log: Logger;
  /** Bearer key of `/v1/rpc`; without one, every request is refused (401). */
  serviceKey?: string;
  /** Largest body served; a larger one is answered 413 and not read further. */
  maxMessageBytes: number;
  /** A body not received in full within this many ms is answered 408. */
  bodyTimeoutMs: number;
}

/** Subscriptions need a connection that outlives the request: refused here (1001). */
const RPC_TYPES: ReadonlySet<string> = new Set(Object.keys(requestSchemas).filter((t) => t !== 'subscribe_session' && t !== 'unsubscribe_session'));

/** The HTTP status of each protocol error code (docs/protocol.md, HTTP). */
export const STATUS_OF_CODE: Readonly<Record<number, number>> = {
  [ErrorCodes.NOT_SUPPORTED]: 404,
  [ErrorCodes.UNAVAILABLE]: 503,
  [ErrorCodes.MALFORMED]: 400,
  [ErrorCodes.INTERNAL]: 500,
  [ErrorCodes.FORBIDDEN]: 403,
  [ErrorCodes.RATE_LIMITED]: 429,
};

const SRC = 'http';

/** `Content-Type: application/json`, parameters (charset) allowed. */
const isJson = (type: string | undefined) => type !== undefined && /^application\/json\s*(;|$)/i.test(type);

/**
 * `POST /v1/rpc`: one protocol body in, its reply body out, through the pipeline like every
 * other transport (one connection per request, on the pump). Status 200 for every typed
 * reply; an error reply keeps its body under the status of its code.
 */
export interface RpcHandler {
  (req: IncomingMessage, res: ServerResponse): Promise<void>;
  /** Drain: new requests get 503 from now on; resolves once every request being served is answered. */
  drain(): Promise<void>;
}

export function createRpcHandler(o: RpcOptions): RpcHandler {
  let inFlight = 0;
  let draining = false;
  let idle: (() => void) | undefined;
  const serve = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (draining) {
      res.setHeader('Retry-After', '1');
      return sendJsonAndClose(res, 503, errorBody(ErrorCodes.UNAVAILABLE, 'Server shutting down'));
    }
    if (req.method !== 'POST') {
      res.setHeader('Allow', 'POST');
      return sendJsonAndClose(res, 405, errorBody(ErrorCodes.MALFORMED, 'Method not allowed: POST a protocol body'));
    }
    const m = /^Bearer[ \t]+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    if (o.serviceKey === undefined || m === null || !constantTimeEqual(m[1]!, o.serviceKey)) {
      res.setHeader('WWW-Authenticate', 'Bearer');
      return sendJsonAndClose(res, 401, errorBody(ErrorCodes.FORBIDDEN, 'Missing or wrong service key (Authorization: Bearer <GATEWAY_SERVICE_KEY>)'));
    }
    if (!isJson(req.headers['content-type'])) {
      return sendJsonAndClose(res, 415, errorBody(ErrorCodes.MALFORMED, 'Content-Type must be application/json'));
    }
    const declared = Number(req.headers['content-length']);
    const tooLarge = () => oversized(Number.isFinite(declared) ? declared : undefined, o.maxMessageBytes);
    const read = await readLimited(req, o.maxMessageBytes, o.bodyTimeoutMs);
    if ('refused' in read) {
      if (read.refused === 'too_large') return sendJsonAndClose(res, 413, errorBody(ErrorCodes.MALFORMED, tooLarge().text));
      if (read.refused === 'timeout')
        return sendJsonAndClose(res, 408, errorBody(ErrorCodes.MALFORMED, `The body did not arrive within ${o.bodyTimeoutMs} ms`));
      return void res.destroy();
    }
    const gateway = o.gateway;
    const d: Decoded = decodeBody(read.text, SRC, gateway.nodeId);
    // W3C Trace Context: the request's span joins the caller's trace (checked where it is used).
    if (d.ok && req.headers.traceparent !== undefined) d.traceparent = req.headers.traceparent;
    inFlight++;
    try {
      const reply = await serveOne(gateway.connect({ allowed: RPC_TYPES }), d);
      const body = reply.body;
      if (draining) res.setHeader('Connection', 'close');
      sendJson(res, body.type === 'error' ? (STATUS_OF_CODE[body.code] ?? 400) : 200, body);
    } finally {
      if (--inFlight === 0) idle?.();
    }
  };
  return Object.assign(serve, {
    drain(): Promise<void> {
      draining = true;
      if (inFlight === 0) return Promise.resolve();
      return new Promise<void>((resolve) => (idle = resolve));
    },
  });
}
