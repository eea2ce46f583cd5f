import { isUtf8 } from 'node:buffer';
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { closeAfter, lingeringClose } from './lingering-close.js';

/** Headers on every HTTP answer of the gateway. */
export const BASE_HEADERS: Readonly<Record<string, string>> = {
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
};

/**
 * A whole HTTP/1.1 answer as bytes to write on a socket that no ServerResponse serves (a
 * connection refused before Node's parser, a head Node could not parse): the gateway's headers,
 * a JSON body, and `Connection: close` (the caller closes the connection once it is written).
 */
export function rawAnswer(status: number, value: unknown, extra: Readonly<Record<string, string>> = {}): string {
  const body = JSON.stringify(value);
  const headers = {
    ...BASE_HEADERS,
    ...extra,
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(body)),
    Connection: 'close',
  };
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n`;
  for (const [name, v] of Object.entries(headers)) head += `${name}: ${v}\r\n`;
  return `${head}\r\n${body}`;
}

/** Writes `rawAnswer(...)` on a socket no ServerResponse serves, then closes it once written (`lingeringClose`). */
export function answerRawAndClose(socket: Duplex, status: number, value: unknown, extra?: Readonly<Record<string, string>>): void {
  if (socket.writable) socket.write(rawAnswer(status, value, extra));
  lingeringClose(socket);
}

/** True when the answer says `Connection: close` (Node then closes the connection once it is sent). */
export function closesConnection(res: ServerResponse): boolean {
  const value = res.getHeader('connection');
  return value !== undefined && /(?:^|\W)close(?:$|\W)/i.test(String(value));
}

/** The request's target as a URL, or undefined when it is not one (`GET //a:99999/`): answer `badTarget`. */
export function targetOf(req: IncomingMessage): URL | undefined {
  const target = req.url ?? '/';
  return URL.canParse(target, 'http://gateway.invalid') ? new URL(target, 'http://gateway.invalid') : undefined;
}

/**
 * The target's path, for a log line: never its query, nor the scheme, user, password and host
 * of an absolute-form target (`POST http://user:pass@host/v1/rpc`).
 */
export function pathForLog(req: IncomingMessage): string | undefined {
  return targetOf(req)?.pathname;
}

/** 400 for a target that is not a URL; the connection is closed (what follows it is not read). */
export function badTarget(res: ServerResponse): void {
  closeAfter(res);
  send(res, 400, 'text/plain; charset=utf-8', 'bad request target\n');
}

/**
 * A request carrying a body that the route will not read: its answer closes the connection,
 * so the body is not read and dropped however long it is (Node would drain it to keep the
 * connection).
 */
export function closeIfBody(req: IncomingMessage, res: ServerResponse): void {
  const length = req.headers['content-length'];
  if (req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0')) closeAfter(res);
}

export function send(res: ServerResponse, status: number, type: string, body: string | Buffer, head = false): void {
  res.writeHead(status, { ...BASE_HEADERS, 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
  res.end(head ? undefined : body);
}

export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, 'application/json; charset=utf-8', JSON.stringify(value), res.req?.method === 'HEAD');
}

/** Answers and closes the connection: for a refusal before the body was read (the rest is never read). */
export function sendJsonAndClose(res: ServerResponse, status: number, value: unknown): void {
  closeAfter(res);
  sendJson(res, status, value);
}

/** An answer with no body (and so no Content-Type). */
export function sendEmpty(res: ServerResponse, status: number): void {
  res.writeHead(status, { ...BASE_HEADERS, 'Content-Length': 0 });
  res.end();
}

/** What `readLimited` got: the body's text, or why not. */
export type BodyRead =
  | { text: string }
  | { refused: 'too_large' | 'timeout' | 'aborted' }
  /** `lossy`: the bytes read with replacement characters, only to address the error (never served). */
  | { refused: 'not_utf8'; lossy: string };

/** The bytes as text, or undefined when they are not UTF-8 (never replacement characters: two spellings would become one). */
export function utf8Text(bytes: Buffer): string | undefined {
  return isUtf8(bytes) ? bytes.toString('utf8') : undefined;
}

/**
 * Reads the body up to `limit` bytes: the text, or why not ('too_large' at once when the
 * declared Content-Length passes the limit, or as soon as the bytes do; 'timeout' when it
 * has not all come within `ms`). Stops reading either way: the caller answers and closes.
 */
export function readLimited(req: IncomingMessage, limit: number, ms: number): Promise<BodyRead> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.resolve({ refused: 'too_large' });
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    let size = 0;
    const finish = (r: BodyRead) => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.pause();
      resolve(r);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) finish({ refused: 'too_large' });
      else parts.push(chunk);
    };
    const onEnd = () => {
      const bytes = Buffer.concat(parts, size);
      const text = utf8Text(bytes);
      finish(text === undefined ? { refused: 'not_utf8', lossy: bytes.toString('utf8') } : { text });
    };
    const onError = () => finish({ refused: 'aborted' });
    const timer = setTimeout(() => finish({ refused: 'timeout' }), ms);
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', onError);
  });
}
