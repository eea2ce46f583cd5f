import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
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
    return op === '-' ? arg ?? '' : '';
  });
}

describe('docker-compose.yml', () => {
  it.skipIf(!required('pyyaml'))('parses as JSON and as YAML (PyYAML) to the same document', () => {
    const doc = compose();
    expect(Object.keys(doc.services).sort()).toEqual(['gateway', 'gateway-pg', 'postgres', 'redis']);
    const viaYaml = execFileSync('python3', ['-c', 'import json,sys,yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))', join(ROOT, 'docker-compose.yml')], { encoding: 'utf8' });
    expect(JSON.parse(viaYaml)).toEqual(doc);
  });

  it('runs Redis with AOF on a volume, health-checked', () => {
    const { redis } = compose().services;
    expect(redis.image).toMatch(/^redis:7(\.\d+)?(-alpine)?$/);
    expect(redis.command.slice(0, 3)).toEqual(['redis-server', '--appendonly', 'yes']);
    expect(redis.volumes).toEqual(['redis-data:/data']);
    expect(redis.healthcheck.test).toEqual(['CMD', 'redis-cli', 'ping']);
    expect(redis.ports).toBeUndefined(); // never published on the host
  });

  it('runs two gateway replicas of the image built from the Dockerfile, serving, on Redis', () => {
    const { gateway } = compose().services;
    expect(gateway.build).toEqual({ context: '.', dockerfile: 'Dockerfile' });
    expect(gateway.image).toMatch(/^auth-gateway:/);
    expect(gateway.command).toEqual(['node', 'dist/cli.js', 'serve']);
    expect(gateway.deploy.replicas).toBe(2);
    expect(gateway.ports).toEqual(['127.0.0.1:8081-8082:8080']);
    expect(gateway.depends_on).toEqual({ redis: { condition: 'service_healthy' } });
    expect(gateway.environment.GATEWAY_PORT).toBe('8080');
    expect(gateway.environment.GATEWAY_HOST).toBe('0.0.0.0');
    expect(parseRedisUrl(gateway.environment.GATEWAY_STORE)).toMatchObject({ mode: 'single', urls: ['redis://redis:6379/0'] });
  });

  it('requires the shared secrets from the environment and holds none itself', () => {
    const env: Record<string, string> = compose().services.gateway.environment;
    expect(env.GATEWAY_JWT_SECRET).toMatch(/^\$\{GATEWAY_JWT_SECRET:\?/);
    expect(env.GATEWAY_SERVICE_KEY).toMatch(/^\$\{GATEWAY_SERVICE_KEY:\?/);
    expect(() => interpolate(env.GATEWAY_JWT_SECRET!, {})).toThrow(/GATEWAY_JWT_SECRET unset/);
    const given = { GATEWAY_JWT_SECRET: 'j88r/g6E5Ifi7IX1BOMJaOcVwIuo9hC5qwuV4FCl3+o=', GATEWAY_SERVICE_KEY: 'rI0YU9HuVODAyUELc8mq1QvKkF6oj8rYa1HFEZZoYWQ=' };
    const resolved = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, interpolate(v, given)]));
    const config = loadConfig(resolved);
    expect(config.store).toBe('redis://redis:6379/0');
    expect(config.jwtSecretGenerated).toBe(false);
    expect(config.port).toBe(8080);
    expect(config.allowedOrigins).toEqual(['http://localhost:8081', 'http://localhost:8082']);
  });
});

