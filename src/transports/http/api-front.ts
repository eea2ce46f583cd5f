import type { IncomingMessage, ServerResponse } from 'node:http';
import type { BlockList } from 'node:net';
import type { Logger } from '../../log.js';
import type { LogBudget } from '../../log-budget.js';
import { oversized } from '../../protocol/decode.js';
import type { FailedAuthThrottle } from '../auth-throttle.js';
import { callerOf, type Caller } from '../bearer-key.js';
import { clientOf } from '../client-address.js';
import { pathForLog, readLimited, sendEmpty, sendJson, sendJsonAndClose } from './http-util.js';

export type { Caller } from '../bearer-key.js';

export interface ApiFrontOptions {
  /** `GATEWAY_SERVICE_KEY`; without one, no request is a service's. */
  serviceKey?: string;
  /** `GATEWAY_INTROSPECTION_KEYS`. */
  introspectionKeys: readonly string[];
  /** Failed keys count against the client's address, as wrong keys at the WebSocket upgrade do. */
  throttle: FailedAuthThrottle;
  trustedProxies?: BlockList;
  /** Largest body served; a larger one is answered 413 and not read further. */
  maxMessageBytes: number;
  /** A body not received in full within this many ms is answered 408. */
  bodyTimeoutMs: number;
  log: Logger;
  sampledLog: LogBudget;
}

/** What a route asks of the front, and how it words a refusal. */
export interface RouteSpec {
  /**
   * Callers this route serves; a right key of another kind gets 403. `'anyone'`: no key is
   * asked (and no failed-auth tally), for a route whose body authenticates itself, as a
   * back-channel logout token does by the identity provider's signature.
   */
  callers: ReadonlySet<Caller> | 'anyone';
  /** The body's media type, e.g. `application/json` (parameters such as charset allowed). */
  mediaType: string;
  /** The body of a refusal with `status`; `text` is safe to show (it never holds the key). */
  refusal(status: number, text: string): unknown;
  /**
   * The body of the 400 for a body that is not UTF-8, from that body read with replacement
   * characters (only to address the answer); without it, `refusal(400, ...)`.
   */
  notUtf8?(lossy: string): unknown;
}

/** A route of the front: it serves a request, and can refuse one from its head alone (`Expect: 100-continue`). */
export type HeadCheckedRoute = ((req: IncomingMessage, res: ServerResponse) => Promise<void>) & {
  refuseHead?: (req: IncomingMessage, res: ServerResponse) => boolean;
};

/** A request that passed every check: its body and its caller (none on an `'anyone'` route). */
export interface Admitted {
  text: string;
  caller?: Caller;
  /** The client's address (a trusted proxy's forwarded one), for the log. */
  remote: string;
}

/** A refusal made from the head alone: status, safe text and extra headers. */
interface Refusal {
  status: number;
  text: string;
  headers?: Record<string, string>;
}

/** True when `header` names `type`, whatever its parameters and letter case. */
function isMediaType(header: string | undefined, type: string): boolean {
  if (header === undefined) return false;
  const [essence, ...parameters] = header.split(';');
  if (essence!.trim().toLowerCase() !== type) return false;
  // The body is read as UTF-8: a charset parameter naming anything else is refused, not misread.
  for (const p of parameters) {
    const at = p.indexOf('=');
    if (at < 0 || p.slice(0, at).trim().toLowerCase() !== 'charset') continue;
    if (
      !UTF8_NAMES.has(
        p
          .slice(at + 1)
          .trim()
          .replace(/^"(.*)"$/, '$1')
          .toLowerCase(),
      )
    )
      return false;
  }
  return true;
}

/** Charsets whose text is UTF-8 as it is (ASCII is a subset). */
const UTF8_NAMES = new Set(['utf-8', 'utf8', 'us-ascii']);

const THROTTLED: Refusal = {
  status: 429,
  text: 'Too many failed authentication attempts from this address; try again later',
  headers: { 'Retry-After': '60' },
};

/** Answers a refusal with the route's body and closes the connection (the rest of the body is never read). */
function answerRefusal(res: ServerResponse, spec: RouteSpec, r: Refusal): undefined {
  for (const [name, value] of Object.entries(r.headers ?? {})) res.setHeader(name, value);
  sendJsonAndClose(res, r.status, spec.refusal(r.status, r.text));
  return undefined;
}

/**
 * True when the body is sent as is: no Content-Encoding, or only `identity`. The gateway
 * decodes no content coding, and must not act on a body whose declared coding was not undone.
 */
