import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/redis-server.js';
import { STORE_BACKENDS, type StoreServer } from '../helpers/store-servers.js';
import { CLI, hasBuild, ROOT, SECRET } from './stdio-node.js';
import { WsClient } from './ws-client.js';

/** Two `serve` processes on one shared store (Redis with AOF on, then PostgreSQL): /readyz follows the store, WebSocket clients get error 11. */
const SERVICE_KEY = 'ZwRSGg3BXVM2OC9686DzaD3nccqc2NFQFAY3VMaJrkE=';

async function waitStatus(url: string, status: number, withinMs: number): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    const got = await fetch(url).then(
      (r) => r.status,
      () => 0,
    );
    if (got === status) return performance.now() - t0;
    if (performance.now() - t0 > withinMs) throw new Error(`${url}: still ${got} after ${withinMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

for (const backend of STORE_BACKENDS)
  describe.skipIf(!(backend.available && hasBuild()))(`two serve nodes on one ${backend.name}`, () => {
    let server: StoreServer;
    const nodes: { proc: ChildProcess; port: number }[] = [];
    const clients: WsClient[] = [];

    beforeAll(async () => {
      server = await backend.start({ durable: true });
      const store = server.freshStore().url;
      for (const id of ['node-a', 'node-b']) {
        const port = await freePort();
        const proc = spawn(process.execPath, [CLI, 'serve'], {
          cwd: ROOT,
          env: {
            PATH: process.env.PATH ?? '',
            GATEWAY_STORE: store,
            GATEWAY_JWT_SECRET: SECRET,
            GATEWAY_SERVICE_KEY: SERVICE_KEY,
            GATEWAY_NODE_ID: id,
            GATEWAY_PORT: String(port),
            GATEWAY_LOG_LEVEL: 'error',
            GATEWAY_DRAIN_DELAY: '0',
          },
          stdio: ['ignore', 'ignore', 'inherit'],
        });
        nodes.push({ proc, port });
      }
      for (const n of nodes) await waitStatus(`http://127.0.0.1:${n.port}/readyz`, 200, 10_000);
    }, 30_000);

    afterAll(async () => {
      for (const c of clients) c.close();
      for (const n of nodes) {
        const exited = new Promise((r) => n.proc.once('exit', r));
        n.proc.kill('SIGTERM');
        const t = setTimeout(() => n.proc.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
      await server?.stop();
    });

    it(`${backend.name} killed: /readyz 503 and error 11 on both nodes; back: ready within 2 s, the session still valid`, async () => {
      const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
      const svcA = await WsClient.open(`ws://127.0.0.1:${a.port}`, SERVICE_KEY);
      const svcB = await WsClient.open(`ws://127.0.0.1:${b.port}`, SERVICE_KEY);
      clients.push(svcA, svcB);
      const created = await svcA.request({ type: 'create_session', user_id: 'u-serve' });
      expect((await svcB.request({ type: 'validate_session', session_id: created.session_id })).type).toBe('session_valid');

      await server.crash();
      for (const n of nodes) expect(await waitStatus(`http://127.0.0.1:${n.port}/readyz`, 503, 1000)).toBeLessThan(1000);
      for (const c of [svcA, svcB]) {
        const t0 = performance.now();
        expect(await c.request({ type: 'validate_session', session_id: created.session_id })).toMatchObject({ type: 'error', code: 11 });
        expect(performance.now() - t0).toBeLessThan(1000);
      }

      await server.restart();
      for (const n of nodes) expect(await waitStatus(`http://127.0.0.1:${n.port}/readyz`, 200, 2000)).toBeLessThan(2000);
      expect((await svcA.request({ type: 'validate_session', session_id: created.session_id })).type).toBe('session_valid');
      expect((await svcB.request({ type: 'validate_session', session_id: created.session_id })).type).toBe('session_valid');
    });
  });
