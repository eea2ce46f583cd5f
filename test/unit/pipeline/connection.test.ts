import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../../src/errors.js';
import { BROWSER_TYPES } from '../../../src/protocol/messages.js';
import { createMemoryStore } from '../../../src/store/memory.js';
import { ManualClock } from '../../../src/clock.js';
import { Driver, makeGateway, settle } from '../harness.js';
import { waitForItem } from '../../helpers/wait-for.js';
import { failingStore } from '../../helpers/failing-store.js';
import { SAMPLES, wrongValues } from '../protocol/samples.js';

/** Every request seen on the wire was answered exactly once, with src/dest swapped. */
function expectAnsweredOnce(d: Driver, sent: { id: number; src: string; dest: string }[]): void {
  for (const { id, src, dest } of sent) {
    const replies = d.out.filter((m) => m.body.in_reply_to === id);
    expect(replies, `replies to ${id}`).toHaveLength(1);
    expect(replies[0]).toMatchObject({ src: dest, dest: src });
  }
}

describe('GatewayConnection: bad inputs', () => {
  it('each missing field and each wrong type, per message type: error 12 naming the field, answered once, ends swapped', async () => {
    const { gateway } = makeGateway();
    const d = new Driver(gateway);
    const sent: { id: number; src: string; dest: string; field: string }[] = [];
    let id = 100;
    for (const [type, s] of Object.entries(SAMPLES)) {
      for (const field of Object.keys(s.required)) {
        const body: Record<string, unknown> = { type, msg_id: ++id, ...s.required };
        delete body[field];
        d.send(body as { type: string }, `client-${id}`, `node-${id}`);
        sent.push({ id, src: `client-${id}`, dest: `node-${id}`, field });
      }
      for (const [field, good] of Object.entries({ ...s.required, ...s.optional })) {
        for (const bad of wrongValues(good)) {
          d.send({ type, msg_id: ++id, ...s.required, [field]: bad }, `client-${id}`, `node-${id}`);
          sent.push({ id, src: `client-${id}`, dest: `node-${id}`, field });
        }
      }
    }
    await settle();
    expect(sent.length).toBeGreaterThan(100);
    expectAnsweredOnce(d, sent);
    for (const { id, field } of sent) {
      const r = d.reply(id);
      expect(r.type).toBe('error');
      expect(r.code).toBe(12);
      expect(r.text).toContain(`"${field}"`);
    }
    expect(d.out).toHaveLength(sent.length);
  });

  it('unknown types: error 10; non-JSON: error 12 without in_reply_to, from the node id', async () => {
    const { gateway } = makeGateway();
    const d = new Driver(gateway);
    for (const [i, type] of ['launch_rockets', 'session_valid', 'push', '__proto__'].entries()) {
      d.send({ type, msg_id: i + 1 });
    }
    for (const text of ['{nope', '', '[]', '42', '"a"', 'null']) d.line(text);
    await settle();
    for (let i = 1; i <= 4; i++) expect(d.reply(i)).toMatchObject({ type: 'error', code: 10 });
    const orphans = d.out.filter((m) => m.body.in_reply_to === undefined);
    expect(orphans).toHaveLength(6);
    for (const o of orphans) {
      expect(o.src).toBe('gateway');
      expect(o).not.toHaveProperty('dest');
      expect(o.body).toMatchObject({ type: 'error', code: 12 });
      expect(o.body).not.toHaveProperty('in_reply_to');
    }
  });

  it('a malformed body with readable ends is answered from the request dest to its src', async () => {
    const { gateway } = makeGateway();
    const d = new Driver(gateway);
    d.line(JSON.stringify({ src: 'svc', dest: 'gw-7', body: { type: 'validate_session', msg_id: 5 } }));
    await settle();
    expect(d.out).toEqual([{ src: 'gw-7', dest: 'svc', body: { type: 'error', in_reply_to: 5, code: 12, text: 'Missing field "session_id"' } }]);
  });

  it('a thousand mixed good and bad requests: each answered exactly once; the stream completes', async () => {
    const { gateway } = makeGateway();
    const d = new Driver(gateway);
    const sent: { id: number; src: string; dest: string }[] = [];
    const session = (await d.call({ type: 'create_session', user_id: 'u' })).session_id as string;
    const bodies = [
      { type: 'validate_session', session_id: session },
      { type: 'validate_session' },
      { type: 'nope' },
      { type: 'verify_token', token: 'x.y.z' },
      { type: 'create_session', user_id: 7 },
      { type: 'list_sessions', user_id: 'u' },
      { type: 'subscribe_session', session_id: session },
      { type: 'unsubscribe_session', session_id: session },
    ];
    for (let i = 0; i < 1000; i++) {
      const id = 1000 + i;
      d.send({ ...bodies[i % bodies.length]!, msg_id: id }, `s${i % 3}`, 'gw');
      sent.push({ id, src: `s${i % 3}`, dest: 'gw' });
    }
    d.end();
    await settle(10);
    expectAnsweredOnce(d, sent);
    expect(d.completed).toBe(true);
  });
});

