/**
 * A setting given but empty is refused, never read as "unset": an empty flag would otherwise
 * silently overrule its variable with the default (`GATEWAY_STORE=redis://… serve --store ''`
 * runs on memory://), and an empty variable is most often one that failed to expand.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { KNOWN_VARIABLES, loadConfig } from '../../src/config.js';
import { startGateway } from '../../src/index.js';
import { SECRET, configRefusal as refusal } from './harness.js';

const base = { GATEWAY_JWT_SECRET: SECRET };

/** The variables of the README's configuration table, with the `_FILE` form of each secret. */
function documentedVariables(): string[] {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const table = readme.slice(readme.indexOf('| variable | meaning | default |'));
  const firstCells = [...table.matchAll(/^\| (`GATEWAY_[^|]*)\|/gm)].map((m) => m[1]!);
  const names = firstCells.flatMap((cell) => [...cell.matchAll(/`(GATEWAY_[A-Z0-9_]+)/g)].map((m) => m[1]!));
  const files = [...readme.matchAll(/`(GATEWAY_[A-Z0-9_]+_FILE)`/g)].map((m) => m[1]!);
  return [...new Set([...names, ...files])];
}

const cli = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, ['dist/cli.js', ...args], { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 10_000, encoding: 'utf8' });

/** Flags standing for variables, and the variable each stands for. */
const FLAGS: [string, string][] = [
  ['--fixtures', 'GATEWAY_FIXTURES'],
  ['--store', 'GATEWAY_STORE'],
  ['--host', 'GATEWAY_HOST'],
  ['--port', 'GATEWAY_PORT'],
  ['--node-id', 'GATEWAY_NODE_ID'],
  ['--log-level', 'GATEWAY_LOG_LEVEL'],
  ['--session-ttl', 'GATEWAY_SESSION_TTL'],
  ['--max-message-bytes', 'GATEWAY_MAX_MESSAGE_BYTES'],
  ['--service-key-file', 'GATEWAY_SERVICE_KEY(_FILE)'],
  ['--oidc-issuer', 'GATEWAY_OIDC_ISSUER'],
  ['--oidc-audience', 'GATEWAY_OIDC_AUDIENCE'],
  ['--oidc-jwks', 'GATEWAY_OIDC_JWKS'],
  ['--introspection-keys-file', 'GATEWAY_INTROSPECTION_KEYS(_FILE)'],
];

describe('a variable set but empty', () => {
  it('is refused for every variable, empty or only whitespace, naming it', () => {
    const names = documentedVariables();
    expect(names.length).toBeGreaterThanOrEqual(50);
    for (const name of names) {
      for (const value of ['', ' ', '\t ']) {
        const label = `${name}=${JSON.stringify(value)}`;
        const expected = /^GATEWAY_JWT_SECRETS?$/.test(name)
          ? `${name} is set but empty: give a key (\`openssl rand -base64 32\`), or unset it for a random key per process`
          : `${name} is set but empty: unset it to use the default`;
        expect(
          refusal(() => loadConfig({ ...base, [name]: value })),
          label,
        ).toBe(expected);
      }
    }
  });

  it('a comma-separated list that lists nothing (only commas: `${A},${B}` with neither set) is refused too, naming it', () => {
    const lists = ['GATEWAY_ALLOWED_ORIGINS', 'GATEWAY_TRUSTED_PROXIES', 'GATEWAY_JWT_ED25519_KEY'];
    for (const name of lists) {
      for (const value of [',', ' , ', ',,']) {
        expect(
          refusal(() => loadConfig({ ...base, GATEWAY_JWT_ALG: 'EdDSA', [name]: value })),
          `${name}=${JSON.stringify(value)}`,
        ).toBe(`${name} is set but lists nothing (only commas): unset it to use the default`);
      }
    }
    // An empty item beside others is left out, as before.
    expect(loadConfig({ ...base, GATEWAY_ALLOWED_ORIGINS: 'https://a.example.com,,https://b.example.com' }).allowedOrigins).toEqual([
      'https://a.example.com',
      'https://b.example.com',
    ]);
  });

  it('the variables checked are those of the README', () => {
    expect([...KNOWN_VARIABLES].sort()).toEqual(documentedVariables().sort());
  });

  it('an unset variable still means the default', () => {
    expect(loadConfig({ ...base, GATEWAY_STORE: undefined, GATEWAY_PORT: undefined })).toMatchObject({ store: 'memory://', port: 8080 });
  });

  it('serve and config stop with one fatal line, exit 2; connect with one usage line', () => {
    const r = cli(['config'], { ...base, GATEWAY_STORE: '' });
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 'fatal', msg: 'GATEWAY_STORE is set but empty: unset it to use the default' });
    const c = cli(['connect', 'ws://127.0.0.1:1/'], { GATEWAY_SERVICE_KEY: '' });
    expect(c.status).toBe(2);
    expect(c.stderr).toBe('auth-gateway: GATEWAY_SERVICE_KEY is set but empty: unset it to use the default\n');
  });

  it('startGateway: dev: false is not an empty GATEWAY_DEV', async () => {
    const g = await startGateway({ env: {}, port: 0, logLevel: 'silent', dev: false });
    await g.close();
  });
});

describe('a flag given an empty value', () => {
  it('is refused for every flag, even over a variable that is set, naming the flag (one fatal line, exit 2)', () => {
    for (const [flag, variable] of FLAGS) {
      for (const value of ['', '  ']) {
        const r = cli(['config', flag, value], { ...base, GATEWAY_STORE: 'redis://127.0.0.1:6390', GATEWAY_PORT: '9000', GATEWAY_NODE_ID: 'gw-7' });
        const label = `${flag} ${JSON.stringify(value)}`;
        expect(r.status, label).toBe(2);
        expect(r.stdout, label).toBe('');
        const lines = r.stderr.trimEnd().split('\n');
        expect(lines, label).toHaveLength(1);
        expect(JSON.parse(lines[0]!), label).toMatchObject({
          level: 'fatal',
          msg: `${flag} is given but empty: leave it out to use ${variable} or the default`,
        });
      }
    }
  }, 60_000);

  it('connect --service-key-file "": one usage line, exit 2', () => {
    const r = cli(['connect', 'ws://127.0.0.1:1/', '--service-key-file', ''], { GATEWAY_SERVICE_KEY: SECRET });
    expect(r.status).toBe(2);
    expect(r.stderr).toBe('auth-gateway: --service-key-file is given but empty: leave it out to use GATEWAY_SERVICE_KEY(_FILE) or the default\n');
  });
});
