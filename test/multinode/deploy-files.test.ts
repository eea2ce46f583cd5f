import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { ConfigError } from '../../src/errors.js';
import { parsePostgresUrl } from '../../src/store/postgres-url.js';
import { parseRedisUrl } from '../../src/store/redis-url.js';
import { required } from '../helpers/required.js';
import { ROOT } from './stdio-node.js';

/**
 * No container engine runs here, so docker-compose.yml and the Dockerfile are checked for
 * what can be checked: they parse, and name the right image, command, environment and user.
 */
const read = (f: string) => readFileSync(join(ROOT, f), 'utf8');

/** docker-compose.yml is JSON-compatible YAML: comment lines, then one JSON document. */
function compose(): any {
  return JSON.parse(read('docker-compose.yml').replace(/^#.*$/gm, ''));
}

/** Compose's `${VAR:?msg}` / `${VAR:-default}` interpolation, enough for this file. */
function interpolate(value: string, env: Record<string, string>): string {
  return value.replace(/\$\{(\w+)(?::([?-])([^}]*))?\}/g, (_, name: string, op?: string, arg?: string) => {
    if (env[name]) return env[name]!;
    if (op === '?') throw new Error(`compose would refuse to start: ${name} unset (${arg})`);
    return op === '-' ? (arg ?? '') : '';
  });
}

const REDIS_REPLICAS = ['gateway-1', 'gateway-2'];
const PG_REPLICAS = ['gateway-pg-1', 'gateway-pg-2'];
const SECRET_VALUES: Record<string, string> = {
  jwt_secret: 'j88r/g6E5Ifi7IX1BOMJaOcVwIuo9hC5qwuV4FCl3+o=',
  service_key: 'rI0YU9HuVODAyUELc8mq1QvKkF6oj8rYa1HFEZZoYWQ=',
  log_salt: 'kq0Wq3b2bT0mV4Hc6k1cQq9iYh0m2O7oXj3rJ8s4aZ0=',
  redis_password: '5f1c0e9a7b3d2c4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e',
  gateway_store_redis: 'redis://:5f1c0e9a7b3d2c4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e@redis:6379/0',
  gateway_store_postgres: 'postgres://gateway:pw3f9a@postgres:5432/gateway?schema=auth_gateway',
};

/** A replica's configuration as the gateway would load it: its secrets mounted as files. */
function replicaConfig(name: string, dir: string) {
  const doc = compose();
  const service = doc.services[name];
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(service.environment as Record<string, string>)) {
    const m = /^\/run\/secrets\/(\w+)$/.exec(v);
    if (m === null) {
      env[k] = interpolate(v, {});
      continue;
    }
    expect(service.secrets, `${name} mounts ${m[1]}`).toContain(m[1]);
    expect(doc.secrets[m[1]!], `${m[1]} is declared`).toEqual({ file: `./secrets/${m[1]}` });
    const path = join(dir, m[1]!);
    writeFileSync(path, `${SECRET_VALUES[m[1]!]}\n`);
    env[k] = path;
  }
  return loadConfig(env);
}

