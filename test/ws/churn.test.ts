import { spawnSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { JWT_SECRET } from './helpers.js';
import { ensureBuilt, ROOT } from './process.js';

beforeAll(ensureBuilt, 180_000);

/**
 * A gateway on the real clock in a child with --expose-internals (Node's timer lists can be
 * counted nowhere else): bound browser connections opened and closed one after another, as on
 * a quiet gateway where the hub's timer queues empty between two of them.
 */
describe('connection churn', () => {
  it('bound connections opened and closed one after another leave no link, follow or timer behind', () => {
    const dist = (p: string) => JSON.stringify(new URL(`../../dist/${p}`, import.meta.url).href);
    const script = `
      import { createRequire } from 'node:module';
      import { WebSocket } from 'ws';
      const { timerListMap } = createRequire(import.meta.url)('internal/timers');
      const { loadConfig } = await import(${dist('config.js')});
      const { silentLogger } = await import(${dist('log.js')});
      const { startServer } = await import(${dist('server.js')});
      const config = loadConfig({ GATEWAY_JWT_SECRET: ${JSON.stringify(JWT_SECRET)}, GATEWAY_PORT: '0', GATEWAY_HOST: '127.0.0.1', GATEWAY_LOG_LEVEL: 'silent' });
      const server = await startServer(config, { log: silentLogger(), processMetrics: false });
      const hub = server.gateway.hub;
      const until = async (ok) => {
        for (const end = Date.now() + 5000; !ok(); ) {
          if (Date.now() > end) throw new Error('timed out');
          await new Promise((r) => setTimeout(r, 2));
        }
      };
      let bound = 0;
      const one = async (sessionId) => {
        const ws = new WebSocket(server.url, { headers: { Origin: 'http://127.0.0.1:' + server.port, Cookie: 'sid=' + sessionId } });
        await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
        await until(() => hub.subscriptions === 1);
        bound++;
        ws.close(1000);
        await new Promise((resolve) => ws.once('close', resolve));
        await until(() => server.links.size === 0);
      };
      const sessions = [];
      for (let i = 0; i < 101; i++) sessions.push((await server.gateway.sessions.create('user-' + i, undefined)).sessionId);
      // One first: the lists of the fixed delays (heartbeat, sweeps, close grace) exist from then on.
      await one(sessions[0]);
      const before = Object.keys(timerListMap).length;
      for (const s of sessions.slice(1)) await one(s);
      console.log(JSON.stringify({ bound, links: server.links.size, followed: hub.size, subscriptions: hub.subscriptions, timerListsAdded: Object.keys(timerListMap).length - before }));
      await server.drain({ delayMs: 0, windowMs: 0 });
      process.exit(0);
    `;
    const r = spawnSync(process.execPath, ['--expose-internals', '--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ bound: 101, links: 0, followed: 0, subscriptions: 0, timerListsAdded: 0 });
  }, 90_000);
});
