import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.js';
import { ManualClock } from '../../src/clock.js';
import { loadConfig, redactUrl } from '../../src/config.js';
import { ConfigError } from '../../src/errors.js';
import { readFixtures } from '../../src/fixtures.js';
import { silentLogger } from '../../src/log.js';
import { createMemoryStore } from '../../src/store/memory.js';
import { failingStore } from '../helpers/failing-store.js';
import { SECRET } from './harness.js';

const INTROSPECTION_KEY = 'RrO61ETX0cWyo3X/ZfxyNIq4lSUcrUj4jDPdbw04CEo=';
const OTHER_INTROSPECTION_KEY = 'tSm3Njb8HhfhiPkuGWz1eZGS7LOiN0VspMT+Q2nMWZc=';

/** Bad values per variable; each must be refused with one line that starts with the variable's name. */
const BAD: Record<string, string[]> = {
  GATEWAY_SESSION_TTL: ['0', '-1', 'abc', '1.5', '1e3', '0x10', '31536001', '99999999999999999999', '5\nGATEWAY_X=1'],
  GATEWAY_SESSION_IDLE_TIMEOUT: ['-1', 'off', '2.5', '31536001'],
  GATEWAY_ACCESS_TOKEN_TTL: ['0', '86401', 'ten'],
  GATEWAY_REFRESH_TOKEN_TTL: ['0', '31536001', '14d'],
  GATEWAY_CLOCK_TOLERANCE: ['-1', '301', 'x'],
  GATEWAY_MAX_MESSAGE_BYTES: ['255', '16777217', '64k'],
  GATEWAY_PORT: ['-1', '65536', 'http'],
  GATEWAY_EXPIRY_WARNING: ['-5', '86401'],
  GATEWAY_RATE_LIMIT: ['0', 'many'],
  GATEWAY_MAX_BUFFERED_BYTES: ['1023'],
  GATEWAY_MAX_IN_FLIGHT: ['0'],
  GATEWAY_MAX_SUBSCRIPTIONS: ['0'],
  GATEWAY_RATE_LIMIT_BYTES: ['1023', '1MB'],
  GATEWAY_MALFORMED_LIMIT: ['0', 'x'],
  GATEWAY_MAX_SUBSCRIBERS_PER_SESSION: ['0', '-1'],
  GATEWAY_MAX_CONNECTIONS_PER_ADDRESS: ['0', 'lots'],
  GATEWAY_TRUSTED_PROXIES: ['proxy.example', '10.0.0.0/33', '::1/129', '10.0.0.1/8/2', '10.0.0.300'],
  GATEWAY_METRICS_ADDR: ['9464', 'localhost', '127.0.0.1:99999', ':9464', '[::1]'],
  GATEWAY_STORE_TIMEOUT_MS: ['9', '60001'],
  GATEWAY_HEARTBEAT_INTERVAL: ['0', '3601', '1.5', 'often'],
  GATEWAY_LOG_LEVEL: ['verbose', 'INFO', 'warn\nx'],
  GATEWAY_NODE_ID: ['has space', 'x'.repeat(129), 'a/b'],
  GATEWAY_STORE: ['mysql://x', 'redis://', 'memory', 'redis://a\nb'],
  GATEWAY_SESSION_COOKIE: ['a b', 'x;y', 'x'.repeat(65)],
  GATEWAY_SERVICE_KEY: ['short', 'aaaaaaaaaaaaaaaa', 'service-key-for-tests-0123456789'],
  GATEWAY_INTROSPECTION_KEYS: [
    'short',
    'service-key-for-tests-0123456789',
    `${INTROSPECTION_KEY},`,
    `${INTROSPECTION_KEY},${INTROSPECTION_KEY}`,
    `${INTROSPECTION_KEY},aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa`,
  ],
  GATEWAY_ALLOWED_ORIGINS: ['not a url', 'https://a.example.com/path'],
  GATEWAY_JWT_SECRET: ['short', 'a'.repeat(40), 'changeme'],
  GATEWAY_JWT_ALG: ['RS256', 'none'],
  GATEWAY_DEV: ['yes', 'on', '2'],
  GATEWAY_LOG_SALT: ['a-shared-salt', 'security-suite', 'x'.repeat(44)],
};

const base = { GATEWAY_JWT_SECRET: SECRET };