describe('docker-compose.yml', () => {
  const dir = mkdtempSync(join(tmpdir(), 'deploy-secrets-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.skipIf(!required('pyyaml'))('parses as JSON and as YAML (PyYAML) to the same document', () => {
    const doc = compose();
    expect(Object.keys(doc.services).sort()).toEqual(['gateway-1', 'gateway-2', 'gateway-pg-1', 'gateway-pg-2', 'postgres', 'redis']);
    const viaYaml = execFileSync(
      'python3',
      ['-c', 'import json,sys,yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))', join(ROOT, 'docker-compose.yml')],
      { encoding: 'utf8' },
    );
    expect(JSON.parse(viaYaml)).toEqual(doc);
  });

  it('runs Redis pinned by version, with AOF on a volume, a password from a secret, maxmemory and noeviction, health-checked', () => {
    const { redis } = compose().services;
    expect(redis.image).toMatch(/^redis:7\.\d+\.\d+-alpine$/);
    const script: string = redis.command[2];
    expect(redis.command.slice(0, 2)).toEqual(['sh', '-c']);
    // The password goes through a config file, not argv (where `ps` would show it).
    expect(script).toContain('printf \'requirepass %s\\n\' "$$(cat /run/secrets/redis_password)" > /tmp/auth.conf');
    expect(script).toMatch(/exec redis-server \/tmp\/auth\.conf --appendonly yes /);
    // An evicted revocation marker would revive a token: Redis must refuse writes instead.
    expect(script).toMatch(/--maxmemory \d+mb --maxmemory-policy noeviction$/);
    expect(redis.secrets).toEqual(['redis_password']);
    expect(redis.volumes).toEqual(['redis-data:/data']);
    expect(redis.healthcheck.test[0]).toBe('CMD-SHELL');
    expect(redis.healthcheck.test[1]).toContain('redis-cli ping');
    expect(redis.ports).toBeUndefined(); // never published on the host
  });

  it('runs two gateway replicas of the image built from the Dockerfile, each with its own node id and port, on Redis', () => {
    const services = compose().services;
    const ids = REDIS_REPLICAS.map((n) => services[n].environment.GATEWAY_NODE_ID);
    expect(new Set(ids).size).toBe(REDIS_REPLICAS.length);
    expect(REDIS_REPLICAS.map((n) => services[n].ports[0])).toEqual(['127.0.0.1:8081:8080', '127.0.0.1:8082:8080']);
    for (const name of REDIS_REPLICAS) {
      const g = services[name];
      expect(g.build).toEqual({ context: '.', dockerfile: 'Dockerfile' });
      expect(g.image).toMatch(/^auth-gateway:/);
      expect(g.command).toEqual(['node', 'dist/cli.js', 'serve']);
      expect(g.depends_on).toEqual({ redis: { condition: 'service_healthy' } });
      expect(g.read_only).toBe(true);
      expect(g.security_opt).toEqual(['no-new-privileges:true']);
      expect(g.profiles).toBeUndefined();
    }
  });

  it('gives every secret as a mounted file, never in the environment; replicas share the keys and the log salt', () => {
    const services = compose().services;
    for (const name of [...REDIS_REPLICAS, ...PG_REPLICAS]) {
      const env: Record<string, string> = services[name].environment;
      for (const k of ['GATEWAY_JWT_SECRET', 'GATEWAY_JWT_SECRETS', 'GATEWAY_SERVICE_KEY', 'GATEWAY_STORE', 'GATEWAY_LOG_SALT'])
        expect(env[k], `${name} ${k}`).toBeUndefined();
      for (const k of ['GATEWAY_JWT_SECRET_FILE', 'GATEWAY_SERVICE_KEY_FILE', 'GATEWAY_STORE_FILE', 'GATEWAY_LOG_SALT_FILE'])
        expect(env[k], `${name} ${k}`).toMatch(/^\/run\/secrets\/\w+$/);
    }
    const [a, b] = REDIS_REPLICAS.map((n) => replicaConfig(n, dir));
    expect(a!.nodeId).not.toBe(b!.nodeId);
    expect(a!.logSalt).toBe(SECRET_VALUES.log_salt);
    expect(b!.logSalt).toBe(a!.logSalt);
    expect(a!.jwtKeys[0]!.secret.toString()).toBe(SECRET_VALUES.jwt_secret);
    expect(a!.serviceKey).toBe(SECRET_VALUES.service_key);
    expect(parseRedisUrl(a!.store)).toMatchObject({ mode: 'single' });
    expect(a!.store).toBe(SECRET_VALUES.gateway_store_redis);
    expect(a!.port).toBe(8080);
    expect(a!.allowedOrigins).toEqual(['http://localhost:8081', 'http://localhost:8082']);
  });

  it('gives the drain time to finish: stop_grace_period exceeds GATEWAY_DRAIN_DELAY + GATEWAY_DRAIN_WINDOW', () => {
    for (const name of [...REDIS_REPLICAS, ...PG_REPLICAS]) {
      const g = compose().services[name];
      const grace = Number(/^(\d+)s$/.exec(g.stop_grace_period)![1]);
      const c = replicaConfig(name, dir);
      expect(grace * 1000, name).toBeGreaterThan(c.drainDelayMs + c.drainWindowMs + 5000);
    }
  });
});

