import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseCookie, stringifySetCookie } from 'cookie';

/** The gateway's session ids: 43 URL-safe characters (256 bits). Anything else is refused without asking the gateway. */
const SESSION_ID = /^[A-Za-z0-9_-]{43}$/;
/** Browsers send at most about 4 KiB per cookie; a longer header is not parsed. */
const MAX_COOKIE_HEADER = 8192;

export interface CookieSettings {
  name: string;
  secure: boolean;
  sameSite: 'Lax' | 'Strict';
}

/** What the request's cookie says: no cookie, a value that cannot be a session id, or an id to check. */
export type CookieRead = { kind: 'none' } | { kind: 'malformed' } | { kind: 'id'; id: string };

/** RFC 6265 allows a cookie value in double quotes; the gateway reads it without them. Nothing is URL-decoded. */
function unquote(value: string): string {
  return value.length >= 2 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value;
}

/**
 * Reads the session cookie as the gateway's WebSocket binding reads it: the first
 * occurrence wins, quotes are taken off, nothing is URL-decoded (the ids are URL-safe).
 */
export function readSessionCookie(req: IncomingMessage, name: string): CookieRead {
  const header = req.headers.cookie;
  if (header === undefined || header === '') return { kind: 'none' };
  if (header.length > MAX_COOKIE_HEADER) return { kind: 'malformed' };
  const value = parseCookie(header, { decode: unquote })[name];
  if (value === undefined || value === '') return { kind: 'none' };
  return SESSION_ID.test(value) ? { kind: 'id', id: value } : { kind: 'malformed' };
}

/** The `Set-Cookie` value of the session cookie. */
export function sessionCookieLine(c: CookieSettings, value: string, maxAgeSeconds: number): string {
  return stringifySetCookie(c.name, value, {
    httpOnly: true,
    secure: c.secure,
    sameSite: c.sameSite === 'Strict' ? 'strict' : 'lax',
    path: '/',
    maxAge: Math.max(0, Math.floor(maxAgeSeconds)),
  });
}

/** Adds a `Set-Cookie` for the session cookie, replacing one for the same name set earlier in this response. */
export function setSessionCookie(res: ServerResponse, c: CookieSettings, value: string, maxAgeSeconds: number): void {
  const line = sessionCookieLine(c, value, maxAgeSeconds);
  const prefix = `${c.name}=`;
  const prev = res.getHeader('set-cookie');
  const kept = (prev === undefined ? [] : Array.isArray(prev) ? prev : [String(prev)]).filter((v) => !v.startsWith(prefix));
  res.setHeader('set-cookie', [...kept, line]);
}