describe('GatewayConnection: failures', () => {
  it('store failure: every store-backed request is error 11, never valid; the stream lives on', async () => {
    const clock = new ManualClock();
    const store = failingStore(createMemoryStore(clock), false);
    const { gateway } = makeGateway({ clock, store });
    const d = new Driver(gateway);
    const sid = (await d.call({ type: 'create_session', user_id: 'u' })).session_id as string;
    const tok = await d.call({ type: 'generate_access_token', payload: { sub: 'u' } });
    store.down = true;
    const requests: Record<string, unknown>[] = [
      { type: 'create_session', user_id: 'u' },
      { type: 'validate_session', session_id: sid },
      { type: 'regenerate_session', old_session_id: sid },
      { type: 'destroy_session', session_id: sid },
      { type: 'subscribe_session', session_id: sid },
      { type: 'list_sessions', user_id: 'u' },
      { type: 'destroy_session_handle', user_id: 'u', handle: 'h' },
      { type: 'revoke_user_sessions', user_id: 'u' },
      { type: 'generate_access_token', payload: { sub: 'u' } },
      { type: 'verify_token', token: tok.access_token },
      { type: 'refresh_token', refresh_token: tok.refresh_token },
      { type: 'revoke_token', token: tok.access_token },
      { type: 'exchange_session', session_id: sid },
    ];
    for (const r of requests) {
      const reply = await d.call(r as { type: string });
      expect(reply, r.type as string).toMatchObject({ type: 'error', code: 11, text: 'Store unavailable' });
      expect(JSON.stringify(reply)).not.toContain('simulated');
    }
    store.down = false;
    expect(await d.call({ type: 'validate_session', session_id: sid })).toMatchObject({ type: 'session_valid' });
    expect(await d.call({ type: 'verify_token', token: tok.access_token })).toMatchObject({ type: 'token_valid' });
  });

  it('a handler that throws is error 13 and the node keeps serving', async () => {
    const { gateway } = makeGateway();
    const original = gateway.sessions.list.bind(gateway.sessions);
    gateway.sessions.list = () => {
      throw new TypeError('boom with secret details');
    };
    const d = new Driver(gateway);
    const r = await d.call({ type: 'list_sessions', user_id: 'u' });
    expect(r).toMatchObject({ type: 'error', code: 13, text: 'Internal error' });
    gateway.sessions.list = async () => Promise.reject(new Error('async boom'));
    expect(await d.call({ type: 'list_sessions', user_id: 'u' })).toMatchObject({ type: 'error', code: 13 });
    gateway.sessions.list = original;
    expect(await d.call({ type: 'list_sessions', user_id: 'u' })).toMatchObject({ type: 'sessions', sessions: [] });
  });

  it('a browser connection: other types are error 1001; admit can refuse with 1002', async () => {
    const { gateway } = makeGateway();
    // As the WebSocket server opens browser connections.
    const d = new Driver(gateway, { allowed: BROWSER_TYPES, untrusted: true });
    const types = Object.keys(SAMPLES);
    const browserTypes = types.filter((t) => BROWSER_TYPES.has(t));
    expect(browserTypes.length).toBeGreaterThan(0);
    expect(browserTypes.length).toBeLessThan(types.length);
    for (const type of browserTypes) expect((await d.call({ type, ...SAMPLES[type]!.required })).type, type).not.toBe('error');
    for (const type of types.filter((t) => !BROWSER_TYPES.has(t))) {
      expect(await d.call({ type, ...SAMPLES[type]!.required }), type).toMatchObject({ type: 'error', code: 1001 });
    }
    let n = 0;
    const limited = new Driver(gateway, { admit: () => (++n > 2 ? new GatewayError('RATE_LIMITED', 'Too many requests') : undefined) });
    const replies = [];
    for (let i = 0; i < 4; i++) replies.push(await limited.call({ type: 'verify_token', token: 'a.b.c' }));
    expect(replies.map((r) => r.code ?? r.type)).toEqual(['token_invalid', 'token_invalid', 1002, 1002]);
  });

  it('init renames the node for this connection: pushes come from the new id', async () => {
    const { gateway } = makeGateway();
    const d = new Driver(gateway);
    expect(await d.call({ type: 'init', node_id: 'n7', node_ids: ['n7'] })).toEqual({ type: 'init_ok', in_reply_to: 1 });
    const sid = (await d.call({ type: 'create_session', user_id: 'u' })).session_id as string;
    await d.call({ type: 'subscribe_session', session_id: sid }, 'watcher');
    await d.call({ type: 'destroy_session', session_id: sid });
    expect(d.pushes()).toEqual([{ src: 'n7', dest: 'watcher', body: { type: 'session_expired', session_id: sid, reason: 'destroyed', msg_id: 1 } }]);
  });
});