function isIdentity(header: string | undefined): boolean {
  return header === undefined || header.split(',').every((coding) => ['identity', ''].includes(coding.trim().toLowerCase()));
}

/**
 * The checks every HTTP API route (`/v1/rpc`, `/oauth2/*`, `/oidc/backchannel-logout`) makes
 * before its own work: drain, method, the failed-auth throttle of the client's address (on
 * every route: a route open to anyone reports its refused credentials with `failed`), the
 * bearer key (compared in constant time with every configured key; not on a route open to
 * anyone), the media type and content coding, the size limit and the time limit of the body;
 * and the tally of requests in flight that a drain waits for, from the acceptance of a
 * request's head to the end of its route's work.
 */
export class ApiFront {
  readonly #o: ApiFrontOptions;
  #inFlight = 0;
  /** Requests of routes open to anyone, counted in flight by the throttle until their answer's close. */
  readonly #attempts = new WeakMap<IncomingMessage, { failed: boolean }>();
  #draining = false;
  #idle: (() => void) | undefined;

  constructor(o: ApiFrontOptions) {
    this.#o = o;
  }

  /**
   * Serves one request of a route: the checks, then `work` with what they let through. A drain
   * waits for the request from the moment its head is accepted until `work` is done: while its
   * body arrives (the body's time limit bounds that), while it waits its turn, while it is served.
   */
  async serve(req: IncomingMessage, res: ServerResponse, spec: RouteSpec, work: (admitted: Admitted) => Promise<void> | void): Promise<void> {
    this.#inFlight++;
    try {
      const admitted = await this.#admit(req, res, spec);
      if (admitted !== undefined) await work(admitted);
    } finally {
      if (--this.#inFlight === 0) this.#idle?.();
    }
  }

  /**
   * Runs the checks; resolves with the body and caller, or with undefined once the request is
   * answered (refused: the connection is closed, the rest of the body is never read).
   */
  async #admit(req: IncomingMessage, res: ServerResponse, spec: RouteSpec): Promise<Admitted | undefined> {
    const refuse = (status: number, text: string, headers: Record<string, string> = {}) => answerRefusal(res, spec, { status, text, headers });
    const throttled = () => refuse(THROTTLED.status, THROTTLED.text, THROTTLED.headers);
    const head = this.#checkHead(req, spec, false);
    if ('status' in head) return answerRefusal(res, spec, head);
    const { address, key } = head;
    if (spec.callers === 'anyone') {
      // Its credential is checked after the body is read: counted in flight by the throttle until
      // answered, and past the limit it waits for those in flight. A drain waits for the waiting
      // too (they are in flight): each is refused, or let through to be read and served.
      if (!(await this.#o.throttle.enter(key))) return throttled();
      // The client went away while it waited, or a drain began: its turn is given back.
      if (res.destroyed || req.destroyed || this.#draining) {
        this.#o.throttle.finish(key, false);
        return res.destroyed || req.destroyed ? undefined : refuse(503, 'Server shutting down', { 'Retry-After': '1' });
      }
      const attempt = { failed: false };
      this.#attempts.set(req, attempt);
      res.once('close', () => {
        this.#attempts.delete(req);
        this.#o.throttle.finish(key, attempt.failed);
      });
      return this.#readBody(req, res, spec, refuse, undefined, address);
    }
    return this.#readBody(req, res, spec, refuse, head.caller, address);
  }

  /**
   * The checks a request's head alone decides, in the order a request meets them: drain,
   * method, throttle, key (a missing or wrong one counts against the address), and with
   * `body` also the media type, content coding and declared length. A refusal, or the
   * caller (none on a route open to anyone) and the client's address.
   */
  #checkHead(req: IncomingMessage, spec: RouteSpec, body: boolean): Refusal | { caller?: Caller; address: string; key: string } {
    if (this.#draining) return { status: 503, text: 'Server shutting down', headers: { 'Retry-After': '1' } };
    if (req.method !== 'POST') return { status: 405, text: 'Method not allowed: use POST', headers: { Allow: 'POST' } };
    const { address, key } = clientOf(req, this.#o.trustedProxies);
    // An address out of failed attempts gets no more guesses until the window clears, right key
    // (or, on a route open to anyone, right token) or not.
    if (this.#o.throttle.blocked(key)) {
      this.#o.sampledLog.hit('http throttle', () =>
        this.#o.log.warn({ remote: address, path: pathForLog(req) }, 'http request refused (throttle tripped; sampled)'),
      );
      return THROTTLED;
    }
    let caller: Caller | undefined;
    if (spec.callers !== 'anyone') {
      caller = callerOf(req.headers.authorization, this.#o);
      if (caller === undefined) {
        this.#o.throttle.fail(key);
        return { status: 401, text: 'Missing or wrong key (Authorization: Bearer <key>)', headers: { 'WWW-Authenticate': 'Bearer' } };
      }
      if (!spec.callers.has(caller)) return { status: 403, text: 'This key may call POST /oauth2/introspect and POST /oauth2/revoke only' };
    }
    if (body) {
      const refused = this.#checkBodyHead(req, spec);
      if (refused !== undefined) return refused;
    }
    return caller === undefined ? { address, key } : { caller, address, key };
  }

  /** The media type, the content coding and the declared length, before any byte of the body is read. */
  #checkBodyHead(req: IncomingMessage, spec: RouteSpec): Refusal | undefined {
    if (!isMediaType(req.headers['content-type'], spec.mediaType)) return { status: 415, text: `Content-Type must be ${spec.mediaType}` };
    // RFC 9110 section 15.5.16: an unsupported content coding is 415, with the codings accepted.
    if (!isIdentity(req.headers['content-encoding']))
      return { status: 415, text: 'Content-Encoding is not supported: send the body uncoded', headers: { 'Accept-Encoding': 'identity' } };
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > this.#o.maxMessageBytes) return { status: 413, text: oversized(declared, this.#o.maxMessageBytes).text };
    return undefined;
  }

  /**
   * A request that asked for `Expect: 100-continue`: answered (true) with the refusal its head
   * alone earns, the connection closed, so that no client is invited to send a body that would
   * be refused unread (RFC 9110 section 10.1.1). False: send 100 Continue and serve it.
   */
  refuseHead(req: IncomingMessage, res: ServerResponse, spec: RouteSpec): boolean {
    const head = this.#checkHead(req, spec, true);
    if (!('status' in head)) return false;
    answerRefusal(res, spec, head);
    return true;
  }

  /**
   * A route open to anyone refused the credential in the body (a logout token that is forged,
   * replayed or malformed): it counts against the address like a wrong key.
   */
  failed(req: IncomingMessage): void {
    const attempt = this.#attempts.get(req);
    if (attempt !== undefined) attempt.failed = true;
    else this.#o.throttle.fail(clientOf(req, this.#o.trustedProxies).key);
  }

  /** The media type, then the body within the size and time limits. */
  async #readBody(
    req: IncomingMessage,
    res: ServerResponse,
    spec: RouteSpec,
    refuse: (status: number, text: string, headers?: Record<string, string>) => undefined,
    caller: Caller | undefined,
    remote: string,
  ): Promise<Admitted | undefined> {
    const refused = this.#checkBodyHead(req, spec);
    if (refused !== undefined) return refuse(refused.status, refused.text, refused.headers);
    const limit = this.#o.maxMessageBytes;
    const declared = Number(req.headers['content-length']);
    const tooLarge = () => oversized(Number.isFinite(declared) ? declared : undefined, limit).text;
    const read = await readLimited(req, limit, this.#o.bodyTimeoutMs);
    if ('text' in read) return caller === undefined ? { text: read.text, remote } : { text: read.text, caller, remote };
    if (read.refused === 'too_large') return refuse(413, tooLarge());
    if (read.refused === 'timeout') return refuse(408, `The body did not arrive within ${this.#o.bodyTimeoutMs} ms`);
    if (read.refused === 'not_utf8') {
      if (spec.notUtf8 === undefined) return refuse(400, 'The body is not valid UTF-8');
      sendJsonAndClose(res, 400, spec.notUtf8(read.lossy));
      return undefined;
    }
    res.destroy();
    return undefined;
  }

  /** Sends a JSON answer, or an empty one without `body` (once the server drains, the server's listener closes its connection after it). */
  answer(res: ServerResponse, status: number, body?: unknown): void {
    if (body === undefined) sendEmpty(res, status);
    else sendJson(res, status, body);
  }

  /** Drain: new requests get 503 from now on; resolves once every request being served is answered. */
  drain(): Promise<void> {
    this.#draining = true;
    if (this.#inFlight === 0) return Promise.resolve();
    return new Promise<void>((resolve) => (this.#idle = resolve));
  }
}