describe('docker-compose.yml, postgres profile', () => {
  it('runs PostgreSQL on a volume, health-checked, only with --profile postgres', () => {
    const { postgres, redis, gateway } = compose().services;
    expect(postgres.profiles).toEqual(['postgres']);
    expect(postgres.image).toMatch(/^postgres:1[5-9](\.\d+)?(-alpine)?$/);
    expect(postgres.volumes).toEqual(['postgres-data:/var/lib/postgresql/data']);
    expect(postgres.healthcheck.test.slice(0, 2)).toEqual(['CMD', 'pg_isready']);
    expect(postgres.ports).toBeUndefined(); // never published on the host
    expect(postgres.environment.POSTGRES_PASSWORD).toMatch(/^\$\{POSTGRES_PASSWORD:\?/);
    // The Redis services stay the default (no profile).
    expect(redis.profiles).toBeUndefined();
    expect(gateway.profiles).toBeUndefined();
  });

  it('runs two gateway replicas of the same image on it, with a URL the gateway accepts', () => {
    const { 'gateway-pg': gw, gateway } = compose().services;
    expect(gw.profiles).toEqual(['postgres']);
    expect(gw.image).toBe(gateway.image);
    expect(gw.command).toEqual(gateway.command);
    expect(gw.deploy.replicas).toBe(2);
    expect(gw.ports).toEqual(['127.0.0.1:8083-8084:8080']);
    expect(gw.depends_on).toEqual({ postgres: { condition: 'service_healthy' } });
    const given = { POSTGRES_PASSWORD: 'pw-3f9a', GATEWAY_JWT_SECRET: 'j88r/g6E5Ifi7IX1BOMJaOcVwIuo9hC5qwuV4FCl3+o=', GATEWAY_SERVICE_KEY: 'rI0YU9HuVODAyUELc8mq1QvKkF6oj8rYa1HFEZZoYWQ=' };
    expect(() => interpolate(gw.environment.GATEWAY_STORE, {})).toThrow(/POSTGRES_PASSWORD unset/);
    const env = Object.fromEntries(Object.entries(gw.environment as Record<string, string>).map(([k, v]) => [k, interpolate(v, given)]));
    const config = loadConfig(env);
    expect(parsePostgresUrl(config.store)).toEqual({ connectionString: 'postgres://gateway:pw-3f9a@postgres:5432/gateway', schema: 'auth_gateway' });
  });
});

describe('Dockerfile', () => {
  const lines = read('Dockerfile')
    .split('\n')
    .filter((l) => l.trim() && !l.trim().startsWith('#'));
  const stages = lines.map((l, i) => [l, i] as const).filter(([l]) => l.startsWith('FROM '));
  const final = lines.slice(stages.at(-1)![1]);

  it('is multi-stage: a build stage and a runtime stage on Node 20', () => {
    expect(stages.map(([l]) => l)).toEqual(['FROM node:20-bookworm-slim AS build', 'FROM node:20-bookworm-slim AS runtime']);
  });

  it('installs production dependencies only in the runtime stage, and runs as the non-root node user', () => {
    expect(final.some((l) => /^RUN npm ci --omit=dev\b/.test(l))).toBe(true);
    expect(final.some((l) => /^COPY --from=build \/app\/dist \.\/dist$/.test(l))).toBe(true);
    const user = final.findIndex((l) => l === 'USER node');
    const cmd = final.findIndex((l) => l.startsWith('CMD '));
    expect(user).toBeGreaterThan(0);
    expect(cmd).toBeGreaterThan(user);
    expect(JSON.parse(final[cmd]!.slice(4))).toEqual(compose().services.gateway.command);
  });

  it('copies only files that exist, and .dockerignore keeps secrets and build output out', () => {
    for (const l of lines.filter((x) => x.startsWith('COPY ') && !x.includes('--from'))) {
      for (const src of l.split(/\s+/).slice(1, -1)) expect(existsSync(join(ROOT, src)), src).toBe(true);
    }
    const ignore = read('.dockerignore').split('\n');
    for (const entry of ['node_modules', 'dist', '.git', '*.env', '.env*']) expect(ignore).toContain(entry);
  });
});

describe('a shared store needs a shared secret', () => {
  it('refuses GATEWAY_STORE=redis:// without GATEWAY_JWT_SECRET(S), in one line', () => {
    expect(() => loadConfig({ GATEWAY_STORE: 'redis://127.0.0.1:6390' })).toThrow(ConfigError);
    expect(() => loadConfig({ GATEWAY_STORE: 'redis://127.0.0.1:6390' })).toThrow(
      'GATEWAY_STORE is a shared store: set GATEWAY_JWT_SECRET or GATEWAY_JWT_SECRETS, the same on every node',
    );
    expect(loadConfig({ GATEWAY_STORE: 'redis://127.0.0.1:6390', GATEWAY_JWT_SECRETS: 'k1:j88r/g6E5Ifi7IX1BOMJaOcVwIuo9hC5qwuV4FCl3+o=' }).jwtKeys).toHaveLength(1);
    expect(loadConfig({}).store).toBe('memory://');
  });
});