describe('loadConfig', () => {
  it('defaults match docs/protocol.md', () => {
    const c = loadConfig(base);
    expect(c).toMatchObject({
      nodeId: 'gateway',
      sessionTtl: 3600,
      sessionIdleTimeout: 0,
      accessTokenTtl: 900,
      refreshTokenTtl: 1_209_600,
      maxMessageBytes: 65_536,
      logLevel: 'info',
      host: '127.0.0.1',
      port: 8080,
      store: 'memory://',
      sessionCookie: 'sid',
      expiryWarning: 60,
      heartbeatInterval: 30,
      jwtSecretGenerated: false,
      dev: false,
    });
    expect(c.jwtKeys[0]!.secret.toString()).toBe(SECRET);
  });

  it('abuse limits: defaults, and proxies and the metrics address as written', () => {
    const d = loadConfig(base);
    expect(d).toMatchObject({
      rateLimitBytes: 262_144,
      malformedLimit: 30,
      maxSubscribersPerSession: 1000,
      maxConnectionsPerAddress: 256,
      sessionCookieHostPrefix: true,
    });
    expect(d.trustedProxies).toBeUndefined();
    expect(d.metricsAddr).toBeUndefined();
    const c = loadConfig({
      ...base,
      GATEWAY_TRUSTED_PROXIES: '10.0.0.0/8, 192.168.1.7,fd00::/8',
      GATEWAY_METRICS_ADDR: '[::1]:9464',
      GATEWAY_SESSION_COOKIE: 'sid',
    });
    expect(c.trustedProxies!.check('10.9.8.7', 'ipv4')).toBe(true);
    expect(c.trustedProxies!.check('192.168.1.8', 'ipv4')).toBe(false);
    expect(c.trustedProxies!.check('fd00::1', 'ipv6')).toBe(true);
    expect(c.metricsAddr).toEqual({ host: '::1', port: 9464 });
    expect(c.sessionCookieHostPrefix).toBe(false);
  });

  it('reads good values (a number may have spaces around it)', () => {
    const c = loadConfig({
      ...base,
      GATEWAY_SESSION_TTL: ' 120 ',
      GATEWAY_SESSION_IDLE_TIMEOUT: '30',
      GATEWAY_NODE_ID: 'n1',
      GATEWAY_DEV: 'true',
      GATEWAY_LOG_LEVEL: 'silent',
    });
    expect(c).toMatchObject({ sessionTtl: 120, sessionIdleTimeout: 30, nodeId: 'n1', accessTokenTtl: 900, dev: true, logLevel: 'silent' });
    expect(loadConfig({ ...base, GATEWAY_DEV: '0' }).dev).toBe(false);
  });

  it('GATEWAY_INTROSPECTION_KEYS: none by default; a list of keys, spaces around commas allowed; never the service key', () => {
    expect(loadConfig(base).introspectionKeys).toEqual([]);
    const keys = `${INTROSPECTION_KEY}, ${OTHER_INTROSPECTION_KEY}`;
    expect(loadConfig({ ...base, GATEWAY_INTROSPECTION_KEYS: keys }).introspectionKeys).toEqual([INTROSPECTION_KEY, OTHER_INTROSPECTION_KEY]);
    const same = () => loadConfig({ ...base, GATEWAY_SERVICE_KEY: OTHER_INTROSPECTION_KEY, GATEWAY_INTROSPECTION_KEYS: keys });
    expect(same).toThrow('GATEWAY_INTROSPECTION_KEYS (key 2) is GATEWAY_SERVICE_KEY: give resource servers keys of their own');
    expect(() => loadConfig({ ...base, GATEWAY_INTROSPECTION_KEYS: `${INTROSPECTION_KEY},${INTROSPECTION_KEY}` })).toThrow(
      'GATEWAY_INTROSPECTION_KEYS (key 2) repeats key 1',
    );
  });

  it('a key given for two roles (signing secret, service key, introspection key, log salt) is refused, naming both, never the key', () => {
    const s = SECRET;
    const cases: [Record<string, string>, string][] = [
      [{ GATEWAY_JWT_SECRET: s, GATEWAY_SERVICE_KEY: s }, 'GATEWAY_SERVICE_KEY is the same key as GATEWAY_JWT_SECRET'],
      [
        { GATEWAY_JWT_SECRETS: `old:${INTROSPECTION_KEY},new:${s}`, GATEWAY_SERVICE_KEY: s },
        'GATEWAY_SERVICE_KEY is the same key as GATEWAY_JWT_SECRETS (kid "new")',
      ],
      [
        { GATEWAY_JWT_SECRET: s, GATEWAY_INTROSPECTION_KEYS: `${INTROSPECTION_KEY},${s}` },
        'GATEWAY_INTROSPECTION_KEYS (key 2) is the same key as GATEWAY_JWT_SECRET',
      ],
      [{ GATEWAY_JWT_SECRET: s, GATEWAY_LOG_SALT: s }, 'GATEWAY_LOG_SALT is the same key as GATEWAY_JWT_SECRET'],
      [
        { GATEWAY_JWT_SECRET: s, GATEWAY_SERVICE_KEY: INTROSPECTION_KEY, GATEWAY_LOG_SALT: INTROSPECTION_KEY },
        'GATEWAY_LOG_SALT is the same key as GATEWAY_SERVICE_KEY',
      ],
    ];
    for (const [vars, message] of cases) {
      const env = { ...base, GATEWAY_JWT_SECRET: undefined, ...vars };
      let err: unknown;
      try {
        loadConfig(env);
      } catch (e) {
        err = e;
      }
      expect(err, message).toBeInstanceOf(ConfigError);
      expect((err as Error).message, message).toBe(`${message}: give each role a key of its own (\`openssl rand -base64 32\`)`);
      expect((err as Error).message).not.toContain(s);
    }
    // Two kids of one secret stay allowed: renaming a kid keeps its key.
    expect(loadConfig({ ...base, GATEWAY_JWT_SECRET: undefined, GATEWAY_JWT_SECRETS: `a:${s},b:${s}` }).jwtKeys).toHaveLength(2);
  });

  it('--dev warns 10 s before the end (the demo session lasts 30 s) unless GATEWAY_EXPIRY_WARNING says otherwise', () => {
    expect(loadConfig({ ...base }).expiryWarning).toBe(60);
    expect(loadConfig({ ...base, GATEWAY_DEV: '1' }).expiryWarning).toBe(10);
    expect(loadConfig({ ...base, GATEWAY_DEV: '1', GATEWAY_EXPIRY_WARNING: '45' }).expiryWarning).toBe(45);
  });

  it('without a secret: a random 32-byte one, flagged so that start-up warns', () => {
    const a = loadConfig({});
    const b = loadConfig({});
    expect(a.jwtSecretGenerated).toBe(true);
    expect(a.jwtKeys[0]!.secret).toHaveLength(32);
    expect(a.jwtKeys[0]!.secret.equals(b.jwtKeys[0]!.secret)).toBe(false);
  });

  it('each bad value is refused with one line naming the variable, never echoing a secret', () => {
    let n = 0;
    for (const [name, values] of Object.entries(BAD)) {
      for (const value of values) {
        let err: unknown;
        try {
          loadConfig({ ...base, [name]: value });
        } catch (e) {
          err = e;
        }
        const label = `${name}=${JSON.stringify(value)}`;
        expect(err, label).toBeInstanceOf(ConfigError);
        const msg = (err as Error).message;
        expect(msg.startsWith(name), `${label}: ${msg}`).toBe(true);
        expect(msg, label).not.toContain('\n');
        expect(msg.length, label).toBeLessThan(300);
        // A secret's value never shows in its error (other values may be quoted).
        expect((name.includes('SECRET') || name.includes('KEY') || name.includes('SALT')) && msg.includes(value), label).toBe(false);
        n++;
      }
    }
    expect(n).toBeGreaterThan(50);
  });
});

