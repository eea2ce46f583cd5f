import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { startGateway } from '../../src/index.js';

describe('startGateway', () => {
  it('refuses an unknown option and a bad value, naming them', async () => {
    await expect(startGateway({ env: {}, ...({ sessionTTL: 5 } as object) })).rejects.toThrow(new ConfigError('Unknown option "sessionTTL" of startGateway'));
    await expect(startGateway({ env: {}, sessionTtl: 0 })).rejects.toThrow(/^GATEWAY_SESSION_TTL must be/);
    await expect(startGateway({ env: {}, port: 70_000 })).rejects.toThrow(/^GATEWAY_PORT must be/);
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
});
