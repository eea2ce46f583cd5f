/**
 * Configuration an operator can see and trust: secrets from files (`*_FILE`), `--version`,
 * `config` (effective configuration, secrets redacted), every flag applied or refused, usage
 * errors on stderr, the start-up line and the warning of a serve without a service key.
 */
import { spawnSync } from 'node:child_process';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { killAll, spawnServer } from '../ws/process.js';
import { SECRET } from './harness.js';

const dir = mkdtempSync(join(tmpdir(), 'gw-config-visible-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(killAll);

const SERVICE_KEY = 'mC0dV6S8oW+T1L3o0J0n9dQxJxSxS1Zb2rGqW8c1m2k=';
const OTHER = 'v3vY0pT7Zr2cC5hH7qW1nN4mM8xX0kK2lL6jJ9gG3fE=';
const LOG_SALT = 'ZD70h+mAsmRzZz73e8Iod045MJmZpEHafuGpTfZkrNc=';
const OTHER_LOG_SALT = 'ntNgPFk08WruuILewc9UwKw5UxrkZr331qbOZiYN4xs=';
const INTROSPECTION_KEYS = ['RrO61ETX0cWyo3X/ZfxyNIq4lSUcrUj4jDPdbw04CEo=', 'tSm3Njb8HhfhiPkuGWz1eZGS7LOiN0VspMT+Q2nMWZc='];

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const cli = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, ['dist/cli.js', ...args], { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 10_000, encoding: 'utf8' });

describe('*_FILE variants of every secret', () => {
  it('reads each from its file (a final newline is not part of it)', () => {
    const c = loadConfig({
      GATEWAY_JWT_SECRETS_FILE: file('secrets', `k1:${SECRET},k0:${OTHER}\n`),
      GATEWAY_SERVICE_KEY_FILE: file('service-key', `${SERVICE_KEY}\n`),
      GATEWAY_STORE_FILE: file('store', 'redis://:hunter2-password@redis:6379/0\n'),
      GATEWAY_LOG_SALT_FILE: file('salt', LOG_SALT),
      GATEWAY_INTROSPECTION_KEYS_FILE: file('introspection-keys', `${INTROSPECTION_KEYS.join(',')}\n`),
    });
    expect(c.introspectionKeys).toEqual(INTROSPECTION_KEYS);
    expect(c.jwtKeys.map((k) => k.kid)).toEqual(['k1', 'k0']);
    expect(c.jwtKeys[0]!.secret.toString()).toBe(SECRET);
    expect(c.serviceKey).toBe(SERVICE_KEY);
    expect(c.store).toBe('redis://:hunter2-password@redis:6379/0');
    expect(c.logSalt).toBe(LOG_SALT);
    expect(loadConfig({ GATEWAY_JWT_SECRET_FILE: file('secret', `${SECRET}\r\n`) }).jwtKeys[0]!.secret.toString()).toBe(SECRET);
  });

  it('refuses both forms, an unreadable file, an empty one, one of several lines and one too long, naming the variable, never the content', () => {
    const cases: [Record<string, string>, RegExp][] = [
      [
        { GATEWAY_JWT_SECRET: SECRET, GATEWAY_JWT_SECRET_FILE: file('s1', SECRET) },
        /^GATEWAY_JWT_SECRET and GATEWAY_JWT_SECRET_FILE: set either one, not both$/,
      ],
      [{ GATEWAY_SERVICE_KEY_FILE: join(dir, 'missing') }, /^GATEWAY_SERVICE_KEY_FILE: cannot read ".*missing" \(ENOENT\)$/],
      [{ GATEWAY_STORE_FILE: file('empty', '\n') }, /^GATEWAY_STORE_FILE: ".*empty" must hold the value on one line$/],
      [{ GATEWAY_JWT_SECRET_FILE: file('two', `${SECRET}\n${OTHER}\n`) }, /^GATEWAY_JWT_SECRET_FILE: ".*two" must hold the value on one line$/],
      // A device that never ends (named for "random bytes") is read no further than a bound.
      [
        { GATEWAY_JWT_SECRET_FILE: '/dev/urandom' },
        /^GATEWAY_JWT_SECRET_FILE: "\/dev\/urandom" holds more than 65536 bytes: it must hold the value on one line$/,
      ],
      [{ GATEWAY_LOG_SALT_FILE: file('long', `${SECRET.repeat(2000)}\n`) }, /^GATEWAY_LOG_SALT_FILE: ".*long" holds more than 65536 bytes/],
      [{ GATEWAY_STORE_FILE: dir }, /^GATEWAY_STORE_FILE: cannot read ".*" \(EISDIR\)$/],
    ];
    for (const [env, message] of cases) {
      let thrown: unknown;
      try {
        loadConfig(env);
      } catch (err) {
        thrown = err;
      }
      expect((thrown as Error).message).toMatch(message);
      expect((thrown as Error).message).not.toContain(SECRET);
    }
  });
});

describe('the CLI (node dist/cli.js; needs npx tsc -p .)', () => {
  it('--version prints the package version', () => {
    const r = cli(['--version']);
    const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`auth-gateway ${version}\n`);
  });

  it('a flag wins over its variable in either form, NAME or NAME_FILE (serve, config and connect alike)', () => {
    const base = { GATEWAY_JWT_SECRET: SECRET };
    const store = cli(['config', '--store', 'memory://'], { ...base, GATEWAY_STORE_FILE: file('store-other', 'redis://redis:6379/0') });
    expect(store.status, store.stderr).toBe(0);
    expect(JSON.parse(store.stdout)).toMatchObject({ store: 'memory://' });
    // A variable that would be refused (a weak key), overruled by the flag's file.
    const key = cli(['config', '--service-key-file', file('service-key-flag', SERVICE_KEY)], { ...base, GATEWAY_SERVICE_KEY: 'weak' });
    expect(key.status, key.stderr).toBe(0);
    const keys = cli(['config', '--introspection-keys-file', file('ik-flag', INTROSPECTION_KEYS.join(','))], { ...base, GATEWAY_INTROSPECTION_KEYS: 'weak' });
    expect(keys.status, keys.stderr).toBe(0);
    // connect: the flag's key is used (a refused connection, exit 1), not a usage error (exit 2).
    const c = cli(['connect', 'ws://127.0.0.1:1/', '--service-key-file', file('connect-key', SERVICE_KEY)], {
      GATEWAY_SERVICE_KEY_FILE: file('connect-other', OTHER),
    });
    expect(c.status, c.stderr).toBe(1);
  });

  it('config prints the effective configuration with every secret redacted', () => {
    const r = cli(['config', '--node-id', 'n7', '--introspection-keys-file', file('keys-flag', INTROSPECTION_KEYS.join(','))], {
      GATEWAY_JWT_SECRETS_FILE: file('secrets2', `k1:${SECRET},k0:${OTHER}`),
      GATEWAY_SERVICE_KEY: SERVICE_KEY,
      GATEWAY_STORE: 'redis://:hunter2-password@redis:6379/0',
      GATEWAY_LOG_SALT: OTHER_LOG_SALT,
    });
    expect(r.status, r.stderr).toBe(0);
    const c = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(c).toMatchObject({
      node_id: 'n7',
      store: 'redis://***@redis:6379/0',
      jwt: { alg: 'HS256', hs256_key_ids: ['k1', 'k0'], hs256_secret: 'set' },
      service_key: 'set',
      introspection_keys: 2,
      log_salt: 'set',
      dev: false,
      drain: { delay_ms: 5000, window_ms: 10000 },
    });
    for (const secret of [SECRET, OTHER, SERVICE_KEY, ...INTROSPECTION_KEYS, 'hunter2-password', OTHER_LOG_SALT]) expect(r.stdout).not.toContain(secret);
  });

  it('config refuses what serve would refuse at start, in one fatal line naming the setting, exit 2', () => {
    const base = { GATEWAY_JWT_SECRET: SECRET };
    const cases: [string[], Record<string, string>, RegExp][] = [
      [[], { GATEWAY_STORE: 'redis://127.0.0.1:6379/16' }, /^GATEWAY_STORE: the Redis database number must be from 0 to 15/],
      [[], { GATEWAY_STORE: 'redis://127.0.0.1:6379?nope=1' }, /^GATEWAY_STORE/],
      [['--fixtures', join(dir, 'no-such-fixtures.json')], {}, /^--fixtures \(GATEWAY_FIXTURES\): cannot read .*no-such-fixtures\.json \(ENOENT\)$/],
      [
        ['--fixtures', file('bad-fixtures.json', '{"sessions":[{"user_id":"u"}]}')],
        {},
        /^--fixtures \(GATEWAY_FIXTURES\): .*bad-fixtures\.json is not a fixture file/,
      ],
      [['--fixtures', '/dev/urandom'], {}, /^--fixtures \(GATEWAY_FIXTURES\): \/dev\/urandom holds more than 67108864 bytes: not a fixture file$/],
      [
        [],
        { GATEWAY_JWT_ALG: 'EdDSA', GATEWAY_JWT_ED25519_KEY: join(dir, 'no-such-key.pem') },
        /^GATEWAY_JWT_ED25519_KEY: cannot read ".*no-such-key\.pem" \(ENOENT\)$/,
      ],
      // A device named by mistake is read no further than a bound.
      [[], { GATEWAY_JWT_ALG: 'EdDSA', GATEWAY_JWT_ED25519_KEY: '/dev/urandom' }, /^GATEWAY_JWT_ED25519_KEY: "\/dev\/urandom" holds more than 1048576 bytes/],
      [
        ['--oidc-issuer', 'https://idp.example', '--oidc-audience', 'gw', '--oidc-jwks', '/dev/urandom'],
        {},
        /^--oidc-jwks \(GATEWAY_OIDC_JWKS\): the file it names holds more than 1048576 bytes: not a JWK Set$/,
      ],
      [[], { OTEL_TRACES_EXPORTER: 'zipkin' }, /^OTEL_TRACES_EXPORTER must be otlp or none/],
      [[], { OTEL_EXPORTER_OTLP_ENDPOINT: 'notaurl' }, /^OTEL_EXPORTER_OTLP_ENDPOINT must be an http or https URL/],
      [[], { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'ftp://collector/v1/traces' }, /^OTEL_EXPORTER_OTLP_TRACES_ENDPOINT must be an http or https URL/],
      [['--host', 'not a host'], {}, /^--host \(GATEWAY_HOST\) must be an IP address or a host name/],
      [[], { GATEWAY_HOST: '-bad.example' }, /^GATEWAY_HOST must be/],
    ];
    for (const [args, env, message] of cases) {
      const r = cli(['config', ...args], { ...base, ...env });
      const what = `${args.join(' ')} ${JSON.stringify(env)}`;
      expect(r.status, what).toBe(2);
      expect(r.stdout, what).toBe('');
      const lines = r.stderr.trimEnd().split('\n');
      expect(lines, what).toHaveLength(1);
      expect((JSON.parse(lines[0]!) as { level: string; msg: string }).level, what).toBe('fatal');
      expect((JSON.parse(lines[0]!) as { msg: string }).msg, what).toMatch(message);
    }
    // What it accepts: addresses and names, an IPv6 address in brackets.
    for (const host of ['0.0.0.0', '::', '[::1]', 'localhost', 'gateway-1.internal']) {
      const r = cli(['config', '--host', host], base);
      expect(r.status, `${host}: ${r.stderr}`).toBe(0);
    }
    expect(JSON.parse(cli(['config', '--host', '[::1]'], base).stdout)).toMatchObject({ lifetimes: { session_max_lifetime: 86_400 } });
    // The metrics address as it was given: an IPv6 address keeps its brackets.
    for (const addr of ['[::1]:9464', '127.0.0.1:9464']) {
      expect((JSON.parse(cli(['config'], { ...base, GATEWAY_METRICS_ADDR: addr }).stdout) as { metrics_addr: string }).metrics_addr, addr).toBe(addr);
    }
  });

  it('serve: an address it cannot listen on stops it with one line naming the setting, exit 2', async () => {
    const holder = await spawnServer({ GATEWAY_JWT_SECRET: SECRET });
    const port = new URL(holder.http).port;
    const taken = cli(['serve'], { GATEWAY_JWT_SECRET: SECRET, GATEWAY_PORT: port });
    expect(taken.status).toBe(2);
    const line = JSON.parse(taken.stderr.trimEnd().split('\n').at(-1)!) as { level: string; msg: string };
    expect(line).toMatchObject({
      level: 'fatal',
      msg: `GATEWAY_HOST, GATEWAY_PORT: cannot listen on 127.0.0.1:${port}: the port is in use (EADDRINUSE)`,
    });
    const unresolved = cli(['serve', '--port', '0'], { GATEWAY_JWT_SECRET: SECRET, GATEWAY_HOST: 'no-such-host.invalid' });
    expect(unresolved.status).toBe(2);
    expect(unresolved.stderr).toMatch(
      /"msg":"GATEWAY_HOST, GATEWAY_PORT: cannot listen on no-such-host\.invalid:0: the host name (does not resolve|did not resolve in time) \((ENOTFOUND|EAI_AGAIN)\)"/,
    );
  });

  it('refuses what it would not apply: flags of another command, extra arguments, --service-key; usage errors on stderr', () => {
    const cases: [string[], RegExp][] = [
      [['serve', '--service-key', SERVICE_KEY], /--service-key is refused/],
      [['stdio', 'extra'], /stdio takes no arguments \(1 given\)/],
      [['serve', 'extra'], /serve takes no arguments/],
      [['connect', 'ws://127.0.0.1:1', 'more'], /connect takes 1 argument, the URL \(2 given\)/],
      [['stdio', '--host', '0.0.0.0'], /--host does not apply to stdio/],
      [['stdio', '--dev'], /--dev does not apply to stdio/],
      [['schema', '--store', 'memory://'], /--store does not apply to schema/],
      [['connect', 'ws://127.0.0.1:1', '--port', '1'], /--port does not apply to connect/],
      [['nope'], /unknown command: the first argument must be serve, stdio, connect, config, schema or openapi/],
      [['serve', '--no-such-flag'], /Unknown option '--no-such-flag'/],
    ];
    for (const [args, message] of cases) {
      const r = cli(args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stdout, args.join(' ')).toBe('');
      expect(r.stderr, args.join(' ')).toMatch(message);
      expect(r.stderr).not.toContain(SERVICE_KEY);
      expect(r.stderr.trimEnd().split('\n'), args.join(' ')).toHaveLength(1);
    }
    // No command at all: the usage, after the one line, still on stderr.
    const none = cli([]);
    expect(none.status).toBe(2);
    expect(none.stdout).toBe('');
    expect(none.stderr).toMatch(/^auth-gateway: a command is needed\nusage: auth-gateway <command>/);
  });

  it('stdio exits soon after its input ends even when the trace collector does not answer', async () => {
    // A collector that takes the connection (the kernel's backlog does) and never answers.
    const silent = createNetServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as AddressInfo;
    const t0 = performance.now();
    const r = spawnSync(process.execPath, ['dist/cli.js', 'stdio'], {
      env: {
        PATH: process.env.PATH ?? '',
        GATEWAY_JWT_SECRET: SECRET,
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
        OTEL_BSP_SCHEDULE_DELAY: '60000',
      },
      input: `${JSON.stringify({ src: 'c', dest: 'gateway', body: { type: 'create_session', msg_id: 1, user_id: 'u' } })}\n`,
      timeout: 20_000,
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('session_created');
    silent.close();
    // Start-up and the one request are well under a second; the flush waits at most 1 s (the
    // exporter alone would wait 10 s).
    expect(performance.now() - t0).toBeLessThan(6000);
  });

  it('stdio: the start-up line comes first, before the secret warning and the fixture lines', () => {
    const r = cli(['stdio', '--fixtures', 'test/fixtures/seed-fixtures.json']);
    expect(r.status, r.stderr).toBe(0);
    const events = r.stderr
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event?: string; level: string });
    expect(events.length).toBeGreaterThan(2);
    expect(events[0]!.event).toBe('starting');
  });

  it('serve: a start-up line first, with what an operator checks, and a warning without a service key', async () => {
    const s = await spawnServer({ GATEWAY_JWT_SECRETS: `k1:${SECRET}`, GATEWAY_NODE_ID: 'node-a', GATEWAY_SERVICE_KEY: undefined });
    const lines = s
      .stderr()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const start = lines[0];
    expect(start?.event).toBe('starting');
    expect(start).toMatchObject({
      level: 'info',
      node: 'node-a',
      version: expect.stringMatching(/^\d+\.\d+\.\d+/),
      node_id: 'node-a',
      store: 'memory://',
      jwt: { alg: 'HS256', hs256_key_ids: ['k1'] },
      lifetimes: { session_ttl: 3600, access_token_ttl: 900, refresh_token_ttl: 1_209_600 },
      limits: { max_message_bytes: 65_536, rate_limit: 100 },
      log_level: 'info',
      service_key: false,
      dev: false,
    });
    expect(lines.some((l) => l.level === 'warn' && String(l.msg).startsWith('no service key'))).toBe(true);
    expect(s.stderr()).not.toContain(SECRET);
  });

  it('serve --service-key-file applies the key (no warning)', async () => {
    const keyFile = file('svc', `${SERVICE_KEY}\n`);
    const s = await spawnServer({ GATEWAY_JWT_SECRET: SECRET, GATEWAY_SERVICE_KEY: undefined }, ['--service-key-file', keyFile]);
    expect(s.stderr()).not.toContain('no service key');
    expect(s.stderr()).toMatch(/"service_key":true/);
  });
});
