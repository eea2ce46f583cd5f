/**
 * Settings that may hold a credential (a store URL, the IdP's JWK Set, the trace collector's
 * endpoint) are never quoted in a start-up error, however malformed: masking a password
 * depends on finding it, and a URL missing its `//` or with a `/` in the password hides it
 * from any mask. The error names the setting and says what is wrong.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { checkTracingEnv } from '../../src/tracing.js';
import { SECRET, configRefusal as refusal } from './harness.js';

const PW = 'Sup3rS3cretPassw0rd';
const base = { GATEWAY_JWT_SECRET: SECRET };
const dir = mkdtempSync(join(tmpdir(), 'gw-no-echo-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const STORE = 'GATEWAY_STORE must be a memory://, redis://, rediss://, postgres:// or postgresql:// URL (the value is not repeated: it may hold a password)';

describe('a malformed value that may hold a credential is not quoted back', () => {
  it('GATEWAY_STORE without its //, without a scheme, or of another scheme', () => {
    for (const url of [`redis:/:${PW}@redis:6379/0`, `:${PW}@redis:6379`, `gw:${PW}@db:5432/app`, `postgres:gw:${PW}@db/app`, `mysql://gw:pa/${PW}@db/x`]) {
      expect(
        refusal(() => loadConfig({ ...base, GATEWAY_STORE: url })),
        url,
      ).toBe(STORE);
    }
  });

  it('GATEWAY_STORE_FILE holding such a URL', () => {
    const file = join(dir, 'store');
    writeFileSync(file, `redis:/:${PW}@redis:6379/0\n`);
    expect(refusal(() => loadConfig({ ...base, GATEWAY_STORE_FILE: file }))).toBe(STORE);
  });

  it('GATEWAY_STORE: an option of the query that is not known is not quoted (a password cut at its ? lands there)', () => {
    expect(refusal(() => loadConfig({ ...base, GATEWAY_STORE: `redis://gw:1234?${PW}@redis:6379` }))).toBe(
      'GATEWAY_STORE: the URL has an option that is not known (known: namespace, cluster)',
    );
    expect(refusal(() => loadConfig({ ...base, GATEWAY_STORE: `postgres://gw@db/app?${PW}=1` }))).toBe(
      'GATEWAY_STORE: the URL has an option that is not known (known: schema, sslmode, sslrootcert, sslcert, sslkey, application_name)',
    );
    // A known option given twice is still named: it is one of a fixed set of words.
    expect(refusal(() => loadConfig({ ...base, GATEWAY_STORE: 'postgres://gw@db/app?schema=a&schema=b' }))).toBe(
      'GATEWAY_STORE: option "schema" is given more than once',
    );
  });

  it('GATEWAY_OIDC_JWKS: a scheme without //, and a file that cannot be read, are not quoted', () => {
    const oidc = { ...base, GATEWAY_OIDC_ISSUER: 'https://idp', GATEWAY_OIDC_AUDIENCE: 'a' };
    for (const jwks of [`https:/admin:${PW}@idp/jwks`, `admin:${PW}@idp/jwks`, `ftp://admin:${PW}@idp/jwks`]) {
      expect(
        refusal(() => loadConfig({ ...oidc, GATEWAY_OIDC_JWKS: jwks })),
        jwks,
      ).toBe('GATEWAY_OIDC_JWKS must be an https or http URL, or a file path (the value is not repeated: it may hold a password)');
    }
    expect(refusal(() => loadConfig({ ...oidc, GATEWAY_OIDC_JWKS: `//admin:${PW}@idp/jwks` }))).toBe(
      'GATEWAY_OIDC_JWKS: cannot read the file it names (ENOENT)',
    );
  });

  it('OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', () => {
    for (const name of ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT']) {
      for (const value of [`admin:${PW}@collector:4318`, `ftp://admin:${PW}@collector`, `collector:${PW}`]) {
        expect(
          refusal(() => checkTracingEnv({ [name]: value })),
          `${name}=${value}`,
        ).toBe(`${name} must be an http or https URL, e.g. http://collector:4318 (the value is not repeated: it may hold a password)`);
      }
      // Well formed, with credentials: refused too (the exporter's errors may quote its URL).
      for (const value of [`https://admin:${PW}@collector:4318`, `http://${PW}@collector:4318/v1/traces`]) {
        expect(
          refusal(() => checkTracingEnv({ [name]: value })),
          `${name}=${value}`,
        ).toBe(`${name} must not hold a user name or password: give the collector's credentials in OTEL_EXPORTER_OTLP_HEADERS`);
      }
      expect(() => checkTracingEnv({ [name]: 'https://collector:4318' })).not.toThrow();
    }
  });

  it('from the CLI: one fatal line, exit 2, no password on stderr or stdout', () => {
    for (const env of [{ GATEWAY_STORE: `redis:/:${PW}@redis:6379/0` }, { OTEL_EXPORTER_OTLP_ENDPOINT: `admin:${PW}@collector:4318` }]) {
      const r = spawnSync(process.execPath, ['dist/cli.js', 'config'], {
        env: { PATH: process.env.PATH ?? '', ...base, ...env },
        timeout: 10_000,
        encoding: 'utf8',
      });
      const label = JSON.stringify(env);
      expect(r.status, label).toBe(2);
      expect(r.stdout, label).toBe('');
      const lines = r.stderr.trimEnd().split('\n');
      expect(lines, label).toHaveLength(1);
      expect((JSON.parse(lines[0]!) as { level: string }).level, label).toBe('fatal');
      expect(r.stderr, label).not.toContain(PW);
    }
  });

  it('other settings quote a bad value with whatever stands before an @ masked, and no password= option', () => {
    const cases: [Record<string, string>, string][] = [
      [
        { GATEWAY_ALLOWED_ORIGINS: `https://admin:${PW}@app.example.com` },
        'GATEWAY_ALLOWED_ORIGINS must list bare origins, no path (got "https://***@app.example.com")',
      ],
      [
        { GATEWAY_ALLOWED_ORIGINS: `https://ok.example.com,admin:${PW}@app.example.com` },
        'GATEWAY_ALLOWED_ORIGINS must list bare origins, no path (got "***@app.example.com")',
      ],
      [
        { GATEWAY_ALLOWED_ORIGINS: `https://app.example.com/?password=${PW}` },
        'GATEWAY_ALLOWED_ORIGINS must list bare origins, no path (got "https://app.example.com/?password=***")',
      ],
      [
        { GATEWAY_TRUSTED_PROXIES: `admin:${PW}@10.0.0.1` },
        'GATEWAY_TRUSTED_PROXIES must list addresses or CIDR ranges like 10.0.0.0/8 or ::1 (got "***@10.0.0.1")',
      ],
      [{ GATEWAY_HOST: `a:${PW}@b` }, 'GATEWAY_HOST must be an IP address or a host name, e.g. 127.0.0.1, :: or localhost (got "***@b")'],
    ];
    for (const [env, text] of cases)
      expect(
        refusal(() => loadConfig({ ...base, ...env })),
        JSON.stringify(env),
      ).toBe(text);
  });
});
