import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Fresh session ids shaped like the gateway's own (256 random bits, base64url). */
export function sessionIds(n) {
  return Array.from({ length: n }, () => randomBytes(32).toString('base64url'));
}

/** Writes a fixture file seeding `ids` (docs/protocol.md, Fixtures); returns its path. */
export function writeFixtures(dir, name, ids, { ttl = 3600, usersEvery = 1 } = {}) {
  const path = join(dir, name);
  const sessions = ids.map((session_id, i) => ({ session_id, user_id: `user-${Math.floor(i / usersEvery)}`, ttl }));
  writeFileSync(path, JSON.stringify({ sessions }));
  return path;
}

/** One request line per message, cycling through `values` (msg_id counts up). */
export function requestLines(n, make, values) {
  const parts = new Array(n);
  for (let i = 0; i < n; i++) parts[i] = `${JSON.stringify({ src: 'client', dest: 'gateway', body: make(i, values[i % values.length]) })}\n`;
  return parts;
}

export const validateBody = (i, sid) => ({ type: 'validate_session', msg_id: i + 1, session_id: sid });
export const verifyBody = (i, token) => ({ type: 'verify_token', msg_id: i + 1, token });

/** A 32-byte random secret that passes the gateway's secret checks. */
export const jwtSecret = () => randomBytes(32).toString('base64');
