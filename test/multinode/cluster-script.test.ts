import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, hasRedisServer, rawCommand } from '../helpers/redis-server.js';
import { postgresBinDir } from '../helpers/postgres-server.js';
import { hasBuild, ROOT } from './stdio-node.js';
import { WsClient } from './ws-client.js';

/**
 * `make cluster` runs scripts/cluster.sh after `build` and `system-deps`; this drives the
 * script itself (no apt from a test): Redis (or PostgreSQL with STORE=postgres) and two
 * `serve` nodes, used over WebSocket.
 */
/** Whether the store server answers on `port`. */
async function storeAnswers(store: 'redis' | 'postgres', port: number): Promise<boolean> {
  if (store === 'redis')
    return rawCommand(port, 'PING', 300).then(
      (r) => r === '+PONG\r\n',
      () => false,
    );
  try {
    execFileSync(join(postgresBinDir(), 'pg_isready'), ['-q', '-h', '127.0.0.1', '-p', String(port), '-t', '1'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

for (const store of ['redis', 'postgres'] as const)
  describe.skipIf(!hasBuild() || (store === 'redis' && !hasRedisServer()))(
    `make cluster STORE=${store} (scripts/cluster.sh): ${store} + two serve nodes`,
    () => {
      let script: ChildProcess;
      let dir: string;
      let ports: { store: number; a: number; b: number };
      let serviceKey: string;
      const clients: WsClient[] = [];
      const urlA = () => `ws://127.0.0.1:${ports.a}`;
      const urlB = () => `ws://127.0.0.1:${ports.b}`;

      beforeAll(async () => {
        ports = { store: await freePort(), a: await freePort(), b: await freePort() };
        dir = mkdtempSync(join(tmpdir(), 'ag-make-cluster-'));
        script = spawn('bash', ['scripts/cluster.sh'], {
          cwd: ROOT,
          env: {
            PATH: process.env.PATH ?? '',
            STORE: store,
            CLUSTER_REDIS_PORT: String(ports.store),
            CLUSTER_POSTGRES_PORT: String(ports.store),
            CLUSTER_PORT_A: String(ports.a),
            CLUSTER_PORT_B: String(ports.b),
            CLUSTER_DIR: dir,
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        const lines = createInterface({ input: script.stdout! });
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('cluster did not come up within 60 s')), 60_000);
          lines.on('line', (line) => line.startsWith('cluster up:') && (clearTimeout(timer), resolve()));
          script.once('exit', (code) => (clearTimeout(timer), reject(new Error(`cluster.sh exited ${code}`))));
        });
        serviceKey = /^GATEWAY_SERVICE_KEY=(.+)$/m.exec(readFileSync(join(dir, 'service-key.env'), 'utf8'))![1]!;
      }, 90_000);

      afterAll(async () => {
        for (const c of clients) c.close();
        if (script && script.exitCode === null) {
          const exited = new Promise((r) => script.once('exit', r));
          script.kill('SIGTERM');
          const timer = setTimeout(() => script.kill('SIGKILL'), 10_000);
          await exited;
          clearTimeout(timer);
        }
        rmSync(dir, { recursive: true, force: true });
      });

      it(`both nodes report ready, on a ${store} server of its own (not the system one's port)`, async () => {
        expect(ports.store).not.toBe(store === 'redis' ? 6379 : 5432);
        for (const port of [ports.a, ports.b]) expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);
        expect(await storeAnswers(store, ports.store)).toBe(true);
      });

      it('created on A over WebSocket, valid on B; destroyed on B, pushed to a browser on A within 1 s', async () => {
        const serviceA = await WsClient.open(urlA(), serviceKey);
        const serviceB = await WsClient.open(urlB(), serviceKey);
        const browserA = await WsClient.open(urlA());
        clients.push(serviceA, serviceB, browserA);
        const created = await serviceA.request({ type: 'create_session', user_id: 'u-ws' });
        expect(created.type).toBe('session_created');
        expect(await serviceB.request({ type: 'validate_session', session_id: created.session_id })).toMatchObject({ type: 'session_valid', user_id: 'u-ws' });
        expect((await browserA.request({ type: 'subscribe_session', session_id: created.session_id })).type).toBe('subscribed');
        const sent = performance.now();
        expect((await serviceB.request({ type: 'destroy_session', session_id: created.session_id })).type).toBe('session_destroyed');
        const push = await browserA.push((p) => p.type === 'session_expired' && p.session_id === created.session_id);
        expect(push.body.reason).toBe('destroyed');
        // The contract's 100 ms is measured by the benchmarks (row 7); here, room for a busy CI machine.
        expect(push.at - sent).toBeLessThan(1000);
      });

      it('revoke_user_sessions on B reaches browsers on A', async () => {
        const serviceA = await WsClient.open(urlA(), serviceKey);
        const serviceB = await WsClient.open(urlB(), serviceKey);
        const browserA = await WsClient.open(urlA());
        clients.push(serviceA, serviceB, browserA);
        const ids: string[] = [];
        for (let i = 0; i < 3; i++) ids.push((await serviceA.request({ type: 'create_session', user_id: 'u-ws-revoke' })).session_id as string);
        for (const id of ids) await browserA.request({ type: 'subscribe_session', session_id: id });
        expect((await serviceB.request({ type: 'revoke_user_sessions', user_id: 'u-ws-revoke' })).count).toBe(3);
        for (const id of ids) expect((await browserA.push((p) => p.type === 'session_expired' && p.session_id === id)).body.reason).toBe('revoked');
      });

      it('stops everything on SIGTERM', async () => {
        const exited = new Promise<number | null>((r) => script.once('exit', r));
        script.kill('SIGTERM');
        expect(await exited).toBe(0);
        for (const port of [ports.a, ports.b]) await expect(fetch(`http://127.0.0.1:${port}/readyz`)).rejects.toThrow();
        expect(await storeAnswers(store, ports.store)).toBe(false);
      }, 15_000);
    },
  );
