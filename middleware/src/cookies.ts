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

/** Adds a `Set-Cookie` for the session cookie, replacing one for the same name set earlier in this response; shared caches may not store the response. */
export function setSessionCookie(res: ServerResponse, c: CookieSettings, value: string, maxAgeSeconds: number): void {
  const line = sessionCookieLine(c, value, maxAgeSeconds);
  const prefix = `${c.name}=`;
  const prev = res.getHeader('set-cookie');
  const kept = (prev === undefined ? [] : Array.isArray(prev) ? prev : [String(prev)]).filter((v) => !v.startsWith(prefix));
  res.setHeader('set-cookie', [...kept, line]);
  keepFromSharedCaches(res);
}

/**
 * The `Cache-Control` of a response that sets the session cookie. `Set-Cookie` does not keep a
 * response out of caches (RFC 9111, section 7.3): a shared cache (a CDN, a proxy) could hand
 * the cookie, and so the session, to everyone who asks for the URL. `private` forbids shared
 * caches to store it and still lets the browser's own cache do so (section 5.2.2.7). An
 * unqualified `private` or `no-store` already there is kept as it is; otherwise `private` is
 * added, and `public` and `s-maxage`, which speak only to shared caches, are dropped.
 */
export function privateCacheControl(value: string | undefined): string {
  const directives = (value ?? '')
    .split(',')
    .map((d) => d.trim())
    .filter((d) => d !== '');
  if (directives.some((d) => /^(private|no-store)$/i.test(d))) return directives.join(', ');
  return ['private', ...directives.filter((d) => !/^(public$|s-maxage\s*=)/i.test(d))].join(', ');
}

const guarded = new WeakSet<ServerResponse>();

/** A header's values as a list (`Set-Cookie` may be one string or several). */
function values(v: unknown): string[] {
  return v === undefined || v === null ? [] : Array.isArray(v) ? v.map(String) : [String(v)];
}

/**
 * Guards a response that sets the session cookie, when its headers are written (not now: the
 * route that runs after the middleware may set headers of its own). Hooks `writeHead` as the
 * `on-headers` package does (Node calls it for implicit headers too), and reads headers
 * passed to it as well (Fastify passes all of its own there, and those win over the ones set
 * on the response):
 * - `Cache-Control` made private (see privateCacheControl);
 * - a `Set-Cookie` passed to writeHead is merged with the cookies set on the response, not put
 *   in their place: a Fastify route that sets a cookie of its own through `reply.header` would
 *   otherwise drop the session cookie a helper set on `reply.raw` (login, regenerate, logout).
 */
export function keepFromSharedCaches(res: ServerResponse): void {
  if (guarded.has(res)) return;
  guarded.add(res);
  const writeHead = res.writeHead;
  res.writeHead = function (this: ServerResponse, ...args: unknown[]): ServerResponse {
    let given = false;
    const ours = values(this.getHeader('set-cookie'));
    const theirs: string[] = [];
    const at = args.findIndex((a, i) => i > 0 && typeof a === 'object' && a !== null);
    if (at > 0) {
      const headers = args[at];
      if (Array.isArray(headers)) {
        // Node's raw form: names and values alternate.
        const copy: unknown[] = [];
        for (let i = 0; i + 1 < headers.length; i += 2) {
          const name = String(headers[i]).toLowerCase();
          if (name === 'set-cookie' && ours.length > 0) theirs.push(...values(headers[i + 1]));
          else if (name === 'cache-control') {
            copy.push(headers[i], privateCacheControl(String(headers[i + 1])));
            given = true;
          } else copy.push(headers[i], headers[i + 1]);
        }
        args[at] = copy;
      } else {
        const copy: Record<string, unknown> = { ...(headers as Record<string, unknown>) };
        for (const k of Object.keys(copy)) {
          const name = k.toLowerCase();
          if (copy[k] === undefined) continue;
          if (name === 'set-cookie' && ours.length > 0) {
            theirs.push(...values(copy[k]));
            delete copy[k];
          } else if (name === 'cache-control') {
            copy[k] = privateCacheControl(String(copy[k]));
            given = true;
          }
        }
        args[at] = copy;
      }
    }
    // Given and set cookies together, on the response, where Node keeps every one of them
    // (a raw list given to writeHead over headers already set keeps only its last cookie).
    if (theirs.length > 0) this.setHeader('set-cookie', [...theirs, ...ours.filter((c) => !theirs.includes(c))]);
    if (!given) {
      const set = this.getHeader('cache-control');
      this.setHeader('cache-control', privateCacheControl(set === undefined ? undefined : Array.isArray(set) ? set.join(', ') : String(set)));
    }
    return Reflect.apply(writeHead, this, args) as ServerResponse;
  } as ServerResponse['writeHead'];
}
