/**
 * A `GATEWAY_*` variable the gateway does not read (a misspelling, most often) is not refused:
 * Kubernetes injects variables of that prefix for a Service named "gateway". It is named in one
 * warning line at start-up, with the closest known name when one is near; values never.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { ConfigError } from '../../src/errors.js';
import { SECRET } from './harness.js';

const base = { GATEWAY_JWT_SECRET: SECRET };

/** What Kubernetes injects for a Service named "gateway" (service links): never warned about. */
const SERVICE_LINKS = {
  GATEWAY_SERVICE_HOST: '10.0.0.7',
  GATEWAY_SERVICE_PORT: '8080',
  GATEWAY_SERVICE_PORT_HTTP: '8080',
  GATEWAY_PORT_8080_TCP: 'tcp://10.0.0.7:8080',
  GATEWAY_PORT_8080_TCP_PROTO: 'tcp',
  GATEWAY_PORT_8080_TCP_PORT: '8080',
  GATEWAY_PORT_8080_TCP_ADDR: '10.0.0.7',
  GATEWAY_PORT_9464_UDP: 'udp://10.0.0.7:9464',
};

describe('unknown GATEWAY_* variables', () => {
  it('are listed, each with the closest known name within two edits, in name order; service links and known names are not', () => {
    const c = loadConfig({
      ...base,
      ...SERVICE_LINKS,
      GATEWAY_SESION_TTL: '60',
      GATEWAY_SERVICE_KEYFILE: '/run/secrets/key',
      GATEWAY_LOGLEVEL: 'debug',
      GATEWAY_COLOUR: 'blue',
      GATEWAY_SESSION_TTL: '120',
      OTHER_THING: 'x',
    });
    expect(c.unknownVariables).toEqual([
      { name: 'GATEWAY_COLOUR' },
      { name: 'GATEWAY_LOGLEVEL', closest: 'GATEWAY_LOG_LEVEL' },
      { name: 'GATEWAY_SERVICE_KEYFILE', closest: 'GATEWAY_SERVICE_KEY_FILE' },
      { name: 'GATEWAY_SESION_TTL', closest: 'GATEWAY_SESSION_TTL' },
    ]);
    expect(loadConfig({ ...base, ...SERVICE_LINKS }).unknownVariables).toEqual([]);
  });

  it('serve and stdio write one warning line naming them, never their values', () => {
    const r = spawnSync(process.execPath, ['dist/cli.js', 'stdio'], {
      env: { PATH: process.env.PATH ?? '', ...base, ...SERVICE_LINKS, GATEWAY_SESION_TTL: 'value-1-not-logged', GATEWAY_COLOUR: 'value-2-not-logged' },
      input: '',
      timeout: 10_000,
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stderr
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const warnings = lines.filter((l) => l.event === 'unknown variables');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({
      level: 'warn',
      variables: ['GATEWAY_COLOUR', 'GATEWAY_SESION_TTL'],
      msg: 'GATEWAY_* variables this gateway does not read, ignored: GATEWAY_COLOUR, GATEWAY_SESION_TTL (did you mean GATEWAY_SESSION_TTL?)',
    });
    expect(r.stderr).not.toContain('not-logged');
    expect(lines[0]!.event).toBe('starting');
  });

  it('GATEWAY_PORT holding the service link of the same Service stops the start with one line saying so', () => {
    const message =
      'GATEWAY_PORT holds a Kubernetes service link (a Service named "gateway" sets it to tcp://...), not a port: set GATEWAY_PORT in the container\'s env (it wins over the link), or enableServiceLinks: false in the pod spec';
    for (const link of ['tcp://10.0.0.7:8080', 'udp://10.0.0.7:9464', ' tcp://[fd00::7]:8080'])
      expect(() => loadConfig({ ...base, ...SERVICE_LINKS, GATEWAY_PORT: link }), link).toThrow(new ConfigError(message));
    expect(loadConfig({ ...base, ...SERVICE_LINKS, GATEWAY_PORT: '8080' }).port).toBe(8080);
  });

  it('no line when there are none', () => {
    const r = spawnSync(process.execPath, ['dist/cli.js', 'stdio'], {
      env: { PATH: process.env.PATH ?? '', ...base, ...SERVICE_LINKS },
      input: '',
      timeout: 10_000,
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).not.toContain('unknown variables');
  });
});