/** Every whole-number setting with its range: a value just outside it is refused with a line that gives the range. */
const RANGES: Record<string, [number, number]> = {
  GATEWAY_SESSION_TTL: [1, 31_536_000],
  GATEWAY_SESSION_IDLE_TIMEOUT: [0, 31_536_000],
  GATEWAY_SESSION_MAX_LIFETIME: [0, 31_536_000],
  GATEWAY_ACCESS_TOKEN_TTL: [1, 86_400],
  GATEWAY_REFRESH_TOKEN_TTL: [1, 31_536_000],
  GATEWAY_CLOCK_TOLERANCE: [0, 300],
  GATEWAY_MAX_MESSAGE_BYTES: [256, 16_777_216],
  GATEWAY_PORT: [0, 65_535],
  GATEWAY_EXPIRY_WARNING: [0, 86_400],
  GATEWAY_RATE_LIMIT: [1, 1_000_000],
  GATEWAY_RATE_LIMIT_BYTES: [1024, 1_073_741_824],
  GATEWAY_MALFORMED_LIMIT: [1, 1_000_000],
  GATEWAY_MAX_SUBSCRIBERS_PER_SESSION: [1, 10_000_000],
  GATEWAY_MAX_CONNECTIONS_PER_ADDRESS: [1, 10_000_000],
  GATEWAY_FAILED_AUTH_LIMIT: [1, 1_000_000],
  GATEWAY_EXCHANGE_LIMIT: [1, 1_000_000],
  GATEWAY_MAX_BUFFERED_BYTES: [1024, 1_073_741_824],
  GATEWAY_MAX_IN_FLIGHT: [1, 1_000_000],
  GATEWAY_MAX_SUBSCRIPTIONS: [1, 10_000_000],
  GATEWAY_STORE_TIMEOUT_MS: [10, 60_000],
  GATEWAY_HEARTBEAT_INTERVAL: [1, 3600],
};