describe('GatewayConnection: a subscribe racing an end on another node', () => {
  /**
   * A gateway whose second read of the session's record (subscribe's look after the follow)
   * waits until `release`; meanwhile another node takes the record and its end arrives.
   */
  async function racing(readGives: 'nothing' | 'the old record') {
    const clock = new ManualClock(1_700_000_000_000);
    const memory = createMemoryStore(clock);
    let reads = 0;
    let release!: () => void;
    let hash = '';
    const store = new Proxy(memory, {
      get(target, prop) {
        const v = Reflect.get(target, prop, target) as unknown;
        if (typeof v !== 'function') return v;
        if (prop !== 'read') return (v as (...a: unknown[]) => unknown).bind(target);
        return (key: string) => {
          const now = target.read(key);
          if (key !== `s:${hash}` || ++reads !== 2) return now;
          return new Promise((resolve) => (release = () => resolve(readGives === 'nothing' ? target.read(key) : now)));
        };
      },
    });
    const { gateway } = makeGateway({ clock, store });
    const d = new Driver(gateway);
    const sid = (await d.call({ type: 'create_session', user_id: 'u' })).session_id as string;
    hash = gateway.sessions.hashOf(sid);
    const id = d.send({ type: 'subscribe_session', session_id: sid }, 'watcher');
    while (reads < 2) await settle();
    await memory.take(`s:${hash}`); // another node ended it...
    gateway.hub.ended(hash, 'destroyed'); // ...and its announcement arrives here
    release();
    await settle();
    return { reply: d.reply(id), pushes: d.pushes(), gateway, hash };
  }

  it('answered session_invalid, it is pushed nothing: it never was a subscriber', async () => {
    const { reply, pushes, gateway, hash } = await racing('nothing');
    expect(reply).toMatchObject({ type: 'session_invalid', error: 'Session not found or expired' });
    expect(pushes).toEqual([]);
    expect(gateway.hub.isFollowed(hash)).toBe(false);
  });

  it('an end heard while its look was on the way makes the answer session_invalid, with no push', async () => {
    const { reply, pushes, gateway, hash } = await racing('the old record');
    expect(reply).toMatchObject({ type: 'session_invalid', error: 'Session not found or expired' });
    expect(pushes).toEqual([]);
    expect(gateway.hub.isFollowed(hash)).toBe(false);
  });
});

