import { afterEach, describe, expect, it } from 'vitest';
import { STORE_BACKENDS, type StoreServer } from '../helpers/store-servers.js';
import { waitForCount } from '../helpers/wait-for.js';
import { hasBuild, StdioNode, type Body } from './stdio-node.js';

/**
 * The shared store (Redis, then PostgreSQL) goes away under load and comes back, with two
 * gateway processes on it.
 *
 * kill -9 (of every server process): Redis runs with AOF and `appendfsync always`, and
 * PostgreSQL commits to its WAL, so every write acknowledged before the gateway answered
 * is there after a restart on the same port and directory. (Without persistence a
 * restarted Redis is empty and every session would be gone: correct fail-closed, but not
 * "still valid after".)
 * SIGSTOP: the stalled server keeps its sockets open; only the per-operation time limit
 * turns the wait into error 11.
 */

interface Sample {
  node: 'A' | 'B';
  kind: 'live' | 'dead' | 'revoked' | 'create';
  sent: number;
  replied: number;
  reply: Body;
}

async function setup(server: StoreServer) {
  const { url } = server.freshStore();
  const a = new StdioNode(url, { GATEWAY_NODE_ID: 'node-a', GATEWAY_LOG_LEVEL: 'error' });
  const b = new StdioNode(url, { GATEWAY_NODE_ID: 'node-b', GATEWAY_LOG_LEVEL: 'error' });
  const live: string[] = [];
  for (let i = 0; i < 20; i++) live.push((await (i % 2 ? a : b).request({ type: 'create_session', user_id: `u${i}` })).session_id as string);
  const dead: string[] = [];
  for (let i = 0; i < 5; i++) {
    const id = (await a.request({ type: 'create_session', user_id: `d${i}` })).session_id as string;
    expect((await b.request({ type: 'destroy_session', session_id: id })).type).toBe('session_destroyed');
    dead.push(id);
  }
  const pair = await a.request({ type: 'generate_access_token', payload: { sub: 'u-revoked' } });
  expect((await b.request({ type: 'revoke_token', token: pair.access_token })).type).toBe('token_revoked');
  const followed = live[0]!;
  expect((await a.request({ type: 'subscribe_session', session_id: followed }, 'web')).type).toBe('subscribed');
  return { a, b, live, dead, revoked: pair.access_token as string, followed };
}

/** Bounded load: `loops` request loops per node until `stop()`; every reply recorded. */
function load(nodes: { A: StdioNode; B: StdioNode }, live: string[], dead: string[], revoked: string, loops = 4) {
  const samples: Sample[] = [];
  let running = true;
  let n = 0;
  const loop = async (name: 'A' | 'B') => {
    const node = nodes[name];
    while (running && n < 200_000) {
      const i = n++;
      const pick = i % 10;
      const kind: Sample['kind'] = pick < 5 ? 'live' : pick < 7 ? 'dead' : pick < 9 ? 'revoked' : 'create';
      const body =
        kind === 'live'
          ? { type: 'validate_session', session_id: live[i % live.length] }
          : kind === 'dead'
            ? { type: 'validate_session', session_id: dead[i % dead.length] }
            : kind === 'revoked'
              ? { type: 'verify_token', token: revoked }
              : { type: 'create_session', user_id: 'load' };
      const sent = performance.now();
      const reply = await node.request(body);
      samples.push({ node: name, kind, sent, replied: performance.now(), reply });
      await new Promise((r) => setTimeout(r, 3));
    }
  };
  const done = Promise.all([...Array.from({ length: loops }, () => loop('A')), ...Array.from({ length: loops }, () => loop('B'))]);
  return {
    samples,
    stop: async () => {
      running = false;
      await done;
    },
  };
}

