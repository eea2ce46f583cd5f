import { Agent } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { httpPost } from '../helpers/http-post.js';
import {
  browser,
  createSession,
  eventually,
  fetchRaw,
  JWT_SECRET,
  Peer,
  rawHttpClient,
  service,
  SERVICE_KEY,
  settle,
  start,
  startWithStoreDouble,
  stopAll,
} from './helpers.js';
import { ensureBuilt, killAll, spawnServer } from './process.js';

afterEach(stopAll);
afterAll(killAll);
beforeAll(() => ensureBuilt(), 120_000);

describe('drain', () => {
  it('answers what was read, reads nothing more, refuses new connections, then closes with 1012', async () => {
    const { server, store } = await startWithStoreDouble();
    const sid = await createSession(server.url);
    const s = service(server.url);
    await s.opened;
    // Hold the store: the next request stays in flight until released.
    const held = store.hold('get');
    const inFlight = s.post('validate_session', { session_id: sid });
    await held.reached; // read and being served
    const drained = server.drain();
    await settle();
    s.post('validate_session', { session_id: sid }); // read after the drain began: not served
    const late = new Peer(server.url);
    expect(
      await late.opened.then(
        () => 'open',
        (e: Error) => e.message,
      ),
    ).toMatch(/ECONNREFUSED|HTTP 503/);
    held.release();
    const reply = await s.next((m) => m.body.in_reply_to === inFlight);
    expect(reply.body.type).toBe('session_valid');
    expect(await s.closed).toEqual({ code: 1012, reason: 'Server restarting: reconnect' });
    await drained;
    expect(s.messages).toEqual([]);
  });
});

describe('HTTP requests during a drain', () => {
  it('from its start every answer says Connection: close and closes its connection, a kept-alive one included: clients move off, none is cut', async () => {
    const { server, clock, http } = await start();
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const post = () =>
      httpPost(
        `${http}/v1/rpc`,
        JSON.stringify({ type: 'validate_session', session_id: 'x' }),
        {
          Authorization: `Bearer ${SERVICE_KEY}`,
          'Content-Type': 'application/json',
        },
        { agent },
      );
    try {
      expect((await post()).headers.connection).toBe('keep-alive');
      // The delay lasts until the test moves the ManualClock: everything is still served meanwhile.
      const drained = server.drain({ delayMs: 60_000 });
      const reused = await post();
      expect([reused.status, reused.reusedSocket, reused.headers.connection]).toEqual([200, true, 'close']);
      // That connection was closed after its answer: the next request opens another, told the same.
      const next = await post();
      expect([next.status, next.reusedSocket, next.headers.connection]).toEqual([200, false, 'close']);
      for (const path of ['/healthz', '/readyz', '/nothing-here']) expect((await fetchRaw(`${http}${path}`)).headers.connection, path).toBe('close');
      clock.advance(60_000);
      await drained;
    } finally {
      agent.destroy();
    }
  });

  it('a POST /v1/rpc whose body is still arriving when the drain begins is read and answered before its connection closes', async () => {
    const { server } = await start();
    const body = JSON.stringify({ type: 'create_session', user_id: 'slow-body' });
    const c = await rawHttpClient(server.port);
    await eventually(() => expect(server.pendingHeads.size).toBe(1));
    c.socket.write(
      `POST /v1/rpc HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${SERVICE_KEY}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${body.length}\r\n\r\n${body.slice(0, 10)}`,
    );
    // Its head is whole (and accepted) once the connection leaves the count of those still sending one.
    await eventually(() => expect(server.pendingHeads.size).toBe(0));
    const drained = server.drain();
    c.socket.write(body.slice(10));
    const answer = await c.closed;
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(answer).toContain('"type":"session_created"');
    await drained;
  });
});

