import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { answerRawAndClose, closesConnection, sendJsonAndClose } from './http-util.js';

/** Node's codes of a request it could not read, and the status and text each is answered with (400 otherwise). */
const STATUS_OF: Readonly<Record<string, readonly [number, string]>> = {
  HPE_HEADER_OVERFLOW: [431, 'Request header fields too large'],
  HPE_CHUNK_EXTENSIONS_OVERFLOW: [413, 'Chunk extensions too large'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'The request head did not arrive in time'],
};
const UNREADABLE: readonly [number, string] = [400, 'Bad request: not a valid HTTP/1.1 request'];

/** Connections already answered (the parser reports every later chunk of the same connection again). */
const handled = new WeakSet<Duplex>();

/**
 * The `clientError` listener: a request Node could not read (a head too large, two
 * Content-Length, bytes that are not HTTP). Node's own answer would be a bare status with none
 * of the gateway's headers, written over an answer still being prepared for a request read
 * before on the connection (a valid request, then garbage: served, its reply lost). Here, an
 * answer in progress is finished first, then the connection closes; otherwise the error is
 * answered with the gateway's headers and a JSON body, and the connection closes.
 */
export function onClientError(err: NodeJS.ErrnoException, duplex: Duplex): void {
  const socket = duplex as Socket & { _httpMessage?: ServerResponse | null };
  if (handled.has(socket)) return;
  handled.add(socket);
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  // The answer Node has the socket writing now (its own default handler looks at the same field).
  const current = socket._httpMessage;
  // It closes the connection (the request said close, or the answer does): it is the
  // connection's last, and Node closes the connection once it is sent. What the client sent
  // after it is not answered (RFC 9112 section 9.6): an answer after one saying close is one
  // its client cannot read, and makes it drop the first (Node's: "Data after Connection: close").
  if (current != null && current.headersSent && (!current.shouldKeepAlive || closesConnection(current))) return;
  // The bytes that could not be read belong to an earlier request's answer still being made,
  // unless they are the current request's own body (a broken chunk, a chunk extension or a
  // trailer too large): that request cannot be read either, and its route, still waiting
  // for the body, gives up on it once the connection closes.
  const ownBody = current != null && !current.headersSent && !current.req.complete;
  if (current != null && !current.writableFinished && !ownBody) {
    finishThenClose(socket, current);
    return;
  }
  const [status, text] = (err.code !== undefined ? STATUS_OF[err.code] : undefined) ?? UNREADABLE;
  answerRawAndClose(socket, status, { error: text });
}

/** Lets the answers in progress (pipelined ones follow the current) finish, then closes the connection. */
function finishThenClose(socket: Socket & { _httpMessage?: ServerResponse | null }, current: ServerResponse): void {
  if (!current.headersSent) current.setHeader('Connection', 'close');
  current.once('finish', () => {
    // Node hands the socket to the next pipelined answer before this listener runs.
    const next = socket._httpMessage;
    if (next != null && next !== current && !next.writableFinished) finishThenClose(socket, next);
    else socket.destroySoon();
  });
}

/** The `checkExpectation` listener: an `Expect` other than 100-continue is 417 (RFC 9110 section 10.1.1), and the body is not read. */
export function expectationFailed(_req: IncomingMessage, res: ServerResponse): void {
  sendJsonAndClose(res, 417, { error: 'Expectation failed: only Expect: 100-continue is supported' });
}

/**
 * Heads Node reads but that are not requests the gateway can read (RFC 9112): an HTTP/1.1
 * request without a Host header field, or any with more than one Host line (section 3.2;
 * Node keeps the first of two, and answers a missing one itself, bare, or not at all on an
 * upgrade: `requireHostHeader: false` leaves it to this check); a Transfer-Encoding other
 * than `chunked` alone (section 6.1: Node frames a body `gzip, chunked` by its chunks and
 * hands on the coded bytes, which the gateway would read as the request; a proxy that undid
 * the coding would see another). Node refuses a last coding other than chunked itself. And
 * more than one Authorization line (a single-value field, RFC 9110 section 11.6.2): Node keeps
 * the first and drops the others unseen, where a proxy in front may judge by the last.
 */
export function headUnreadable(req: IncomingMessage): boolean {
  const raw = req.rawHeaders;
  let hosts = 0;
  let authorizations = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') hosts++;
    else if (name.length === 13 && name.toLowerCase() === 'authorization') authorizations++;
  }
  if (hosts > 1 || authorizations > 1 || (hosts === 0 && req.httpVersionMajor === 1 && req.httpVersionMinor >= 1)) return true;
  const coding = req.headers['transfer-encoding'];
  return coding !== undefined && coding.trim().toLowerCase() !== 'chunked';
}

/** `listener` for requests whose head can be read; the others get the 400 of a request that cannot be read, and the connection closes. */
export function requireReadableHead(listener: RequestListener): RequestListener {
  return (req, res) => {
    if (!headUnreadable(req)) return listener(req, res);
    // Nothing after it is answered: bytes the parser fails on next (a body it did not frame) get no second answer.
    handled.add(req.socket);
    sendJsonAndClose(res, UNREADABLE[0], { error: UNREADABLE[1] });
  };
}

/** `onUpgrade` for upgrades whose head can be read; the others get the 400 of a request that cannot be read, and no WebSocket. */
export function upgradeRequiringReadableHead(
  onUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void,
): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  return (req, socket, head) => {
    if (!headUnreadable(req)) return onUpgrade(req, socket, head);
    handled.add(socket);
    answerRawAndClose(socket, UNREADABLE[0], { error: UNREADABLE[1] });
  };
}

/**
 * The `connect` listener: a CONNECT request asks a proxy for a tunnel, which the gateway is
 * not. Without a listener Node drops the connection unanswered; here it gets 501 with the
 * gateway's headers and a JSON body, and the connection closes.
 */
export function connectNotImplemented(_req: IncomingMessage, socket: Duplex): void {
  handled.add(socket);
  answerRawAndClose(socket, 501, { error: 'Not implemented: CONNECT (this server is not a proxy)' });
}
