/**
 * A rolling restart as a load balancer runs it: two gateway nodes on one Redis behind a
 * TCP balancer that sends new connections only to nodes whose /readyz answers 200 (probed
 * every 100 ms), N browser clients of the client library bound by their cookies. Node A gets
 * SIGTERM; while it drains, some sessions are destroyed through node B. Every client ends up
 * bound on B, every destroyed session's client is told of the end (none missed), the others
 * are not, the reconnects are spread over the drain window, and A exits 0.
 * `make test`: 200 clients, 3 s window; `make soak` (SOAK=1): 1,000 clients, 10 s window.
 */
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { GatewayClient } from '../../client/src/index.js';
import { limit, report, SOAK } from '../fuzz/report.js';
import { RedisServer } from '../helpers/redis-server.js';
import { required } from '../helpers/required.js';
import { waitForCount } from '../helpers/wait-for.js';
import { SECRET } from '../security/harness.js';
import { spawnServe, type ServeNode } from '../security/spawn.js';
import { Client } from './client.js';

const N = SOAK ? 1000 : 200;
const ENDED = N / 10;
const DELAY_S = 1;
const WINDOW_S = SOAK ? 10 : 3;
const SERVICE_KEY = 'oYbSjbiRYxFxmpeJQcYLbeBrz467CmS4ARkJti/GQxQ=';
const ORIGIN = 'http://app.test';

const redisPresent = required('redis-server');
let redis: RedisServer | undefined;
const nodes: ServeNode[] = [];
let balancer: Server | undefined;
const sockets = new Set<Socket>();
let stopProbing = () => {};