describe('a whole number out of range', () => {
  it('is refused with a line that gives the range', () => {
    for (const [name, [min, max]] of Object.entries(RANGES)) {
      for (const value of [String(max + 1), ...(min > 0 ? [String(min - 1)] : [])]) {
        let err: unknown;
        try {
          loadConfig({ ...base, [name]: value });
        } catch (e) {
          err = e;
        }
        const label = `${name}=${value}`;
        expect(err, label).toBeInstanceOf(ConfigError);
        const msg = (err as Error).message;
        expect(msg, label).toContain(`from ${min}`);
        expect(msg, label).toContain(`to ${max}`);
      }
    }
  });
});

/** Weak 32-byte secrets that once started the gateway; a short dictionary recovers each from one token. */
const WEAK_KEYS = [
  '12345678901234567890123456789012',
  'abcdefghijklmnopqrstuvwxyz123456',
  'Password123!Password123!Password',
  '0123456789abcdef0123456789abcdef',
  'your-256-bit-secretyour-256-bit-secret',
];

describe('an empty JWT secret', () => {
  it('is refused with a line that says so, not taken as unset (a secret that failed to expand)', () => {
    expect(() => loadConfig({ GATEWAY_JWT_SECRET: '' })).toThrow(/^GATEWAY_JWT_SECRET is set but empty: /);
    expect(() => loadConfig({ GATEWAY_JWT_SECRETS: '' })).toThrow(/^GATEWAY_JWT_SECRETS is set but empty: /);
    expect(loadConfig({}).jwtKeys).toHaveLength(1);
  });
});

describe('GATEWAY_LOG_SALT', () => {
  it('is a key like the others: a short or typed salt would let a reader of the logs recompute the reference of a guessed id', () => {
    const cases: [string, string][] = [
      ['a', 'GATEWAY_LOG_SALT must be random bytes encoded as base64, base64url or hex; make one with `openssl rand -base64 32`'],
      [randomBytes(16).toString('base64'), 'GATEWAY_LOG_SALT must encode at least 32 random bytes (got 16); make one with `openssl rand -base64 32`'],
      ['a'.repeat(64), 'GATEWAY_LOG_SALT does not look random (repeats, runs or a single letter case); make one with `openssl rand -base64 32`'],
    ];
    for (const [salt, message] of cases) expect(() => loadConfig({ ...base, GATEWAY_LOG_SALT: salt }), salt).toThrow(new ConfigError(message));
    const salt = randomBytes(32).toString('base64');
    expect(loadConfig({ ...base, GATEWAY_LOG_SALT: salt }).logSalt).toBe(salt);
    expect(loadConfig(base).logSalt).toBeUndefined();
  });
});

describe('redactUrl', () => {
  it('hides the whole password, an unescaped @ in it included, and any option named as a secret (password, token, key, signature, auth)', () => {
    const cases: [string, string][] = [
      ['postgres://gw:Sup3r@Secret@db:5432/app', 'postgres://***@db:5432/app'],
      ['redis://:p@ss@w0rd@redis:6379/0', 'redis://***@redis:6379/0'],
      ['redis://u:p@h1:6379,redis://u:q@h2:6379', 'redis://***@h1:6379,redis://***@h2:6379'],
      ['postgres://db/app?sslmode=require&password=Hunter2&x=1', 'postgres://db/app?sslmode=require&password=***&x=1'],
      ['postgres://gw@db/app?schema=a@b', 'postgres://***@db/app?schema=a@b'],
      ['memory://', 'memory://'],
      ['postgres://db/app?sslmode=verify-full&sslpassword=Hunter2&schema=gw', 'postgres://db/app?sslmode=verify-full&sslpassword=***&schema=gw'],
      ['https://idp/jwks?access_token=T0k3n&tenant=a', 'https://idp/jwks?access_token=***&tenant=a'],
      ['https://idp/jwks?tenant=a&api_key=K3y&sig=S1g', 'https://idp/jwks?tenant=a&api_key=***&sig=***'],
      ['https://idp/jwks?X-Auth=a%20b&Secret=c d', 'https://idp/jwks?X-Auth=***&Secret=***'],
    ];
    for (const [url, shown] of cases) expect(redactUrl(url)).toBe(shown);
  });
});

