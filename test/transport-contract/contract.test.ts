import { afterEach, describe, expect, it } from 'vitest';
import { GatewayError } from '../../src/errors.js';
import type { Msg } from '../ws/helpers.js';
import { httpTransport, stdioTransport, wsTransport, type Harness } from './transports.js';

/**
 * One contract, every transport: what the protocol (docs/protocol.md) promises about envelopes, replies,
 * errors, pushes and ordering must hold on stdio, WebSocket and HTTP alike, because all are
 * thin adapters over the same pipeline. Where a transport does not carry something
 * (Transport.carries: HTTP has no envelope, no connection to push to, no order between
 * concurrent requests, and refuses an oversized body unread), its own documented answer is
 * checked instead.
 */

const req = (type: string, msgId: number, fields: Record<string, unknown> = {}, src = 'c1', dest = 'gateway') =>
  JSON.stringify({ src, dest, body: { type, msg_id: msgId, ...fields } });
const replyTo = (id: number) => (m: Msg) => m.body.in_reply_to === id;
const isPush = (m: Msg) => m.body.in_reply_to === undefined && m.body.msg_id !== undefined;
const settle = () => new Promise((r) => setTimeout(r, 20));

for (const transport of [stdioTransport, wsTransport, httpTransport]) {
  const c = transport.carries;
  describe(`transport contract: ${transport.name}`, () => {
    afterEach(() => transport.cleanup());

    async function call(h: Harness, type: string, id: number, fields: Record<string, unknown> = {}, src = 'c1'): Promise<Msg['body']> {
      h.send(req(type, id, fields, src));
      return (await h.next(replyTo(id))).body;
    }

    if (c.envelopes) {
      it('a reply swaps the ends and points at the msg_id', async () => {
        const h = await transport.open();
        h.send(req('create_session', 41, { user_id: 'u1' }, 'alice', 'gw-7'));
        const r = await h.next(replyTo(41));
        expect(r.src).toBe('gw-7');
        expect(r.dest).toBe('alice');
        expect(r.body).toMatchObject({ type: 'session_created', in_reply_to: 41, expires_in: 3600 });
        expect(r.body.session_id).toMatch(/^[A-Za-z0-9_-]{43}$/);
      });
    } else {
      it('answers with the reply body alone, no envelope', async () => {
        const h = await transport.open();
        h.send(req('create_session', 41, { user_id: 'u1' }, 'alice', 'gw-7'));
        const r = await h.next(replyTo(41));
        expect(Object.keys(r.body).sort()).toEqual(['expires_at', 'expires_in', 'in_reply_to', 'session_id', 'type']);
        expect(r.body).toMatchObject({ type: 'session_created', in_reply_to: 41, expires_in: 3600 });
      });
    }

    it('answers every msg_id exactly once over a burst of mixed, partly bad requests', async () => {
      const h = await transport.open();
      const { session_id } = await call(h, 'create_session', 1, { user_id: 'u' });
      const ids: number[] = [];
      for (let i = 100; i < 400; i++) {
        ids.push(i);
        const kind = i % 5;
        if (kind === 0) h.send(req('validate_session', i, { session_id }));
        else if (kind === 1) h.send(req('verify_token', i, { token: 'x.y.z' }));
        else if (kind === 2) h.send(req('no_such_type', i));
        else if (kind === 3) h.send(req('create_session', i, { user_id: 42 }));
        else h.send(req('generate_access_token', i, { payload: { sub: `u${i}` } }));
      }
      const got: Msg[] = [];
      for (const id of ids) got.push(await h.next(replyTo(id)));
      await settle();
      expect(h.messages.filter((m) => m.body.in_reply_to !== undefined)).toEqual([]);
      expect(got.filter((m) => m.body.type === 'session_valid')).toHaveLength(60);
      expect(got.filter((m) => m.body.code === 10)).toHaveLength(60);
      expect(got.filter((m) => m.body.code === 12)).toHaveLength(60);
    });

    it('a frame or line that is not JSON gets 12 without in_reply_to, and serving goes on', async () => {
      const h = await transport.open();
      h.send('{"src": "c1", "dest": ');
      expect((await h.next()).body).toEqual({ type: 'error', code: 12, text: 'Malformed JSON' });
      expect((await call(h, 'init', 2, { node_id: 'n1' })).type).toBe('init_ok');
    });

    it('unknown type: 10; missing field: 12 naming it; both with in_reply_to and swapped ends', async () => {
      const h = await transport.open();
      h.send(req('teleport', 5, {}, 'bob', 'gw'));
      const r = await h.next(replyTo(5));
      expect(r).toEqual({ src: 'gw', dest: 'bob', body: { type: 'error', in_reply_to: 5, code: 10, text: 'Unknown message type "teleport"' } });
      expect(await call(h, 'validate_session', 6)).toEqual({ type: 'error', in_reply_to: 6, code: 12, text: 'Missing field "session_id"' });
    });

    if (c.oversizedHead) {
      it('an oversized message gets 12 "Message too large", and serving goes on', async () => {
        const h = await transport.open({ GATEWAY_MAX_MESSAGE_BYTES: '1024' });
        h.send(req('create_session', 7, { user_id: 'u', data: { pad: 'x'.repeat(3000) } }));
        const r = await h.next((m) => m.body.type === 'error');
        expect(r.body).toMatchObject({ code: 12, text: expect.stringMatching(/^Message too large \(\d+ bytes\): the limit is 1024 bytes$/) });
        // Both read the msg_id from the message's head without parsing the whole of it.
        expect(r.body.in_reply_to).toBe(7);
        expect((await call(h, 'init', 8, { node_id: 'n1' })).type).toBe('init_ok');
      });
    } else {
      it('refuses an oversized message unread with 12 "Message too large", and serving goes on', async () => {
        const h = await transport.open({ GATEWAY_MAX_MESSAGE_BYTES: '1024' });
        h.send(req('create_session', 7, { user_id: 'u', data: { pad: 'x'.repeat(3000) } }));
        const r = await h.next((m) => m.body.type === 'error');
        expect(r.body).toEqual({ type: 'error', code: 12, text: expect.stringMatching(/^Message too large/) });
        expect((await call(h, 'init', 8, { node_id: 'n1' })).type).toBe('init_ok');
      });
    }

    if (c.order) {
      it('keeps the order of requests that name the same session', async () => {
        const h = await transport.open();
        const { session_id } = await call(h, 'create_session', 1, { user_id: 'u' });
        h.send(req('validate_session', 2, { session_id }));
        h.send(req('destroy_session', 3, { session_id }));
        h.send(req('validate_session', 4, { session_id }));
        expect((await h.next(replyTo(2))).body.type).toBe('session_valid');
        expect((await h.next(replyTo(3))).body.type).toBe('session_destroyed');
        expect((await h.next(replyTo(4))).body.type).toBe('session_invalid');
      });
    } else {
      it('a request sent once the previous one is answered sees its effect', async () => {
        const h = await transport.open();
        const { session_id } = await call(h, 'create_session', 1, { user_id: 'u' });
        expect((await call(h, 'validate_session', 2, { session_id })).type).toBe('session_valid');
        expect((await call(h, 'destroy_session', 3, { session_id })).type).toBe('session_destroyed');
        expect((await call(h, 'validate_session', 4, { session_id })).type).toBe('session_invalid');
      });
    }

    if (c.pushes) {
      it('pushes session_expired to the subscriber: src = node id, dest = its src, own msg_id', async () => {
        const h = await transport.open();
        const { session_id } = await call(h, 'create_session', 1, { user_id: 'u' });
        expect(await call(h, 'subscribe_session', 2, { session_id }, 'watcher')).toMatchObject({ type: 'subscribed', session_id, expires_in: 3600 });
        await call(h, 'destroy_session', 3, { session_id });
        const p = await h.next(isPush);
        expect(p.src).toBe('gateway');
        expect(p.dest).toBe('watcher');
        expect(p.body).toEqual({ type: 'session_expired', session_id, reason: 'destroyed', msg_id: p.body.msg_id });
        expect(p.body.msg_id).toEqual(expect.any(Number));
      });

      it('pushes the ttl end when the clock reaches it, not before', async () => {
        const h = await transport.open();
        const { session_id } = await call(h, 'create_session', 1, { user_id: 'u', ttl: 30 });
        await call(h, 'subscribe_session', 2, { session_id });
        h.clock.advance(29_999);
        await settle();
        expect(h.messages).toEqual([]);
        h.clock.advance(1);
        expect((await h.next(isPush)).body).toMatchObject({ type: 'session_expired', session_id, reason: 'ttl' });
        expect((await call(h, 'validate_session', 3, { session_id })).type).toBe('session_invalid');
      });

      it('after unsubscribe_session no push comes', async () => {
        const h = await transport.open();
        const { session_id } = await call(h, 'create_session', 1, { user_id: 'u' });
        await call(h, 'subscribe_session', 2, { session_id });
        expect(await call(h, 'unsubscribe_session', 3, { session_id })).toEqual({ type: 'unsubscribed', session_id, in_reply_to: 3 });
        await call(h, 'destroy_session', 4, { session_id });
        await settle();
        expect(h.messages).toEqual([]);
      });

      it('init renames the node: pushes come from the new id', async () => {
        const h = await transport.open();
        await call(h, 'init', 1, { node_id: 'n9', node_ids: ['n9'] });
        const { session_id } = await call(h, 'create_session', 2, { user_id: 'u' });
        await call(h, 'subscribe_session', 3, { session_id });
        await call(h, 'destroy_session', 4, { session_id });
        expect((await h.next(isPush)).src).toBe('n9');
      });
    } else {
      it('refuses subscribe_session and unsubscribe_session with 1001: no connection to push to', async () => {
        const h = await transport.open();
        const { session_id } = await call(h, 'create_session', 1, { user_id: 'u' });
        expect(await call(h, 'subscribe_session', 2, { session_id })).toEqual({
          type: 'error',
          in_reply_to: 2,
          code: 1001,
          text: 'Message type "subscribe_session" is not allowed on this connection',
        });
        expect(await call(h, 'unsubscribe_session', 3, { session_id })).toEqual({
          type: 'error',
          in_reply_to: 3,
          code: 1001,
          text: 'Message type "unsubscribe_session" is not allowed on this connection',
        });
        expect((await call(h, 'validate_session', 4, { session_id })).type).toBe('session_valid');
      });
    }

    it('a store failure is answered with 11, never as valid', async () => {
      const h = await transport.open();
      const { session_id } = await call(h, 'create_session', 1, { user_id: 'u' });
      h.store.fail('get', GatewayError.unavailable(new Error('connection refused')));
      expect(await call(h, 'validate_session', 2, { session_id })).toEqual({ type: 'error', in_reply_to: 2, code: 11, text: 'Store unavailable' });
      h.store.restore('get');
      expect((await call(h, 'validate_session', 3, { session_id })).type).toBe('session_valid');
    });

    it('when the input ends, everything already read is answered', async () => {
      const h = await transport.open();
      // Hold the store so that the requests are still in flight when the input ends.
      const held = h.store.hold('set');
      for (let i = 1; i <= 20; i++) h.send(req('create_session', i, { user_id: `u${i}` }));
      for (let waited = 0; held.entered < 20 && waited < 5000; waited += 10) await new Promise((r) => setTimeout(r, 10));
      expect(held.entered).toBe(20); // all read, all in flight
      const ended = h.end();
      await settle();
      held.release();
      await ended;
      const replies = h.messages.filter((m) => m.body.type === 'session_created').map((m) => m.body.in_reply_to);
      expect(replies.sort((a, b) => Number(a) - Number(b))).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    });
  });
}
