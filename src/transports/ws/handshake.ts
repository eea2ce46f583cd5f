import type { IncomingMessage } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { callerOf } from '../bearer-key.js';
import { readCookie } from './cookies.js';

/** What an upgrade request may become, decided before `handleUpgrade`. */
export type Handshake = { ok: true; role: 'service' } | { ok: true; role: 'browser'; sessionId?: string } | { ok: false; status: 401 | 403 | 404; why: string };

export interface HandshakeOptions {
  serviceKey?: string;
  /** `GATEWAY_INTROSPECTION_KEYS`: right keys, but not for a connection (403, not a failed attempt). */
  introspectionKeys: readonly string[];
  isAllowedOrigin: (origin: string) => boolean;
  sessionCookie: string;
}

/** Header of the 101 that says the largest frame served (`GATEWAY_MAX_MESSAGE_BYTES`), in bytes. */
export const MAX_MESSAGE_BYTES_HEADER = 'Gateway-Max-Message-Bytes';

/** Upgrade paths: the root (what `connect ws://host:port` asks for) and `/ws`. */
const PATHS = new Set(['/', '/ws']);

/**
 * Decides the role of an upgrade (docs/protocol.md, WebSocket). A browser cannot set
 * `Authorization` on a WebSocket upgrade, so a request carrying it is a backend: it is a
 * service when the bearer key is the service key (constant time), refused with 403 when it is
 * an introspection key and with 401 otherwise. Every other request is a browser. An upgrade
 * that names an `Origin` must name an allowed one, or the page of another site could ride the
 * user's cookie (cross-site WebSocket hijacking): 403.
 */
export function classifyUpgrade(req: IncomingMessage, o: HandshakeOptions): Handshake {
  const path = (req.url ?? '/').split('?')[0]!;
  if (!PATHS.has(path)) return { ok: false, status: 404, why: 'no WebSocket endpoint at this path' };
  const auth = req.headers.authorization;
  if (auth !== undefined) {
    const caller = callerOf(auth, o);
    if (caller === undefined) return { ok: false, status: 401, why: 'wrong or malformed service key' };
    // A resource server's key is no guess: its holder is refused, never counted, so that a
    // backend that tries it here cannot lock its own address out of the routes it may call.
    if (caller === 'introspection')
      return { ok: false, status: 403, why: 'an introspection key: it may call POST /oauth2/introspect and POST /oauth2/revoke only' };
  }
  // Any upgrade naming an Origin that is not allowed, the right key's included (the protocol
  // refuses such an upgrade whoever makes it; a backend sends no Origin).
  const origin = req.headers.origin;
  if (origin !== undefined && !o.isAllowedOrigin(origin)) return { ok: false, status: 403, why: 'origin not allowed' };
  if (auth !== undefined) return { ok: true, role: 'service' };
  return { ok: true, role: 'browser', sessionId: readCookie(req.headers.cookie, o.sessionCookie) };
}

/** What ws would refuse a handshake for (RFC 6455 section 4.2.1), checked before any key, cookie or store is looked at. */
export interface BrokenHandshake {
  status: 400 | 405;
  text: string;
  headers: Record<string, string>;
}

/** A Sec-WebSocket-Key: 16 bytes in base64 (ws's own test). */
const WS_KEY = /^[+/0-9A-Za-z]{22}==$/;

/**
 * Why an upgrade on an upgrade path is not a WebSocket handshake ws would take, or undefined.
 * ws answers these itself, bare (text/html, none of the gateway's headers), and only once the
 * upgrade has passed the key and cookie checks: a broken handshake carrying a session cookie
 * cost a store read and, its cookie dead, was never counted as a failed guess.
 */
export function brokenHandshake(req: IncomingMessage): BrokenHandshake | undefined {
  if (!PATHS.has((req.url ?? '/').split('?')[0]!)) return undefined;
  if (req.method !== 'GET') return { status: 405, text: 'Method not allowed: a WebSocket upgrade is a GET', headers: { Allow: 'GET' } };
  if (req.headers.upgrade?.toLowerCase() !== 'websocket')
    return { status: 400, text: 'Bad request: not a WebSocket upgrade (Upgrade: websocket)', headers: {} };
  const key = req.headers['sec-websocket-key'];
  if (key === undefined || !WS_KEY.test(key)) return { status: 400, text: 'Bad request: missing or invalid Sec-WebSocket-Key', headers: {} };
  const version = req.headers['sec-websocket-version'];
  if (version !== '13' && version !== '8')
    return { status: 400, text: 'Bad request: unsupported Sec-WebSocket-Version', headers: { 'Sec-WebSocket-Version': '13, 8' } };
  return undefined;
}

/** Answers a refused upgrade with a bare HTTP status and drops the socket (as ws does). */
export function refuseUpgrade(socket: Duplex, status: number, extra: Record<string, string> = {}): void {
  if (socket.writable) {
    const headers = { Connection: 'close', 'Content-Type': 'text/plain', 'Content-Length': '0', ...extra };
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n${Object.entries(headers)
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('')}\r\n`,
    );
  }
  socket.destroy();
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);
const WILDCARD = new Set(['0.0.0.0', '::', '[::]', '']);

/**
 * The origins a browser uses to reach the gateway itself at `host:port`. On loopback, all
 * three spellings (127.0.0.1, localhost, [::1]) name the same server. On a wildcard bind the
 * gateway cannot know its public name: none, and the operator sets GATEWAY_ALLOWED_ORIGINS.
 */
export function ownOrigins(host: string, port: number): string[] {
  if (WILDCARD.has(host)) return [];
  if (LOOPBACK.has(host)) return [`http://127.0.0.1:${port}`, `http://localhost:${port}`, `http://[::1]:${port}`];
  const h = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return [new URL(`http://${h}:${port}`).origin];
}

/** The origin check: configured origins (`*`: any), else the gateway's own. */
export function originCheck(configured: string[] | undefined, own: string[]): (origin: string) => boolean {
  const list = configured ?? own;
  if (list.includes('*')) return () => true;
  const allowed = new Set(list);
  return (origin) => allowed.has(origin);
}