describe('key strength: only encoded random bytes are keys', () => {
  const weakLongerOnes = [
    'a'.repeat(44),
    '0123456789abcdef'.repeat(4), // hex of 32 bytes, but a repeated pattern
    Buffer.from(Array.from({ length: 32 }, (_, i) => i)).toString('hex'), // 00 01 02 ... 1f
    'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/', // the alphabet, in order
    'thequickbrownfoxjumpsoverthelazydogsthequick', // base64-shaped, one letter case
    Buffer.from('Password123!'.repeat(4)).toString('base64'), // a password, encoded
    'AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow', // RFC 7515 A.1
  ];

  it('refuses five weak 32-byte secrets and longer patterned ones, alone, in GATEWAY_JWT_SECRETS and as the service key', () => {
    for (const key of [...WEAK_KEYS, ...weakLongerOnes]) {
      for (const [name, env] of [
        ['GATEWAY_JWT_SECRET', { GATEWAY_JWT_SECRET: key }],
        ['GATEWAY_JWT_SECRETS (kid "k2")', { GATEWAY_JWT_SECRETS: `k1:${SECRET},k2:${key}` }],
        ['GATEWAY_SERVICE_KEY', { ...base, GATEWAY_SERVICE_KEY: key }],
      ] as const) {
        expect(() => loadConfig(env), `${name} = ${key}`).toThrow(ConfigError);
        try {
          loadConfig(env);
        } catch (err) {
          const msg = (err as Error).message;
          expect(msg.startsWith(name), msg).toBe(true);
          expect(msg).toContain('openssl rand -base64 32');
          expect(msg).not.toContain(key);
        }
      }
    }
  });

  it('refuses the published RFC 7515 A.1 key in every spelling a key may have, naming the variable only', () => {
    const a1 = Buffer.from('AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow', 'base64url');
    for (const key of [a1.toString('base64url'), a1.toString('base64'), a1.toString('hex'), a1.toString('hex').toUpperCase()]) {
      for (const [name, env] of [
        ['GATEWAY_JWT_SECRET', { GATEWAY_JWT_SECRET: key }],
        ['GATEWAY_JWT_SECRETS (kid "k2")', { GATEWAY_JWT_SECRETS: `k1:${SECRET},k2:${key}` }],
        ['GATEWAY_SERVICE_KEY', { ...base, GATEWAY_SERVICE_KEY: key }],
      ] as const) {
        expect(() => loadConfig(env), `${name} = ${key}`).toThrow(
          new ConfigError(`${name} is a published example key; make one with \`openssl rand -base64 32\``),
        );
      }
    }
  });

  it('accepts what openssl rand prints: base64 (with padding), base64url, hex; the text itself is the HMAC key', () => {
    for (let i = 0; i < 200; i++) {
      const forms = (b: Buffer) => [b.toString('base64'), b.toString('base64url'), b.toString('hex'), b.toString('hex').toUpperCase()];
      const keys = forms(randomBytes(32 + (i % 33)));
      // The service key in the same form, of other bytes: one key may not serve two roles.
      const serviceKeys = forms(randomBytes(32 + (i % 33)));
      keys.forEach((key, j) => {
        const c = loadConfig({ GATEWAY_JWT_SECRET: key, GATEWAY_SERVICE_KEY: serviceKeys[j] });
        expect(c.jwtKeys[0]!.secret.toString('utf8')).toBe(key);
      });
    }
  });

  it('refuses what is not canonical or too short: 31 bytes, padding where none belongs, mixed alphabets', () => {
    // A key whose base64 has a '/' (so its base64url has a '_'): each variant below is refused for its form alone.
    const b = Buffer.from('oFWXWQop1TftbO4wWYj8haVrM69E1zFv/fZ17u8oF0E=', 'base64');
    for (const key of [
      randomBytes(31).toString('base64'),
      `${b.toString('base64url')}=`,
      `${b.toString('base64').slice(0, -1)}`,
      `${b.toString('hex')}0`,
      `${b.toString('base64').replace(/=$/, '')}-_`,
    ]) {
      expect(() => loadConfig({ GATEWAY_JWT_SECRET: key }), key).toThrow(/^GATEWAY_JWT_SECRET must /);
    }
  });
});