describe('SIGTERM', () => {
  it('drains and exits 0: every socket gets 1012', async () => {
    const p = await spawnServer({ GATEWAY_SERVICE_KEY: SERVICE_KEY, GATEWAY_JWT_SECRET: JWT_SECRET, GATEWAY_DRAIN_DELAY: '0', GATEWAY_DRAIN_WINDOW: '0' });
    const s = service(p.url);
    const b = browser(p.url);
    await Promise.all([s.opened, b.opened]);
    // A burst in flight as the signal lands: every reply that comes is whole, then 1012.
    for (let i = 0; i < 200; i++) s.post('create_session', { user_id: `u${i}` });
    p.child.kill('SIGTERM');
    const [sc, bc] = await Promise.all([s.closed, b.closed]);
    expect(sc.code).toBe(1012);
    expect(bc.code).toBe(1012);
    for (const m of s.messages) expect(m.body.type).toBe('session_created');
    expect(await p.exited).toEqual({ code: 0, signal: null });
    expect(p.stderr()).toContain('"msg":"drained"');
    await expect(fetchRaw(`${p.http}/healthz`)).rejects.toThrow(/ECONNREFUSED/);
  });
});

describe('SIGTERM, as a load balancer sees it', () => {
  it('/readyz answers 503 at once while everything is still served for the delay; then refusal; sockets closed over the window; exit 0', async () => {
    const DELAY_MS = 1500;
    const WINDOW_MS = 2000;
    const N = 20;
    const p = await spawnServer({
      GATEWAY_SERVICE_KEY: SERVICE_KEY,
      GATEWAY_JWT_SECRET: JWT_SECRET,
      GATEWAY_DRAIN_DELAY: String(DELAY_MS / 1000),
      GATEWAY_DRAIN_WINDOW: String(WINDOW_MS / 1000),
    });
    const peers = Array.from({ length: N }, () => service(p.url));
    await Promise.all(peers.map((x) => x.opened));
    const closedAt: number[] = [];
    const codes = peers.map((x) => x.closed.then((c) => (closedAt.push(Date.now()), c.code)));
    expect((await fetchRaw(`${p.http}/readyz`)).status).toBe(200);

    const probes: { at: number; status: number | 'refused' }[] = [];
    const signalled = Date.now();
    p.child.kill('SIGTERM');
    // From the moment the process has taken the signal (its log line says so), no probe may see 200.
    while (!p.stderr().includes('"msg":"shutting down"')) await settle(5);
    let lateUpgrade: Promise<string> | undefined;
    // A load balancer's probe, every 50 ms, until the listener is gone.
    for (;;) {
      const status = await fetchRaw(`${p.http}/readyz`).then(
        (r) => r.status,
        () => 'refused' as const,
      );
      probes.push({ at: Date.now() - signalled, status });
      // Inside the delay a new connection is still accepted and served.
      if (status === 503 && lateUpgrade === undefined) {
        const late = service(p.url);
        lateUpgrade = late.opened.then(async () => (await late.call('create_session', { user_id: 'late' })).type);
      }
      if (status === 'refused') break;
      await settle(50);
    }
    const exit = await p.exited;
    const exitedAfter = Date.now() - signalled;
    const first = probes[0]!;
    const firstRefusal = probes.find((x) => x.status === 'refused')!;
    const spread = Math.max(...closedAt) - Math.min(...closedAt);
    console.log(
      `drain: first probe ${first.at} ms after SIGTERM: ${first.status}; ${probes.filter((x) => x.status === 503).length} probes saw 503; ` +
        `first refusal at ${firstRefusal.at} ms (delay ${DELAY_MS} ms); ${N} sockets closed over ${spread} ms (window ${WINDOW_MS} ms); exit ${exit.code} after ${exitedAfter} ms`,
    );
    expect(first.status).toBe(503);
    expect(probes.filter((x) => x.status === 200)).toEqual([]);
    expect(probes.findIndex((x) => x.status === 'refused')).toBe(probes.length - 1);
    expect(firstRefusal.at).toBeGreaterThanOrEqual(DELAY_MS - 100);
    expect(await lateUpgrade).toBe('session_created');
    expect(await Promise.all(codes)).toEqual(Array(N).fill(1012));
    // Spread over the window, not all in one instant (generous: a loaded machine stretches timers).
    expect(spread).toBeGreaterThanOrEqual(WINDOW_MS / 2);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(exitedAfter).toBeLessThan(DELAY_MS + WINDOW_MS + 15_000);
  }, 60_000);
});