describe('GatewayConnection: a subscribe whose second look fails (error 11)', () => {
  async function secondLookFails(subscribedBefore: boolean) {
    const clock = new ManualClock(1_700_000_000_000);
    const store = failingStore(createMemoryStore(clock), false);
    const { gateway } = makeGateway({ clock, store });
    const d = new Driver(gateway);
    const sid = (await d.call({ type: 'create_session', user_id: 'u' })).session_id as string;
    if (subscribedBefore) expect(await d.call({ type: 'subscribe_session', session_id: sid }, 'watcher')).toMatchObject({ type: 'subscribed' });
    const firstLook = store.hold('get', { once: true });
    const id = d.send({ type: 'subscribe_session', session_id: sid }, 'watcher');
    await firstLook.reached;
    store.fail('get', undefined, 1);
    firstLook.release();
    await settle();
    expect(d.reply(id)).toMatchObject({ type: 'error', code: 11 });
    expect(store.failures).toBe(1);
    expect(await d.call({ type: 'destroy_session', session_id: sid })).toMatchObject({ type: 'session_destroyed' });
    return { pushes: d.pushes(), sid };
  }

  it('a client told `subscribed` before keeps its subscription: the end is pushed once', async () => {
    const { pushes, sid } = await secondLookFails(true);
    expect(pushes.map((p) => p.body)).toEqual([{ type: 'session_expired', session_id: sid, reason: 'destroyed', msg_id: 1 }]);
  });

  it('a new subscriber follows nothing: it was never told `subscribed`', async () => {
    const { pushes } = await secondLookFails(false);
    expect(pushes).toEqual([]);
  });

  it('a repeat whose session ends while its second look (which found it live) is on the way back: answered session_invalid, the end pushed once by the subscription it repeated', async () => {
    const clock = new ManualClock(1_700_000_000_000);
    const memory = createMemoryStore(clock);
    const store = failingStore(memory, false);
    const { gateway } = makeGateway({ clock, store });
    const d = new Driver(gateway);
    const sid = (await d.call({ type: 'create_session', user_id: 'u' })).session_id as string;
    const hash = gateway.sessions.hashOf(sid);
    expect(await d.call({ type: 'subscribe_session', session_id: sid }, 'watcher')).toMatchObject({ type: 'subscribed' });
    let reads = 0;
    const secondLook = store.hold('get', { match: () => ++reads === 2, once: true, afterInner: true });
    const id = d.send({ type: 'subscribe_session', session_id: sid }, 'watcher');
    await secondLook.reached;
    await memory.take(`s:${hash}`); // another node ended it...
    gateway.hub.ended(hash, 'destroyed'); // ...and its announcement arrives here
    secondLook.release();
    await settle();
    expect(d.reply(id)).toMatchObject({ type: 'session_invalid' });
    expect(d.pushes().map((p) => p.body)).toEqual([{ type: 'session_expired', session_id: sid, reason: 'destroyed', msg_id: 1 }]);
    expect(gateway.hub.isFollowed(hash)).toBe(false);
  });
});

describe('GatewayConnection: a regenerate that fails after taking the old record (error 11)', () => {
  it("the old session's subscribers are told its end at once, and no id of it is left live", async () => {
    const clock = new ManualClock(1_700_000_000_000);
    const store = failingStore(createMemoryStore(clock), false);
    const { gateway } = makeGateway({ clock, store });
    const d = new Driver(gateway);
    const other = new Driver(gateway);
    const sid = (await d.call({ type: 'create_session', user_id: 'u' })).session_id as string;
    expect(await d.call({ type: 'subscribe_session', session_id: sid }, 'watcher')).toMatchObject({ type: 'subscribed' });
    // The regeneration reads the record, then an extend on another connection lands before its
    // take: what it takes is to be carried to the new id, and that write fails.
    const read = store.hold('get', { once: true, afterInner: true });
    const id = d.send({ type: 'regenerate_session', old_session_id: sid });
    await read.reached;
    expect(await other.call({ type: 'extend_session', session_id: sid, ttl: 7200 })).toMatchObject({ type: 'session_extended' });
    store.fail('swapIf', undefined, 1);
    read.release();
    await settle();
    expect(d.reply(id)).toMatchObject({ type: 'error', code: 11 });
    expect(store.failures).toBe(1);
    // The old record was taken: its subscriber is owed its end now, not at its ttl two hours on.
    expect(d.pushes().map((p) => p.body)).toEqual([
      { type: 'session_extended', session_id: sid, expires_in: 7200, msg_id: 1 },
      { type: 'session_expired', session_id: sid, reason: 'destroyed', msg_id: 2 },
    ]);
    expect(await d.call({ type: 'validate_session', session_id: sid })).toMatchObject({ type: 'session_invalid' });
    // The new id was never answered: it is not left live either (the user has no session).
    expect(await d.call({ type: 'list_sessions', user_id: 'u' })).toMatchObject({ type: 'sessions', sessions: [] });
  });
});