const correct = (s: Sample): boolean =>
  s.kind === 'live'
    ? s.reply.type === 'session_valid'
    : s.kind === 'dead'
      ? s.reply.type === 'session_invalid'
      : s.kind === 'revoked'
        ? s.reply.type === 'token_invalid'
        : s.reply.type === 'session_created';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const backend of STORE_BACKENDS)
  describe.skipIf(!(backend.available && hasBuild()))(`${backend.name} outage under load, two gateway processes`, () => {
    const cleanup: (() => Promise<unknown>)[] = [];
    afterEach(async () => {
      for (const fn of cleanup.splice(0).reverse()) await fn();
    });

    for (const mode of ['kill -9, restart on the same data', 'SIGSTOP / SIGCONT'] as const) {
      it(`${mode}: no false valid, only error 11 while down, service back within 2 s, sessions kept`, async () => {
        const server = await backend.start({ durable: mode.startsWith('kill') });
        cleanup.push(() => server.stop());
        const { a, b, live, dead, revoked, followed } = await setup(server);
        cleanup.push(
          () => a.stop(),
          () => b.stop(),
        );

        const run = load({ A: a, B: b }, live, dead, revoked, 8);
        // Each phase lasts its time and until enough requests fell in it (a loaded machine is slower).
        await waitForCount(() => run.samples.length, 50, 20_000, 'replies before the outage');
        const down = performance.now();
        if (mode.startsWith('kill')) await server.crash();
        else server.pause();
        await sleep(2500);
        const inWindow = () => run.samples.filter((s) => s.sent > down + 100 && s.sent < performance.now() - 1100).length;
        await waitForCount(inWindow, 10, 20_000, 'requests sent and answered during the outage');
        const upAt = performance.now();
        if (mode.startsWith('kill')) await server.restart();
        else server.resume();
        const up = performance.now();
        await sleep(2500);
        await waitForCount(() => run.samples.filter((s) => s.sent > up + 2000).length, 21, 20_000, 'requests sent 2 s after the store came back');
        await run.stop();
        const { samples } = run;

        // Never a false "valid", before, during or after the outage.
        const falseValid = samples.filter(
          (s) => (s.kind === 'dead' && s.reply.type === 'session_valid') || (s.kind === 'revoked' && s.reply.type === 'token_valid'),
        );
        expect(falseValid).toEqual([]);
        // Every reply is the right answer or error 11, and no error but 11.
        const wrong = samples.filter((s) => !correct(s) && !(s.reply.type === 'error' && s.reply.code === 11));
        expect(wrong.map((s) => [s.kind, s.reply])).toEqual([]);
        // Sent while down (after a 100 ms grace for in-flight work, and at least 1.1 s before
        // the store returns, so that a stalled request's time limit falls inside the outage):
        // only error 11, each within the 1 s limit.
        const during = samples.filter((s) => s.sent > down + 100 && s.sent < upAt - 1100);
        expect(during.length).toBeGreaterThanOrEqual(10);
        expect(during.filter((s) => s.reply.type !== 'error')).toEqual([]);
        const slowest = Math.max(...during.map((s) => s.replied - s.sent));
        // One 800 ms limit at most, never two in a row (a wait behind another request, 1.6 s and
        // more): 1.5 s leaves a busy 2-core machine 700 ms of slack and still tells the two apart.
        console.log(`FIGURES ${backend.name} outage ${mode}: slowest answer while down ${Math.round(slowest)} ms over ${during.length} requests`);
        expect(slowest).toBeLessThan(1500);
        // Back within 2 s of the store answering again: from then on every answer is right.
        const afterUp = samples.filter((s) => s.sent > up + 2000);
        expect(afterUp.length).toBeGreaterThan(20);
        expect(afterUp.filter((s) => !correct(s))).toEqual([]);
        const firstRight = Math.min(...samples.filter((s) => s.sent > up && correct(s)).map((s) => s.replied));
        const lastWrong = Math.max(up, ...samples.filter((s) => s.sent > up && !correct(s)).map((s) => s.replied));

        // Acknowledged before the outage: still valid after it, on both nodes.
        for (const id of live) {
          expect((await a.request({ type: 'validate_session', session_id: id })).type).toBe('session_valid');
          expect((await b.request({ type: 'validate_session', session_id: id })).type).toBe('session_valid');
        }
        // Pub/sub is back too: an end on B reaches A's subscriber.
        const sent = performance.now();
        expect((await b.request({ type: 'destroy_session', session_id: followed })).type).toBe('session_destroyed');
        const push = await a.push((p) => p.type === 'session_expired' && p.session_id === followed);
        // Through pub/sub, not a later re-check (that would be the session's ttl away). The 200 ms
        // figure of docs/protocol.md is measured by the benchmarks (row 7); a test on a loaded
        // 2-core machine saw 205 ms, so the bound here has slack.
        expect(push.at - sent).toBeLessThan(1000);

        const during11 = during.length;
        console.log(
          `${mode}: ${samples.length} requests, ${during11} during the outage (all error 11, slowest ${slowest.toFixed(0)} ms), ` +
            `first right answer ${(firstRight - up).toFixed(0)} ms and last error ${(lastWrong - up).toFixed(0)} ms after ${backend.name} was back`,
        );
        expect(lastWrong - up).toBeLessThan(2000);
      }, 90_000);
    }
  });
