/**
 * A `stdio` process, started per test by graders and sidecars, loads what serving sessions
 * from the memory store needs and nothing of the network server: no ws, no prom-client, no
 * Redis or PostgreSQL client, no jose (back-channel logout), no OpenTelemetry, no schema compiler, and no JWT library until
 * a token is asked for (docs/benchmarks.md, row 11).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { spawnStdio } from '../security/spawn.js';

const RECORDER = fileURLToPath(new URL('../helpers/module-recorder.mjs', import.meta.url));
const SECRET = randomBytes(32).toString('base64');
const tmp = mkdtempSync(join(tmpdir(), 'gw-cold-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The packages of node_modules a stdio process loaded while serving `bodies`, and every module it loaded. */
async function packagesLoaded(name: string, bodies: { type: string; [k: string]: unknown }[]): Promise<{ packages: Set<string>; files: string[] }> {
  const record = join(tmp, name);
  const node = spawnStdio({ GATEWAY_JWT_SECRET: SECRET, GATEWAY_LOG_LEVEL: 'warn', MODULE_RECORD: record }, [], ['--import', RECORDER]);
  for (const body of bodies) expect((await node.call(body)).type).not.toBe('error');
  expect(await node.end()).toBe(0);
  const files = readFileSync(record, 'utf8').split('\n').filter(Boolean);
  const packages = new Set(files.map((f) => /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(f)?.[1]).filter((p): p is string => p !== undefined));
  return { packages, files };
}

const NETWORK = ['ws', 'prom-client', 'redis', '@redis/client', '@keyv/redis', 'iovalkey', 'pg', '@keyv/postgres', 'pino-pretty'];
/** The back-channel logout's JWS library: only `serve` receives logout tokens. */
const OIDC = ['jose'];

describe('stdio cold start', () => {
  it('serving sessions from memory loads no network, tracing, schema or JWT module', async () => {
    const { packages, files } = await packagesLoaded('sessions', [{ type: 'create_session', user_id: 'alice' }]);
    // The recorder saw the process's modules (ES and CommonJS).
    expect(files.some((f) => f.endsWith('/dist/cli.js'))).toBe(true);
    expect(packages).toContain('keyv');
    expect(packages).toContain('pino');
    for (const p of [...NETWORK, ...OIDC, '@opentelemetry/api', '@sinclair/typebox', 'fast-jwt']) expect(packages, p).not.toContain(p);
    expect(files.filter((f) => f.includes('/rxjs/dist/cjs/index.js'))).toEqual([]);
  });

  it('a token loads fast-jwt on demand, and still no network module', async () => {
    const { packages } = await packagesLoaded('tokens', [{ type: 'generate_access_token', payload: { sub: 'alice' } }]);
    expect(packages).toContain('fast-jwt');
    for (const p of [...NETWORK, ...OIDC]) expect(packages, p).not.toContain(p);
  });
});
