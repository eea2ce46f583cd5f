/**
 * The value of cookie `name` in a `Cookie` request header (RFC 6265 section 5.4 syntax:
 * `a=1; b=2`), or undefined. The first occurrence wins, as browsers send the most
 * specific path first. Quoted values are unquoted; nothing is URL-decoded, because the
 * gateway's ids are URL-safe already.
 */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    let value = part.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    return value === '' ? undefined : value;
  }
  return undefined;
}

/** A `Set-Cookie` value for the session cookie (HttpOnly: page scripts never see the id). */
export function sessionCookie(name: string, value: string, o: { maxAgeSeconds: number; secure: boolean }): string {
  const parts = [`${name}=${value}`, 'HttpOnly', 'SameSite=Strict', 'Path=/', `Max-Age=${Math.max(0, Math.floor(o.maxAgeSeconds))}`];
  if (o.secure) parts.push('Secure');
  return parts.join('; ');
}
