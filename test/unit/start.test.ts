import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { startGateway } from '../../src/index.js';
import { START_OPTIONS } from '../../src/start.js';

/** The variables of the README's configuration table (its first column). */
function documentedVariables(): string[] {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const table = readme.slice(readme.indexOf('| variable | meaning | default |'));
  const firstCells = [...table.matchAll(/^\| (`GATEWAY_[^|]*)\|/gm)].map((m) => m[1]!);
  return firstCells.flatMap((cell) => [...cell.matchAll(/`(GATEWAY_[A-Z0-9_]+)/g)].map((m) => m[1]!));
}

describe('startGateway', () => {
  it('refuses an unknown option and a bad value, naming them', async () => {
    await expect(startGateway({ env: {}, ...({ sessionTTL: 5 } as object) })).rejects.toThrow(new ConfigError('Unknown option "sessionTTL" of startGateway'));
    // The option first, then its variable: the caller set no GATEWAY_SESSION_TTL.
    await expect(startGateway({ env: {}, sessionTtl: 0 })).rejects.toThrow(/^sessionTtl \(GATEWAY_SESSION_TTL\) must be/);
    await expect(startGateway({ env: {}, port: 70_000 })).rejects.toThrow(/^port \(GATEWAY_PORT\) must be/);
    // A bad variable of the environment is named alone.
    await expect(startGateway({ env: { GATEWAY_SESSION_TTL: '0' } })).rejects.toThrow(/^GATEWAY_SESSION_TTL must be/);
  });

  it('has an option for every variable of the configuration table, named as the README says', () => {
    const variables = documentedVariables();
    expect(variables.length).toBeGreaterThanOrEqual(40);
    const camel = (v: string) =>
      v
        .slice('GATEWAY_'.length)
        .toLowerCase()
        .replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
    expect(variables.map(camel).filter((o) => !START_OPTIONS.has(o))).toEqual([]);
    expect([...START_OPTIONS].filter((o) => !variables.map(camel).includes(o))).toEqual([]);
  });

  it('takes the drain, introspection and back-channel logout settings, checked as their variables are', async () => {
    await expect(startGateway({ env: {}, drainDelay: -1 })).rejects.toThrow(/^drainDelay \(GATEWAY_DRAIN_DELAY\) must be/);
    await expect(startGateway({ env: {}, drainWindow: 601 })).rejects.toThrow(/^drainWindow \(GATEWAY_DRAIN_WINDOW\) must be/);
    await expect(startGateway({ env: {}, oidcIssuer: 'https://idp.example' })).rejects.toThrow(/GATEWAY_OIDC_AUDIENCE/);
    await expect(startGateway({ env: {}, introspectionKeys: ['short'] })).rejects.toThrow(/^introspectionKeys \(GATEWAY_INTROSPECTION_KEYS\)/);
  });

  it('close() drains over drainDelay: /readyz answers 503 while everything is still served', async () => {
    const g = await startGateway({ env: {}, port: 0, logLevel: 'silent', drainDelay: 0.5 });
    expect((await fetch(`${g.httpUrl}/readyz`)).status).toBe(200);
    const closed = g.close();
    expect((await fetch(`${g.httpUrl}/readyz`)).status).toBe(503);
    expect((await fetch(`${g.httpUrl}/healthz`)).status).toBe(200);
    await closed;
    await expect(fetch(`${g.httpUrl}/healthz`)).rejects.toThrow();
  });

  it('options win over env; resolves listening, and close() stops it', async () => {
    const g = await startGateway({ env: { GATEWAY_PORT: '1', GATEWAY_LOG_LEVEL: 'info' }, port: 0, logLevel: 'silent' });
    expect(g.port).toBeGreaterThan(1);
    expect(g.url).toBe(`ws://127.0.0.1:${g.port}/`);
    expect(g.httpUrl).toBe(`http://127.0.0.1:${g.port}`);
    expect((await fetch(`${g.httpUrl}/healthz`)).status).toBe(200);
    await g.close();
    await expect(fetch(`${g.httpUrl}/healthz`)).rejects.toThrow();
  });

  it('an option wins over its variable given as a file (GATEWAY_*_FILE), as a flag does', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'start-file-'));
    try {
      const fileKey = 'Zq3vN8tLw0yXe5bR2uKc9hJd4mPs7gTfA1iWoQ6nVxE=';
      const optionKey = 'Q8hnUYZ3wgk2jJ1ZV0t/dKnrGmBtj0ELCqNM+7z9vZc=';
      writeFileSync(join(dir, 'service_key'), `${fileKey}\n`);
      writeFileSync(join(dir, 'store'), 'redis://127.0.0.1:1/0\n');
      const env = { GATEWAY_SERVICE_KEY_FILE: join(dir, 'service_key'), GATEWAY_STORE_FILE: join(dir, 'store') };
      const g = await startGateway({ env, port: 0, logLevel: 'silent', serviceKey: optionKey, store: 'memory://' });
      const rpc = (key: string) =>
        fetch(`${g.httpUrl}/v1/rpc`, {
          method: 'POST',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          body: '{"type":"init","node_id":"n"}',
        });
      expect((await rpc(optionKey)).status).toBe(200);
      expect((await rpc(fileKey)).status).toBe(401);
      await g.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