/** A node's value of one metric series. */
async function metric(node: ServeNode, series: string): Promise<number> {
  const text = await fetch(`http://127.0.0.1:${node.port}/metrics`).then((r) => r.text());
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

/** Round robin over the nodes whose last /readyz probe said 200; a connection with none ready is cut. */
async function startBalancer(backends: ServeNode[]): Promise<number> {
  const ready = new Map<ServeNode, boolean>(backends.map((b) => [b, true]));
  let probing = true;
  const probe = async () => {
    while (probing) {
      await Promise.all(
        backends.map(async (b) =>
          ready.set(
            b,
            await fetch(`http://127.0.0.1:${b.port}/readyz`).then(
              (r) => r.status === 200,
              () => false,
            ),
          ),
        ),
      );
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  void probe();
  stopProbing = () => (probing = false);
  let turn = 0;
  balancer = createServer((client) => {
    sockets.add(client);
    client.once('close', () => sockets.delete(client));
    const live = backends.filter((b) => ready.get(b));
    if (live.length === 0) return client.destroy();
    const target = live[turn++ % live.length]!;
    const upstream = tcpConnect(target.port, '127.0.0.1');
    sockets.add(upstream);
    upstream.once('close', () => sockets.delete(upstream));
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => client.destroy());
  });
  await new Promise<void>((r) => balancer!.listen(0, '127.0.0.1', r));
  return (balancer.address() as { port: number }).port;
}

beforeAll(async () => {
  if (!redisPresent) return;
  redis = await RedisServer.start();
  for (const id of ['node-a', 'node-b']) {
    nodes.push(
      await spawnServe({
        GATEWAY_STORE: redis.url,
        GATEWAY_JWT_SECRET: SECRET,
        GATEWAY_SERVICE_KEY: SERVICE_KEY,
        GATEWAY_NODE_ID: id,
        GATEWAY_ALLOWED_ORIGINS: ORIGIN,
        GATEWAY_MAX_CONNECTIONS_PER_ADDRESS: String(N * 4),
        GATEWAY_DRAIN_DELAY: String(DELAY_S),
        GATEWAY_DRAIN_WINDOW: String(WINDOW_S),
        GATEWAY_LOG_LEVEL: 'warn',
      }),
    );
  }
}, 60_000);

afterAll(async () => {
  stopProbing();
  for (const s of sockets) s.destroy();
  balancer?.close();
  for (const n of nodes) await n.stop();
  await redis?.stop();
});

interface Tracked {
  client: GatewayClient;
  sid: string;
  ends: number;
  closes1012: number[];
  reopened: number[];
}

describe.skipIf(!redisPresent)(`rolling restart of one of two nodes under ${N} bound browser connections`, () => {
  it(
    'every client rebound to the other node, no session end missed, reconnects spread over the window',
    async () => {
      const [a, b] = nodes as [ServeNode, ServeNode];
      const port = await startBalancer(nodes);
      const service = await Client.open(b.url, SERVICE_KEY);
      const tracked: Tracked[] = [];
      for (let i = 0; i < N; i++) {
        const reply = await service.call({ type: 'create_session', user_id: `u${i}` });
        const sid = reply!.session_id as string;
        // A browser: its cookie and its page's origin on the upgrade.
        class BrowserSocket extends WebSocket {
          constructor(url: string) {
            super(url, { headers: { Cookie: `sid=${sid}`, Origin: ORIGIN } });
          }
        }
        const client = new GatewayClient({
          url: `ws://127.0.0.1:${port}/`,
          WebSocket: BrowserSocket as never,
          reconnect: { initialDelayMs: 100, maxDelayMs: 1000 },
        });
        const t: Tracked = { client, sid, ends: 0, closes1012: [], reopened: [] };
        client.on('session_expired', () => t.ends++);
        client.on('close', (e) => e.code === 1012 && t.closes1012.push(Date.now()));
        client.on('open', (e) => e.reconnected && t.reopened.push(Date.now()));
        tracked.push(t);
      }
      await Promise.all(tracked.map((t) => t.client.connect()));
      const onA = await metric(a, 'gateway_bound_connections');
      const onB = await metric(b, 'gateway_bound_connections');
      expect(onA + onB).toBe(N);
      expect(onA).toBeGreaterThan(N / 4);

      const signalled = Date.now();
      a.proc.kill('SIGTERM');
      // During the restart (A drains), sessions end, destroyed through B: one in ten, half of them
      // of clients on A (even turns of the balancer), half on B.
      await new Promise((r) => setTimeout(r, (DELAY_S + WINDOW_S / 2) * 1000));
      const ended = tracked.filter((_, i) => i % 20 === 0 || i % 20 === 5);
      expect(ended).toHaveLength(ENDED);
      for (const t of ended) expect((await service.call({ type: 'destroy_session', session_id: t.sid }))!.type).toBe('session_destroyed');
      const exit = await new Promise<number | null>((r) => (a.proc.exitCode !== null ? r(a.proc.exitCode) : a.proc.once('exit', (code) => r(code))));
      const exitedAfter = Date.now() - signalled;

      await waitForCount(() => ended.filter((t) => t.ends > 0).length, ENDED, limit(30_000), 'session ends told');
      const live = tracked.filter((t) => !ended.includes(t));
      await waitForCount(() => live.filter((t) => t.client.connected).length, live.length, limit(30_000), 'clients open again');
      const boundOnB = await metric(b, 'gateway_bound_connections');

      const moved = live.filter((t) => t.closes1012.length > 0);
      const reconnects = moved
        .flatMap((t) => t.reopened)
        .map((at) => at - signalled)
        .sort((x, y) => x - y);
      const closes = moved
        .flatMap((t) => t.closes1012)
        .map((at) => at - signalled)
        .sort((x, y) => x - y);
      const spread = reconnects.length > 0 ? reconnects.at(-1)! - reconnects[0]! : 0;
      const perSecond: Record<string, number> = {};
      for (const r of reconnects) perSecond[`${Math.floor(r / 1000)}s`] = (perSecond[`${Math.floor(r / 1000)}s`] ?? 0) + 1;
      const figures = {
        clients: N,
        on_a_before: onA,
        drain_delay_s: DELAY_S,
        drain_window_s: WINDOW_S,
        closed_1012: closes.length,
        first_close_ms: closes[0],
        last_close_ms: closes.at(-1),
        reconnected: reconnects.length,
        first_reconnect_ms: reconnects[0],
        last_reconnect_ms: reconnects.at(-1),
        reconnect_spread_ms: spread,
        reconnects_per_second: perSecond,
        sessions_ended_during_restart: ENDED,
        ends_told: ended.filter((t) => t.ends > 0).length,
        bound_on_b_after: boundOnB,
        a_exit_code: exit,
        a_exited_after_ms: exitedAfter,
      };
      report('rolling restart', figures);
      console.log(JSON.stringify(figures));

      expect(exit).toBe(0);
      expect(boundOnB).toBe(live.length);
      for (const t of ended) expect(t.ends, 'told once').toBe(1);
      for (const t of live) expect(t.ends).toBe(0);
      // Clients on A were moved: each closed with 1012 once and reopened (through the balancer, on B).
      expect(moved.length).toBeGreaterThanOrEqual(onA - ENDED);
      for (const t of moved) expect(t.reopened.length).toBeGreaterThanOrEqual(1);
      // Spread over the window, not all in one instant (generous bounds for a busy machine).
      expect(closes[0]!).toBeGreaterThanOrEqual(DELAY_S * 1000 - 100);
      expect(spread).toBeGreaterThanOrEqual((WINDOW_S * 1000) / 2);
      for (const t of tracked) t.client.close();
      service.close();
    },
    limit(120_000, 600_000),
  );
});
