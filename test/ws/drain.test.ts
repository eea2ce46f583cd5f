import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { browser, createSession, fetchRaw, JWT_SECRET, Peer, service, SERVICE_KEY, settle, startWithStoreDouble, stopAll } from './helpers.js';
import { ensureBuilt, killAll, spawnServer } from './process.js';

afterEach(stopAll);
afterAll(killAll);
beforeAll(() => ensureBuilt(), 120_000);

describe('drain', () => {
  it('answers what was read, reads nothing more, refuses new connections, then closes with 1001', async () => {
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
    expect(await late.opened.then(() => 'open', (e: Error) => e.message)).toMatch(/ECONNREFUSED|HTTP 503/);
    held.release();
    const reply = await s.next((m) => m.body.in_reply_to === inFlight);
    expect(reply.body.type).toBe('session_valid');
    expect(await s.closed).toEqual({ code: 1001, reason: 'Server shutting down' });
    await drained;
    expect(s.messages).toEqual([]);
  });
});

describe('SIGTERM', () => {
  it('drains and exits 0: every socket gets 1001', async () => {
    const p = await spawnServer({ GATEWAY_SERVICE_KEY: SERVICE_KEY, GATEWAY_JWT_SECRET: JWT_SECRET });
    const s = service(p.url);
    const b = browser(p.url);
    await Promise.all([s.opened, b.opened]);
    // A burst in flight as the signal lands: every reply that comes is whole, then 1001.
    for (let i = 0; i < 200; i++) s.post('create_session', { user_id: `u${i}` });
    p.child.kill('SIGTERM');
    const [sc, bc] = await Promise.all([s.closed, b.closed]);
    expect(sc.code).toBe(1001);
    expect(bc.code).toBe(1001);
    for (const m of s.messages) expect(m.body.type).toBe('session_created');
    expect(await p.exited).toEqual({ code: 0, signal: null });
    expect(p.stderr()).toContain('"msg":"drained"');
    await expect(fetchRaw(`${p.http}/healthz`)).rejects.toThrow(/ECONNREFUSED/);
  });
});
