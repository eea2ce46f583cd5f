/**
 * POST /v1/rpc as docs/protocol.md (HTTP, "In production") says to call it: `serve` without
 * `--dev`, the service key read from a file, the key as a bearer token. The route is on
 * whatever the flags; only the key opens it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { httpPost } from '../helpers/http-post.js';
import { JWT_SECRET, SERVICE_KEY } from '../ws/helpers.js';
import { ensureBuilt, killAll, spawnServer } from '../ws/process.js';

const INTROSPECTION_KEY = 'n6V0rF9q3m1X7cT2kq8Zr5yP4wL0aS3dG6hJ9uB2eC8=';
const dir = mkdtempSync(join(tmpdir(), 'rpc-production-'));
afterAll(async () => {
  await killAll();
  rmSync(dir, { recursive: true, force: true });
});

describe('POST /v1/rpc without --dev', () => {
  it('answers the service key from GATEWAY_SERVICE_KEY_FILE; no key or a wrong one is 401, an introspection key 403; /autosession stays off', async () => {
    ensureBuilt();
    const keyFile = join(dir, 'service-key');
    writeFileSync(keyFile, `${SERVICE_KEY}\n`, { mode: 0o600 });
    const gw = await spawnServer({ GATEWAY_JWT_SECRET: JWT_SECRET, GATEWAY_SERVICE_KEY_FILE: keyFile, GATEWAY_INTROSPECTION_KEYS: INTROSPECTION_KEY });
    const rpc = (body: unknown, headers: Record<string, string>) =>
      httpPost(`${gw.http}/v1/rpc`, JSON.stringify(body), { 'Content-Type': 'application/json', ...headers });
    const create = { type: 'create_session', msg_id: 7, user_id: 'alice' };

    const created = await rpc(create, { Authorization: `Bearer ${SERVICE_KEY}` });
    expect(created.status).toBe(200);
    expect(created.headers['cache-control']).toBe('no-store');
    expect(created.body).toMatchObject({ type: 'session_created', in_reply_to: 7, expires_in: 3600 });
    const valid = await rpc({ type: 'validate_session', session_id: created.body.session_id }, { Authorization: `Bearer ${SERVICE_KEY}` });
    expect(valid.body).toMatchObject({ type: 'session_valid', user_id: 'alice', in_reply_to: 0 });

    const missingOrWrong: Record<string, string>[] = [{}, { Authorization: 'Bearer wrong-key' }, { Authorization: SERVICE_KEY }];
    for (const headers of missingOrWrong) {
      const refused = await rpc(create, headers);
      expect(refused.status).toBe(401);
      expect(refused.headers['www-authenticate']).toMatch(/^Bearer/);
      expect(refused.body).toMatchObject({ type: 'error', code: 1001, text: 'Missing or wrong key (Authorization: Bearer <key>)' });
    }
    const resourceServer = await rpc(create, { Authorization: `Bearer ${INTROSPECTION_KEY}` });
    expect(resourceServer.status).toBe(403);
    expect(resourceServer.body).toMatchObject({ type: 'error', code: 1001, text: 'This key may call POST /oauth2/introspect and POST /oauth2/revoke only' });

    expect((await httpPost(`${gw.http}/autosession`, '', {})).status).toBe(404);
  });
});