describe('docker-compose.yml, postgres profile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'deploy-secrets-pg-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('runs PostgreSQL pinned by version on a volume, its password from a secret, health-checked, only with --profile postgres', () => {
    const { postgres, redis } = compose().services;
    expect(postgres.profiles).toEqual(['postgres']);
    expect(postgres.image).toMatch(/^postgres:1[5-9]\.\d+-alpine$/);
    expect(postgres.volumes).toEqual(['postgres-data:/var/lib/postgresql/data']);
    expect(postgres.healthcheck.test.slice(0, 2)).toEqual(['CMD', 'pg_isready']);
    expect(postgres.ports).toBeUndefined(); // never published on the host
    expect(postgres.environment.POSTGRES_PASSWORD).toBeUndefined();
    expect(postgres.environment.POSTGRES_PASSWORD_FILE).toBe('/run/secrets/postgres_password');
    expect(postgres.secrets).toEqual(['postgres_password']);
    expect(redis.profiles).toBeUndefined();
  });

  it('runs two gateway replicas of the same image on it, with a URL the gateway accepts', () => {
    const services = compose().services;
    for (const name of PG_REPLICAS) {
      const g = services[name];
      expect(g.profiles).toEqual(['postgres']);
      expect(g.image).toBe(services['gateway-1'].image);
      expect(g.command).toEqual(services['gateway-1'].command);
      expect(g.depends_on).toEqual({ postgres: { condition: 'service_healthy' } });
    }
    expect(PG_REPLICAS.map((n) => services[n].ports[0])).toEqual(['127.0.0.1:8083:8080', '127.0.0.1:8084:8080']);
    const config = replicaConfig('gateway-pg-1', dir);
    expect(parsePostgresUrl(config.store)).toEqual({ connectionString: 'postgres://gateway:pw3f9a@postgres:5432/gateway', schema: 'auth_gateway' });
    expect(config.nodeId).not.toBe(replicaConfig('gateway-pg-2', dir).nodeId);
  });
});

