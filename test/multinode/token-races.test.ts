import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HoldProxy } from '../helpers/hold-proxy.js';
import { STORE_BACKENDS, type StoreServer } from '../helpers/store-servers.js';
import { waitForCount } from '../helpers/wait-for.js';
import { hasBuild, StdioNode, type Body } from './stdio-node.js';

/**
 * Token requests racing on two nodes of one store, each race made certain by holding one
 * store command of node A on the wire (a proxy between A and the store) while node B acts.
 */
const HASH_KEY = '[A-Za-z0-9_-]{22,}';

for (const backend of STORE_BACKENDS)
  describe.skipIf(!(backend.available && hasBuild()))(`token races across two nodes on one ${backend.name}`, () => {
    let server: StoreServer;
    let proxy: HoldProxy;
    /** Between B and the store: only watched. */
    let proxyB: HoldProxy;
    let a: StdioNode;
    let b: StdioNode;

    beforeAll(async () => {
      server = await backend.start();
      const url = server.freshStore().url;
      const port = Number(/127\.0\.0\.1:(\d+)/.exec(url)![1]);
      proxy = await HoldProxy.start(port);
      proxyB = await HoldProxy.start(port);
      a = new StdioNode(url.replace(`127.0.0.1:${port}`, `127.0.0.1:${proxy.port}`), { GATEWAY_NODE_ID: 'a' });
      b = new StdioNode(url.replace(`127.0.0.1:${port}`, `127.0.0.1:${proxyB.port}`), { GATEWAY_NODE_ID: 'b' });
      // Once each, so that Redis has the scripts: a first EVALSHA answered NOSCRIPT would be
      // sent again as EVAL, after the answer the tests wait for.
      for (const n of [a, b]) {
        const warm = await n.request({ type: 'create_session', user_id: 'warm-up' });
        await n.request({ type: 'exchange_session', session_id: warm.session_id });
        await n.request({ type: 'extend_session', session_id: warm.session_id, ttl: 7200 });
      }
    }, 30_000);

    afterAll(async () => {
      await a?.stop();
      await b?.stop();
      await proxy?.close();
      await proxyB?.close();
      await server?.stop();
    });

    /** Sends `body` to A with the first store command matching `held` kept back until `meanwhile` is done. */
    async function withHeld(held: RegExp, body: Body, meanwhile: () => Promise<void>): Promise<Body> {
      proxy.arm(held);
      const reply = a.request(body);
      await waitForCount(() => (proxy.holding ? 1 : 0), 1, 5000, 'held store commands');
      await meanwhile();
      proxy.release();
      return reply;
    }

    /** Polls until `sessionId` is no longer valid: its end has passed. */
    async function waitForEnd(sessionId: unknown, withinMs: number): Promise<void> {
      const deadline = performance.now() + withinMs;
      while ((await b.request({ type: 'validate_session', session_id: sessionId })).type === 'session_valid') {
        if (performance.now() > deadline) throw new Error(`the control session still lives after ${withinMs} ms`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }

    it('one refresh token on both nodes, the reuse revoking the family before the winner reads it: exactly one token_refreshed, its pair dead', async () => {
      const pair = await b.request({ type: 'generate_access_token', payload: { sub: 'two-tabs' } });
      let reuse: Body | undefined;
      // A wins the token; its next read (the family's causes) waits until B's reuse revoked the family.
      const won = await withHeld(new RegExp(`rfr:${HASH_KEY}`), { type: 'refresh_token', refresh_token: pair.refresh_token }, async () => {
        reuse = await b.request({ type: 'refresh_token', refresh_token: pair.refresh_token });
      });
      expect(reuse).toMatchObject({ type: 'token_invalid', error: 'Refresh token already used: its token family is revoked' });
      expect(won.type).toBe('token_refreshed');
      for (const n of [a, b]) expect(await n.request({ type: 'verify_token', token: won.access_token })).toMatchObject({ type: 'token_invalid' });
      expect(await b.request({ type: 'refresh_token', refresh_token: won.refresh_token })).toMatchObject({ type: 'token_invalid' });
    });
    it('exchange_session on A while B extends the session: the tokens live until the new end', async () => {
      const session = await b.request({ type: 'create_session', user_id: 'exchanging', ttl: 2 });
      // Ends a second after the session's first end (Redis counts a PX from the held write's arrival).
      const control = await b.request({ type: 'create_session', user_id: 'control', ttl: 3 });
      let extended: Body | undefined;
      // A has read the session (2 s); its write of the binding waits until B moved the end.
      const pair = await withHeld(new RegExp(`be:${HASH_KEY}`), { type: 'exchange_session', session_id: session.session_id }, async () => {
        proxyB.watch(new RegExp(`be:${HASH_KEY}`));
        extended = await b.request({ type: 'extend_session', session_id: session.session_id, ttl: 3600 });
        // B moves the binding before its record: done before A's write goes on.
        await waitForCount(() => proxyB.answered, 1, 5000, "B's write of the binding");
      });
      expect(extended).toMatchObject({ type: 'session_extended', expires_in: 3600 });
      expect(pair.type).toBe('token_generated');
      await waitForEnd(control.session_id, 7000);
      expect(await a.request({ type: 'validate_session', session_id: session.session_id })).toMatchObject({ type: 'session_valid' });
      for (const n of [a, b]) expect(await n.request({ type: 'verify_token', token: pair.access_token })).toMatchObject({ type: 'token_valid' });
      expect(await a.request({ type: 'refresh_token', refresh_token: pair.refresh_token })).toMatchObject({ type: 'token_refreshed' });
    });

    it("extend_session on A and then on B, A's write of the binding landing last: the tokens live until B's later end", async () => {
      const session = await b.request({ type: 'create_session', user_id: 'extending', ttl: 2 });
      const pair = await b.request({ type: 'exchange_session', session_id: session.session_id });
      let later: Body | undefined;
      // A's extend (3 s) has its write of the binding (made before its record) wait until B's
      // extend (3600 s) is done: it lands last, then A's record write finds B's and is made on it.
      const first = await withHeld(new RegExp(`be:${HASH_KEY}`), { type: 'extend_session', session_id: session.session_id, ttl: 3 }, async () => {
        proxyB.watch(new RegExp(`be:${HASH_KEY}`));
        later = await b.request({ type: 'extend_session', session_id: session.session_id, ttl: 3600 });
        // B moves the binding before its record: done before A's write goes on.
        await waitForCount(() => proxyB.answered, 1, 5000, "B's write of the binding");
      });
      expect(first).toMatchObject({ type: 'session_extended' });
      expect(later).toMatchObject({ type: 'session_extended', expires_in: 3600 });
      const control = await b.request({ type: 'create_session', user_id: 'control', ttl: 3 });
      await waitForEnd(control.session_id, 7000);
      expect(await a.request({ type: 'validate_session', session_id: session.session_id })).toMatchObject({ type: 'session_valid' });
      for (const n of [a, b]) expect(await n.request({ type: 'verify_token', token: pair.access_token })).toMatchObject({ type: 'token_valid' });
    });
  });