describe('GatewayConnection: order', () => {
  it('requests naming one session take effect in arrival order', async () => {
    const { gateway } = makeGateway();
    const d = new Driver(gateway);
    const sid = (await d.call({ type: 'create_session', user_id: 'u' })).session_id as string;
    const a = d.send({ type: 'validate_session', session_id: sid });
    const b = d.send({ type: 'regenerate_session', old_session_id: sid });
    const c = d.send({ type: 'validate_session', session_id: sid });
    const e = d.send({ type: 'destroy_session', session_id: sid });
    const f = d.send({ type: 'validate_session', session_id: sid });
    await settle();
    expect(d.reply(a).type).toBe('session_valid');
    expect(d.reply(b).type).toBe('session_regenerated');
    expect(d.reply(c).type).toBe('session_invalid');
    expect(d.reply(e).type).toBe('session_destroyed');
    expect(d.reply(f).type).toBe('session_invalid');
  });

  it('a session id spelled like the key of another kind of request only makes the two wait for each other', async () => {
    const { gateway } = makeGateway();
    const d = new Driver(gateway);
    // create_session is ordered under `u:<user>`, refresh_token under `r:<token>`, and a session
    // under its id as sent: these ids name no session, and share those keys.
    const made = d.send({ type: 'create_session', user_id: 'bob' });
    const asUser = d.send({ type: 'validate_session', session_id: 'u:bob' });
    const refreshed = d.send({ type: 'refresh_token', refresh_token: 'x' });
    const asToken = d.send({ type: 'destroy_session', session_id: 'r:x' });
    const extended = d.send({ type: 'extend_session', session_id: 's:' });
    await waitForItem(d.out, (m) => m.body.in_reply_to === extended, 5000, 'last reply');
    expect(d.reply(made).type).toBe('session_created');
    expect(d.reply(asUser).type).toBe('session_invalid');
    expect(d.reply(refreshed).type).toBe('token_invalid');
    expect(d.reply(asToken).type).toBe('session_destroyed');
    expect(d.reply(extended).type).toBe('session_invalid');
    const sid = d.reply(made).session_id as string;
    expect((await d.call({ type: 'validate_session', session_id: sid })).type).toBe('session_valid');
  });

  it('a login, pipelined before a revoke-all or a list for its user, is covered by it', async () => {
    const { gateway } = makeGateway();
    const d = new Driver(gateway);
    const created = d.send({ type: 'create_session', user_id: 'u' });
    const revoked = d.send({ type: 'revoke_user_sessions', user_id: 'u' });
    const two = [d.send({ type: 'create_session', user_id: 'u' }), d.send({ type: 'create_session', user_id: 'u' })];
    const listed = d.send({ type: 'list_sessions', user_id: 'u' });
    await waitForItem(d.out, (m) => m.body.in_reply_to === listed, 5000, 'list reply');
    expect(d.reply(revoked)).toMatchObject({ type: 'sessions_revoked', count: 1 });
    expect(d.reply(listed).sessions).toHaveLength(2);
    for (const id of two) expect(d.reply(id).type).toBe('session_created');
    const sid = d.reply(created).session_id as string;
    expect((await d.call({ type: 'validate_session', session_id: sid })).type).toBe('session_invalid');
  });

  it("a session's destroy or regenerate comes before a later message about its user's sessions, and a revoke-all before a later validate", async () => {
    const { gateway } = makeGateway();
    const d = new Driver(gateway);
    const a = (await d.call({ type: 'create_session', user_id: 'u' })).session_id as string;
    const b = (await d.call({ type: 'create_session', user_id: 'u' })).session_id as string;
    const c = (await d.call({ type: 'create_session', user_id: 'u' })).session_id as string;
    d.send({ type: 'destroy_session', session_id: a });
    const listed = d.send({ type: 'list_sessions', user_id: 'u' });
    const regenerated = d.send({ type: 'regenerate_session', old_session_id: b });
    const revoked = d.send({ type: 'revoke_user_sessions', user_id: 'u', except_session_id: c });
    const validated = d.send({ type: 'validate_session', session_id: c });
    const gone = d.send({ type: 'revoke_user_sessions', user_id: 'u' });
    const after = d.send({ type: 'validate_session', session_id: c });
    await waitForItem(d.out, (m) => m.body.in_reply_to === after, 5000, 'last reply');
    expect(d.reply(listed).sessions).toHaveLength(2);
    const newId = d.reply(regenerated).new_session_id as string;
    expect(d.reply(revoked)).toMatchObject({ type: 'sessions_revoked', count: 1 });
    expect(d.reply(validated).type).toBe('session_valid');
    expect(d.reply(gone)).toMatchObject({ type: 'sessions_revoked', count: 1 });
    expect(d.reply(after).type).toBe('session_invalid');
    expect((await d.call({ type: 'validate_session', session_id: newId })).type).toBe('session_invalid');
  });

  it('completes after input ends and every reply is out, and then ends its subscriptions', async () => {
    const { gateway, clock } = makeGateway();
    const d = new Driver(gateway);
    const sid = (await d.call({ type: 'create_session', user_id: 'u' })).session_id as string;
    await d.call({ type: 'subscribe_session', session_id: sid });
    expect(gateway.hub.size).toBe(1);
    const last = d.send({ type: 'validate_session', session_id: sid });
    d.end();
    await settle();
    expect(d.reply(last).type).toBe('session_valid');
    expect(d.completed).toBe(true);
    expect(gateway.hub.size).toBe(0);
    expect(clock.pending).toBe(1); // the store's sweep only
  });
});
