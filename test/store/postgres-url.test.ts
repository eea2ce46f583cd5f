import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { ConfigError } from '../../src/errors.js';
import { parsePostgresUrl } from '../../src/store/postgres-url.js';

describe('parsePostgresUrl', () => {
  it('reads the schema, keeps sslmode for the driver, accepts postgresql://', () => {
    expect(parsePostgresUrl('postgres://u:p@db.example:5433/app')).toEqual({ connectionString: 'postgres://u:p@db.example:5433/app', schema: 'auth_gateway' });
    expect(parsePostgresUrl('postgresql://db/app?schema=gw_2&sslmode=verify-full')).toEqual({
      connectionString: 'postgresql://db/app?sslmode=verify-full',
      schema: 'gw_2',
    });
    expect(parsePostgresUrl('postgres://[::1]:5432/app?sslmode=require').connectionString).toBe('postgres://[::1]:5432/app?sslmode=require');
    for (const mode of ['disable', 'prefer', 'require', 'verify-ca', 'verify-full', 'no-verify'])
      expect(parsePostgresUrl(`postgres://db/app?sslmode=${mode}`).connectionString).toBe(`postgres://db/app?sslmode=${mode}`);
    // Reserved words are names like any other: the schema is quoted wherever it is used.
    for (const name of ['user', 'select', 'order', 'analyse']) expect(parsePostgresUrl(`postgres://db/app?schema=${name}`).schema).toBe(name);
  });

  it('refuses bad URLs and options with one line that never repeats the password', () => {
    const bad = [
      'postgres://u:secretpw@host',
      'postgres://u:secretpw@host/',
      'postgres:///app',
      'postgres://u:secretpw@host/app?schema=Bad-Name',
      'postgres://u:secretpw@host/app?schema=1abc',
      'postgres://u:secretpw@host/app?schema=' + 'a'.repeat(49),
      'postgres://u:secretpw@host/app?pool=3',
      // PostgreSQL's own prefix: CREATE SCHEMA would refuse it at every try.
      'postgres://u:secretpw@host/app?schema=pg_sessions',
      'postgres://u:secretpw@host/app?schema=pg_catalog',
      'postgres://u:secretpw@host/app?schema=a&schema=b',
      'postgres://u:secretpw@host/app?sslmode=require&sslmode=disable',
      // A misspelt mode is not a mode: the driver would ignore it and choose for itself.
      'postgres://u:secretpw@host/app?sslmode=disabled',
      'postgres://u:secretpw@host/app?sslmode=verify_full',
      'postgres://u:secretpw@host/app?sslmode=',
      'mysql://u:secretpw@host/app',
    ];
    for (const url of bad) {
      let err: unknown;
      try {
        parsePostgresUrl(url);
      } catch (e) {
        err = e;
      }
      expect(err, url).toBeInstanceOf(ConfigError);
      expect((err as Error).message, url).toMatch(/^GATEWAY_STORE/);
      expect((err as Error).message, url).not.toContain('secretpw');
    }
  });

  it('is checked by loadConfig at start-up', () => {
    const base = { GATEWAY_JWT_SECRET: 'EbftpL9M/MGj6P4MPciMgdS9jjiX/HVX8nKQteiKpb0=' };
    expect(loadConfig({ ...base, GATEWAY_STORE: 'postgres://db/app?schema=gw' }).store).toBe('postgres://db/app?schema=gw');
    expect(() => loadConfig({ ...base, GATEWAY_STORE: 'postgres://db/app?schema=G W' })).toThrow(ConfigError);
    expect(() => loadConfig({ GATEWAY_STORE: 'postgres://db/app' })).toThrow(/shared store/);
  });
});