describe('Dockerfile', () => {
  const lines = read('Dockerfile')
    .split('\n')
    .filter((l) => l.trim() && !l.trim().startsWith('#'));
  const stages = lines.map((l, i) => [l, i] as const).filter(([l]) => l.startsWith('FROM '));
  const final = lines.slice(stages.at(-1)![1]);

  it('is multi-stage, on the Node LTS line (24) pinned by version, within what package.json engines accepts', () => {
    expect(stages.map(([l]) => l.replace(/@sha256:[0-9a-f]{64}/, ''))).toEqual([
      'FROM node:24.9.0-bookworm-slim AS build',
      'FROM node:24.9.0-bookworm-slim AS runtime',
    ]);
    const engines = (JSON.parse(read('package.json')) as { engines: { node: string } }).engines.node;
    const min = /^>=(\d+)(?:\.(\d+))?/.exec(engines)!;
    expect(24).toBeGreaterThanOrEqual(Number(min[1]));
  });

  it('installs production dependencies only in the runtime stage, runs as the non-root node user under tini', () => {
    expect(final.some((l) => /^RUN npm ci --omit=dev\b/.test(l))).toBe(true);
    expect(final.some((l) => /^COPY --from=build \/app\/dist \.\/dist$/.test(l))).toBe(true);
    expect(final.some((l) => l.includes('apt-get install -y --no-install-recommends tini'))).toBe(true);
    expect(final).toContain('ENTRYPOINT ["/usr/bin/tini", "--"]');
    const user = final.findIndex((l) => l === 'USER node');
    const cmd = final.findIndex((l) => l.startsWith('CMD '));
    expect(user).toBeGreaterThan(0);
    expect(cmd).toBeGreaterThan(user);
    expect(JSON.parse(final[cmd]!.slice(4))).toEqual(compose().services['gateway-1'].command);
  });

  it('checks liveness (/healthz), not readiness, and leaves the demo page out', () => {
    const check = final.findIndex((l) => l.startsWith('HEALTHCHECK '));
    expect(check).toBeGreaterThan(0);
    expect(final[check + 1]).toContain("/healthz'");
    expect(final.join('\n')).not.toContain('/readyz');
    expect(final.join('\n')).not.toContain('client/demo');
  });

  it('builds from what its build stage copies out of the context (.dockerignore applied): server, client and middleware', () => {
    const build = lines.slice(0, stages[1]![1]);
    const ignored = dockerIgnored(read('.dockerignore').split('\n'));
    const app = mkdtempSync(join(tmpdir(), 'docker-build-'));
    try {
      for (const l of build.filter((x) => x.startsWith('COPY '))) {
        const [, ...args] = l.split(/\s+/);
        const dest = args.pop()!;
        for (const src of args) {
          const files = contextFiles(src.replace(/\/$/, ''), ignored);
          expect(files.length, `COPY ${src}: nothing left of it in the context`).toBeGreaterThan(0);
          for (const f of files) {
            // A directory's contents land in dest; a file in dest, or under it when dest ends in /.
            const to = f === src ? (dest.endsWith('/') ? join(app, dest, basename(f)) : join(app, dest)) : join(app, dest, relative(src, f));
            mkdirSync(dirname(to), { recursive: true });
            copyFileSync(join(ROOT, f), to);
          }
        }
      }
      // What `RUN npm ci` installs: the project's own node_modules, unchanged (nothing below writes to it).
      symlinkSync(join(ROOT, 'node_modules'), join(app, 'node_modules'));
      const runs = build.filter((x) => x.startsWith('RUN ') && !x.includes('npm ci'));
      expect(runs).toEqual(['RUN npm run build']);
      execFileSync('npm', ['run', '-s', 'build'], { cwd: app, stdio: 'pipe', timeout: 120_000 });
      for (const out of ['dist/cli.js', 'dist/index.js', 'dist/client/src/index.js', 'dist/middleware/src/index.js']) {
        expect(existsSync(join(app, out)), out).toBe(true);
      }
    } finally {
      rmSync(app, { recursive: true, force: true });
    }
  }, 150_000);

  it('copies only files that exist, and .dockerignore keeps secrets and build output out', () => {
    for (const l of lines.filter((x) => x.startsWith('COPY ') && !x.includes('--from'))) {
      for (const src of l.split(/\s+/).slice(1, -1)) expect(existsSync(join(ROOT, src)), src).toBe(true);
    }
    const ignore = read('.dockerignore').split('\n');
    for (const entry of ['node_modules', 'dist', '.git', '*.env', '.env*', 'secrets']) expect(ignore).toContain(entry);
    expect(read('.gitignore').split('\n')).toContain('secrets/');
  });
});

/**
 * `.dockerignore` as Docker reads it: patterns rooted at the context, `*` and `?` within one
 * path segment, `**` across them, a pattern that names a directory covers what is under it,
 * `!` excepts, and the last pattern that matches wins.
 */
