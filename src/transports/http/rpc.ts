import type { Gateway } from '../../gateway.js';
import { serveOne } from '../../pipeline/serve-one.js';
import { ErrorCodes, type ErrorCode } from '../../protocol/codes.js';
import { decodeBody, notUtf8Body, type Decoded } from '../../protocol/decode.js';
import { requestSchemas } from '../../protocol/messages.js';
import { errorBody } from '../../protocol/replies.js';
import type { ApiFront, HeadCheckedRoute, RouteSpec } from './api-front.js';

export interface RpcOptions {
  gateway: Gateway;
  /** Counts a body that did not decode (`gateway_messages_total{type="invalid"}`), as the other transports do. */
  undecodable?: (code: number) => void;
  /** The checks before the pipeline: drain, method, key, media type, size and time of the body. */
  front: ApiFront;
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

/** The protocol error code of a refusal before the pipeline, by status; any other status is 12. */
const CODE_OF_REFUSAL: Readonly<Record<number, ErrorCode>> = {
  401: ErrorCodes.FORBIDDEN,
  403: ErrorCodes.FORBIDDEN,
  429: ErrorCodes.RATE_LIMITED,
  503: ErrorCodes.UNAVAILABLE,
};

const SRC = 'http';

/**
 * `POST /v1/rpc`: one protocol body in, its reply body out, through the pipeline like every
 * other transport (one connection per request, on the pump). Status 200 for every typed
 * reply; an error reply keeps its body under the status of its code.
 */
export function createRpcHandler(o: RpcOptions): HeadCheckedRoute {
  const { gateway, front } = o;
  const spec: RouteSpec = {
    callers: new Set(['service']),
    mediaType: 'application/json',
    refusal: (status, text) => errorBody(CODE_OF_REFUSAL[status] ?? ErrorCodes.MALFORMED, text),
    // The error of the other transports (error 12, "Message is not valid UTF-8"), with in_reply_to when the msg_id can be read.
    notUtf8: (lossy) => {
      const d = notUtf8Body(lossy, SRC, gateway.nodeId);
      o.undecodable?.(d.code);
      return errorBody(d.code, d.text, d.msgId);
    },
  };
  const route: HeadCheckedRoute = (req, res) =>
    front.serve(req, res, spec, async (admitted) => {
      const d: Decoded = decodeBody(admitted.text, SRC, gateway.nodeId);
      if (!d.ok) o.undecodable?.(d.code);
      // W3C Trace Context: the request's span joins the caller's trace (checked where it is used).
      if (d.ok && req.headers.traceparent !== undefined) d.traceparent = req.headers.traceparent;
      const conn = gateway.connect({ allowed: RPC_TYPES, logFields: { transport: 'http', role: admitted.caller ?? 'service', remote: admitted.remote } });
      const body = (await serveOne(conn, d)).body;
      front.answer(res, body.type === 'error' ? (STATUS_OF_CODE[body.code] ?? 400) : 200, body);
    });
  route.refuseHead = (req, res) => front.refuseHead(req, res, spec);
  return route;
}