describe('start-up (node dist/cli.js; needs npx tsc -p .)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-config-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const run = (env: Record<string, string>, args: string[] = ['stdio'], input = '') =>
    spawnSync(process.execPath, ['dist/cli.js', ...args], { env: { PATH: process.env.PATH ?? '', ...env }, input, timeout: 10_000, encoding: 'utf8' });

  it('a bad configuration: non-zero exit, exactly one line on stderr naming the variable, nothing on stdout', () => {
    for (const [name, value] of [
      ['GATEWAY_SESSION_TTL', 'abc'],
      ['GATEWAY_SESSION_IDLE_TIMEOUT', '-3'],
      ['GATEWAY_JWT_SECRET', 'too-short'],
      ['GATEWAY_LOG_LEVEL', 'loud\nsecond line'],
      ['GATEWAY_MAX_MESSAGE_BYTES', '1'],
      ['GATEWAY_DEV', 'yes'],
    ] as const) {
      const r = run({ ...base, [name]: value });
      const label = `${name}=${JSON.stringify(value)}`;
      expect(r.status, label).not.toBe(0);
      expect(r.status, label).not.toBeNull();
      expect(r.stdout, label).toBe('');
      const lines = r.stderr.trimEnd().split('\n');
      expect(lines, `${label}: ${r.stderr}`).toHaveLength(1);
      expect(lines[0], label).toContain(name);
      expect(lines[0], label).not.toMatch(/at .*\.js:\d+/); // no stack trace
    }
  });

  it('fixtures: a seeded session validates; a bad file stops start-up with one line', () => {
    const good = join(dir, 'good.json');
    writeFileSync(
      good,
      JSON.stringify({
        sessions: [
          { session_id: 'abc123', user_id: 'user123', ttl: 3600, data: { a: 1 } },
          { session_id: 'def', user_id: 'u2' },
        ],
      }),
    );
    const req = (id: number, sid: string) => JSON.stringify({ src: 'c', dest: 'gateway', body: { type: 'validate_session', msg_id: id, session_id: sid } });
    const r = run({ ...base, GATEWAY_FIXTURES: good, GATEWAY_SESSION_TTL: '60' }, ['stdio'], `${req(1, 'abc123')}\n${req(2, 'def')}\n`);
    expect(r.status).toBe(0);
    const replies = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).body);
    // expires_in counts from start-up: allow one second for a loaded machine.
    expect(replies).toEqual([
      { type: 'session_valid', in_reply_to: 1, user_id: 'user123', expires_in: expect.toSatisfy((n: number) => n === 3600 || n === 3599), data: { a: 1 } },
      { type: 'session_valid', in_reply_to: 2, user_id: 'u2', expires_in: expect.toSatisfy((n: number) => n === 60 || n === 59) },
    ]);
    expect(r.stderr).toMatch(/FIXTURES LOADED/);
    // The flag does the same.
    const f = run(base, ['stdio', '--fixtures', good], `${req(1, 'abc123')}\n`);
    expect(JSON.parse(f.stdout).body.type).toBe('session_valid');

    const deep = (levels: number) => `${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`;
    const bad: [string, string, string?][] = [
      ['missing.json', ''],
      ['notjson.json', '{nope'],
      ['shape.json', '{"sessions":[{"session_id":"a"}]}'],
      ['ttl.json', '{"sessions":[{"session_id":"a","user_id":"u","ttl":0}]}'],
      ['array.json', '[]'],
      ['surrogate.json', '{"sessions":[{"session_id":"a","user_id":"alice\\ud800"}]}'],
      // 257 characters (each two UTF-16 units): one too many, as for create_session.
      ['long-user.json', JSON.stringify({ sessions: [{ session_id: 'a', user_id: '\u{1F600}'.repeat(257) }] })],
      // What create_session refuses, a file may not seed either; nor may it say one thing twice.
      ['same-id.json', '{"sessions":[{"session_id":"a","user_id":"u"},{"session_id":"a","user_id":"mallory"}]}', 'same session_id (entry 2)'],
      ['same-member.json', '{"sessions":[{"session_id":"a","user_id":"u"}],"sessions":[]}', 'duplicate member name'],
      ['proto.json', '{"sessions":[{"session_id":"a","user_id":"u","data":{"x":[{"__proto__":{"isAdmin":true}}]}}]}', 'member named'],
      ['infinite.json', '{"sessions":[{"session_id":"a","user_id":"u","data":{"limit":1e400}}]}', 'out of range'],
      ['deep.json', `{"sessions":[{"session_id":"a","user_id":"u","data":${deep(33)}}]}`, 'deeper than 32 levels'],
      ['very-deep.json', `{"sessions":[{"session_id":"a","user_id":"u","data":${deep(200_000)}}]}`, 'deeper than 32 levels'],
    ];
    for (const [file, text, says] of bad) {
      const path = join(dir, file);
      if (text) writeFileSync(path, text);
      const b = run({ ...base, GATEWAY_FIXTURES: path }, ['stdio'], `${req(1, 'a')}\n`);
      expect(b.status, file).not.toBe(0);
      expect(b.stdout, file).toBe('');
      const lines = b.stderr.trimEnd().split('\n');
      expect(lines, `${file}: ${b.stderr}`).toHaveLength(1);
      expect(lines[0], file).toContain('GATEWAY_FIXTURES');
      expect(lines[0], file).toContain(says ?? 'GATEWAY_FIXTURES');
    }
    // A broken file never has its content (a session id, say) quoted back on stderr.
    const leaky = join(dir, 'leaky.json');
    writeFileSync(leaky, '{"sessions":[{"session_id":"fixture-secret-id-7Qx9" "user_id":"u"}]}');
    const l = run({ ...base, GATEWAY_FIXTURES: leaky }, ['stdio'], `${req(1, 'a')}\n`);
    expect(l.status).not.toBe(0);
    expect(l.stderr).toContain('is not valid JSON (at character');
    expect(l.stderr).not.toContain('fixture-secret-id');
  }, 90_000); // nine processes, one after another, on a loaded machine
});