function dockerIgnored(patterns: readonly string[]): (path: string) => boolean {
  const rules = patterns
    .map((p) => p.trim())
    .filter((p) => p && !p.startsWith('#'))
    .map((p) => {
      const except = p.startsWith('!');
      const glob = (except ? p.slice(1) : p).replace(/^\.?\//, '').replace(/\/$/, '');
      const body = glob
        .split('**')
        .map((part) =>
          part
            .replace(/[.+^${}()|[\]\\]/g, '\\$&')
            .replace(/\*/g, '[^/]*')
            .replace(/\?/g, '[^/]'),
        )
        .join('.*');
      return { except, re: new RegExp(`^${body}(?:/.*)?$`) };
    });
  return (path) => rules.reduce((ignored, r) => (r.re.test(path) ? !r.except : ignored), false);
}

/** The files of the context under `path` (a file, or a directory walked), minus the ignored ones. */
function contextFiles(path: string, ignored: (p: string) => boolean): string[] {
  if (ignored(path)) return [];
  if (!statSync(join(ROOT, path)).isDirectory()) return [path];
  return readdirSync(join(ROOT, path)).flatMap((name) => contextFiles(`${path}/${name}`, ignored));
}

describe('LICENSE and CHANGELOG', () => {
  it('LICENSE is the MIT licence package.json names; CHANGELOG.md has a section for the package version', () => {
    const pkg = JSON.parse(read('package.json')) as { license: string; version: string };
    expect(pkg.license).toBe('MIT');
    expect(read('LICENSE')).toMatch(/^MIT License\n\nCopyright \(c\) \d{4} /);
    expect(read('LICENSE')).toContain('THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND');
    expect(read('CHANGELOG.md')).toMatch(new RegExp(`^## \\[?${pkg.version.replace(/\./g, '\\.')}\\]?`, 'm'));
  });
});

describe('a shared store needs a shared secret', () => {
  it('refuses GATEWAY_STORE=redis:// without GATEWAY_JWT_SECRET(S), in one line', () => {
    expect(() => loadConfig({ GATEWAY_STORE: 'redis://127.0.0.1:6390' })).toThrow(ConfigError);
    expect(() => loadConfig({ GATEWAY_STORE: 'redis://127.0.0.1:6390' })).toThrow(
      'GATEWAY_STORE is a shared store: set GATEWAY_JWT_SECRET or GATEWAY_JWT_SECRETS, the same on every node',
    );
    expect(
      loadConfig({ GATEWAY_STORE: 'redis://127.0.0.1:6390', GATEWAY_JWT_SECRETS: 'k1:j88r/g6E5Ifi7IX1BOMJaOcVwIuo9hC5qwuV4FCl3+o=' }).jwtKeys,
    ).toHaveLength(1);
    expect(loadConfig({}).store).toBe('memory://');
  });

  it('refuses every configuration that would sign with a key made for this process on a shared store', () => {
    const store = { GATEWAY_STORE: 'redis://127.0.0.1:6390' };
    const secret = 'j88r/g6E5Ifi7IX1BOMJaOcVwIuo9hC5qwuV4FCl3+o=';
    const eddsa = 'GATEWAY_STORE is a shared store: with GATEWAY_JWT_ALG=EdDSA set GATEWAY_JWT_ED25519_KEY, the same key files on every node';
    const hs256 = 'GATEWAY_STORE is a shared store: set GATEWAY_JWT_SECRET or GATEWAY_JWT_SECRETS, the same on every node';
    // EdDSA signs: an HS256 secret kept for the migration window is no shared signing key.
    expect(() => loadConfig({ ...store, GATEWAY_JWT_ALG: 'EdDSA' })).toThrow(eddsa);
    expect(() => loadConfig({ ...store, GATEWAY_JWT_ALG: 'EdDSA', GATEWAY_JWT_SECRET: secret })).toThrow(eddsa);
    // A key list that names no file stands in for nothing: refused on its own, whatever the store.
    const onlyCommas = 'GATEWAY_JWT_ED25519_KEY is set but lists nothing (only commas): unset it to use the default';
    expect(() => loadConfig({ ...store, GATEWAY_JWT_ALG: 'EdDSA', GATEWAY_JWT_SECRET: secret, GATEWAY_JWT_ED25519_KEY: ' , ' })).toThrow(onlyCommas);
    expect(() => loadConfig({ ...store, GATEWAY_JWT_ED25519_KEY: ',' })).toThrow(onlyCommas);
    // HS256 signs: without a secret, nothing shared signs.
    expect(() => loadConfig({ ...store })).toThrow(hs256);
    // The same on PostgreSQL; a memory store keeps its per-process keys.
    expect(() => loadConfig({ GATEWAY_STORE: 'postgres://db/app', GATEWAY_JWT_ALG: 'EdDSA', GATEWAY_JWT_SECRET: secret })).toThrow(eddsa);
    expect(loadConfig({ GATEWAY_JWT_ALG: 'EdDSA', GATEWAY_JWT_SECRET: secret }).jwtEd25519KeyFiles).toEqual([]);
    expect(loadConfig({ ...store, GATEWAY_JWT_ALG: 'EdDSA', GATEWAY_JWT_ED25519_KEY: '/run/secrets/ed25519.pem' }).jwtEd25519KeyFiles).toEqual([
      '/run/secrets/ed25519.pem',
    ]);
  });
});