describe('fixture lengths (in-process)', () => {
  it('a session_id of at most 1024 characters counted as code points is taken (1024 emoji), 1025 are refused in one line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gw-fx-len-'));
    const file = (name: string, sessionId: string) => {
      const path = join(dir, name);
      writeFileSync(path, JSON.stringify({ sessions: [{ session_id: sessionId, user_id: 'u' }] }));
      return path;
    };
    try {
      const longest = '\u{1F600}'.repeat(1024); // 2048 UTF-16 units
      expect((await readFixtures(file('longest.json', longest))).map((s) => s.session_id)).toEqual([longest]);
      expect((await readFixtures(file('ascii.json', 'a'.repeat(1024)))).length).toBe(1);
      for (const [name, sessionId] of [
        ['emoji.json', '\u{1F600}'.repeat(1025)],
        ['ascii-long.json', 'a'.repeat(1025)],
      ] as const) {
        const path = file(name, sessionId);
        await expect(readFixtures(path), name).rejects.toThrow(new ConfigError(`GATEWAY_FIXTURES: ${path}: a session_id is longer than 1024 characters`));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('fixture encoding (in-process)', () => {
  it('a file that is not UTF-8 is refused in one line, never read with replacement characters (caf\\xe9 and caf\\xe8 would seed one user)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gw-fx-utf8-'));
    try {
      const path = join(dir, 'latin1.json');
      writeFileSync(
        path,
        Buffer.concat([Buffer.from('{"sessions":[{"session_id":"fixture-secret-9","user_id":"caf'), Buffer.from([0xe9]), Buffer.from('"}]}')]),
      );
      await expect(readFixtures(path)).rejects.toThrow(new ConfigError(`GATEWAY_FIXTURES: ${path} is not UTF-8`));
      // UTF-8 text, a character of several bytes included, is read as ever.
      writeFileSync(path, JSON.stringify({ sessions: [{ session_id: 's', user_id: 'caf\u00e9' }] }));
      expect((await readFixtures(path)).map((s) => s.user_id)).toEqual(['caf\u00e9']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('createApp with fixtures (in-process)', () => {
  it('loads them before anything is served, on the injected clock', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gw-fx-'));
    const file = join(dir, 'f.json');
    writeFileSync(file, JSON.stringify({ sessions: [{ session_id: 'abc123', user_id: 'user123', ttl: 10 }] }));
    const clock = new ManualClock();
    const { gateway } = await createApp(loadConfig({ ...base, GATEWAY_FIXTURES: file }), { clock, log: silentLogger() });
    const v = await gateway.sessions.validate('abc123');
    expect(v.valid && v.expiresIn).toBe(10);
    clock.advance(10_000);
    expect((await gateway.sessions.validate('abc123')).valid).toBe(false);
    await gateway.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('closes the store when seeding fails: nothing of a refused start stays open', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gw-fx-'));
    const file = join(dir, 'f.json');
    writeFileSync(file, JSON.stringify({ sessions: [{ session_id: 'abc123', user_id: 'user123' }] }));
    const store = failingStore(createMemoryStore(new ManualClock()));
    const close = store.close;
    let closed = 0;
    store.close = async () => {
      closed++;
      await close();
    };
    await expect(createApp(loadConfig({ ...base, GATEWAY_FIXTURES: file }), { store, log: silentLogger() })).rejects.toThrow('Store unavailable');
    expect(closed).toBe(1);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('back-channel logout settings (GATEWAY_OIDC_*)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-oidc-config-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };
  const jwks = file('jwks.json', JSON.stringify({ keys: [{ kty: 'OKP', crv: 'Ed25519', x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo', kid: 'k1' }] }));
  const all = { GATEWAY_OIDC_ISSUER: 'https://idp.example/realms/r', GATEWAY_OIDC_AUDIENCE: 'gateway', GATEWAY_OIDC_JWKS: 'https://idp.example/certs' };
  const oneLine = (env: Record<string, string>): string => {
    let err: unknown;
    try {
      loadConfig({ ...base, ...env });
    } catch (e) {
      err = e;
    }
    expect(err, JSON.stringify(env)).toBeInstanceOf(ConfigError);
    const msg = (err as Error).message;
    expect(msg).not.toContain('\n');
    return msg;
  };

  it('none: the receiver is off; all three: on, with the JWK Set by URL or read from a file', () => {
    expect(loadConfig(base).oidc).toBeUndefined();
    // Blank is not "none": it is refused, as every variable set but empty is.
    expect(oneLine({ GATEWAY_OIDC_ISSUER: ' ' })).toBe('GATEWAY_OIDC_ISSUER is set but empty: unset it to use the default');
    expect(loadConfig({ ...base, ...all }).oidc).toEqual({ issuer: all.GATEWAY_OIDC_ISSUER, audience: 'gateway', jwks: { url: 'https://idp.example/certs' } });
    expect(loadConfig({ ...base, ...all, GATEWAY_OIDC_JWKS: 'http://keycloak:8080/certs' }).oidc?.jwks).toEqual({ url: 'http://keycloak:8080/certs' });
    const fromFile = loadConfig({ ...base, ...all, GATEWAY_OIDC_JWKS: jwks }).oidc;
    expect(fromFile?.jwks).toMatchObject({ file: jwks, set: { keys: [{ kid: 'k1' }] } });
  });

  it('some but not all: one line naming what is missing', () => {
    for (const missing of Object.keys(all)) {
      const env: Record<string, string> = { ...all };
      delete env[missing];
      const msg = oneLine(env);
      expect(msg).toBe(`${missing}: back-channel logout needs GATEWAY_OIDC_ISSUER, GATEWAY_OIDC_AUDIENCE, GATEWAY_OIDC_JWKS together`);
    }
    expect(oneLine({ GATEWAY_OIDC_AUDIENCE: 'gateway' })).toMatch(/^GATEWAY_OIDC_ISSUER, GATEWAY_OIDC_JWKS: back-channel logout needs/);
  });

  it('a JWK Set that cannot serve: another scheme, a missing file, not JSON, not a set, a private or shared key', () => {
    const cases: [string, string][] = [
      ['ftp://idp.example/certs', 'GATEWAY_OIDC_JWKS must be an https or http URL, or a file path'],
      [join(dir, 'absent.json'), 'GATEWAY_OIDC_JWKS: cannot read'],
      [file('bad.json', '{"keys": ['), 'is not JSON'],
      [file('not-set.json', '{"kty": "RSA"}'), 'is not a JWK Set'],
      [file('private.json', JSON.stringify({ keys: [{ kty: 'OKP', crv: 'Ed25519', x: 'x', d: 'secret-part' }] })), 'holds a private or symmetric key'],
      [file('oct.json', JSON.stringify({ keys: [{ kty: 'oct', k: 'c2hhcmVk' }] })), 'holds a private or symmetric key'],
    ];
    for (const [value, text] of cases) {
      const msg = oneLine({ ...all, GATEWAY_OIDC_JWKS: value });
      expect(msg, value).toContain(text);
      expect(msg.startsWith('GATEWAY_OIDC_JWKS'), msg).toBe(true);
      expect(msg, value).not.toContain('secret-part');
    }
  });

  it('from the command line: flags stand for the variables; a partial set stops `serve` with one line', () => {
    const r = spawnSync(
      process.execPath,
      ['dist/cli.js', 'config', '--oidc-issuer', all.GATEWAY_OIDC_ISSUER, '--oidc-audience', 'gateway', '--oidc-jwks', jwks],
      {
        env: { PATH: process.env.PATH ?? '', ...base },
        timeout: 10_000,
        encoding: 'utf8',
      },
    );
    expect(r.status, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as Record<string, unknown>).backchannel_logout).toEqual({ issuer: all.GATEWAY_OIDC_ISSUER, audience: 'gateway', jwks });
    const partial = spawnSync(process.execPath, ['dist/cli.js', 'serve', '--oidc-issuer', all.GATEWAY_OIDC_ISSUER], {
      env: { PATH: process.env.PATH ?? '', ...base, GATEWAY_PORT: '0' },
      timeout: 10_000,
      encoding: 'utf8',
    });
    expect(partial.status).toBe(2);
    expect(partial.stdout).toBe('');
    const lines = partial.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('"msg":"GATEWAY_OIDC_AUDIENCE, GATEWAY_OIDC_JWKS: back-channel logout needs');
  });
});
