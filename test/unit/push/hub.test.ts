import { sessionKey } from '../../../src/sessions/records.js';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock.js';
import { GatewayError } from '../../../src/errors.js';
import { END_EVENT_WAIT_MS, MAX_CHECKS, SubscriptionHub } from '../../../src/push/hub.js';
import { createMemoryStore } from '../../../src/store/memory.js';
import { Driver, makeGateway, settle } from '../harness.js';
import { failingStore } from '../../helpers/failing-store.js';
import { storeWith } from '../../helpers/store-with.js';
import type { Store } from '../../../src/store/types.js';

const T0 = Date.UTC(2026, 0, 1);

async function subscribed(over: Parameters<typeof makeGateway>[0] = {}, ttl = 60, expiresIn = ttl) {
  const t = makeGateway(over);
  const d = new Driver(t.gateway);
  const sid = (await d.call({ type: 'create_session', user_id: 'u', ttl })).session_id as string;
  expect(await d.call({ type: 'subscribe_session', session_id: sid }, 'watcher')).toMatchObject({ type: 'subscribed', session_id: sid, expires_in: expiresIn });
  return { ...t, d, sid };
}

/** Advances the clock in steps and returns how long after `from` the first push showed up. */
async function pushDelay(clock: ManualClock, d: Driver, from: number, stepMs = 10, maxMs = 1000): Promise<number> {
  const before = d.pushes().length;
  clock.advance(from - clock.now());
  for (;;) {
    await settle();
    if (d.pushes().length > before) return clock.now() - from;
    if (clock.now() - from >= maxMs) return Number.POSITIVE_INFINITY;
    clock.advance(stepMs);
  }
}

/** A hub whose store has none of the sessions it follows (every check answers `gone`). */
const goneHub = (clock: ManualClock) =>
  new SubscriptionHub(
    clock,
    async () => ({ ended: 'gone' }),
    () => {},
    async () => undefined,
  );

describe('session_expired pushes', () => {
  it('ttl: nothing before the end, the push within 100 ms of it, then session_invalid', async () => {
    const { clock, d, sid } = await subscribed();
    clock.advance(59_999);
    await settle();
    expect(d.pushes()).toEqual([]);
    expect(await pushDelay(clock, d, T0 + 60_000)).toBeLessThanOrEqual(100);
    expect(d.pushes()).toEqual([{ src: 'gateway', dest: 'watcher', body: { type: 'session_expired', msg_id: 1, session_id: sid, reason: 'ttl' } }]);
    expect(await d.call({ type: 'validate_session', session_id: sid })).toMatchObject({ type: 'session_invalid' });
    clock.advance(10 * 60_000);
    await settle();
    expect(d.pushes()).toHaveLength(1);
  });

  it('idle: activity moves the end; the push says idle within 100 ms of the new end', async () => {
    const { clock, d, sid } = await subscribed({ sessionIdleTimeout: 30 }, 3600, 30);
    clock.advance(20_000);
    expect(await d.call({ type: 'validate_session', session_id: sid })).toMatchObject({ expires_in: 30 });
    clock.advance(29_000);
    await settle();
    expect(d.pushes()).toEqual([]);
    expect(await pushDelay(clock, d, T0 + 50_000)).toBeLessThanOrEqual(100);
    expect(d.pushes()[0]!.body).toMatchObject({ reason: 'idle', session_id: sid });
  });

  it('idle moved by exchange_session (not validate) is re-checked, not pushed early', async () => {
    const { clock, d, sid } = await subscribed({ sessionIdleTimeout: 30 }, 3600, 30);
    clock.advance(20_000);
    expect(await d.call({ type: 'exchange_session', session_id: sid })).toMatchObject({ type: 'token_generated' });
    clock.advance(15_000);
    await settle();
    expect(d.pushes()).toEqual([]);
    expect(await pushDelay(clock, d, T0 + 50_000)).toBeLessThanOrEqual(100);
    expect(d.pushes()[0]!.body).toMatchObject({ reason: 'idle' });
  });

  it('destroyed, revoked, and destroyed by handle reach the subscriber at once', async () => {
    const { gateway, d } = await subscribed();
    const a = (await d.call({ type: 'create_session', user_id: 'v' })).session_id as string;
    const b = (await d.call({ type: 'create_session', user_id: 'v' })).session_id as string;
    for (const s of [a, b]) await d.call({ type: 'subscribe_session', session_id: s }, 'watcher');
    await d.call({ type: 'destroy_session', session_id: a });
    expect(d.pushes().at(-1)!.body).toMatchObject({ session_id: a, reason: 'destroyed' });
    await d.call({ type: 'revoke_user_sessions', user_id: 'v' });
    expect(d.pushes().at(-1)!.body).toMatchObject({ session_id: b, reason: 'revoked' });
    const c = (await d.call({ type: 'create_session', user_id: 'v' })).session_id as string;
    await d.call({ type: 'subscribe_session', session_id: c }, 'watcher');
    await d.call({ type: 'destroy_session_handle', user_id: 'v', handle: gateway.sessions.hashOf(c) });
    expect(d.pushes().at(-1)!.body).toMatchObject({ session_id: c, reason: 'destroyed' });
    expect(d.pushes().map((p) => p.body.msg_id)).toEqual([1, 2, 3]);
  });

  it('regenerated: the old id ends with reason regenerated and the subscriber never learns the new id', async () => {
    const { clock, d, sid, gateway } = await subscribed();
    const other = new Driver(gateway);
    await other.call({ type: 'subscribe_session', session_id: sid }, 'second');
    const r = await d.call({ type: 'regenerate_session', old_session_id: sid }, 'app');
    const nsid = r.new_session_id as string;
    expect(nsid).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const all = [...d.pushes(), ...other.pushes()];
    expect(all.map((p) => [p.dest, p.body.session_id, p.body.reason])).toEqual([
      ['watcher', sid, 'regenerated'],
      ['second', sid, 'regenerated'],
    ]);
    expect(JSON.stringify(all)).not.toContain(nsid);
    // The new id is not followed by the old subscribers: its expiry pushes nothing to them.
    clock.advance(61_000);
    await settle();
    expect(d.pushes()).toHaveLength(1);
    expect(other.pushes()).toHaveLength(1);
  });

  it('every subscriber (several srcs, several connections) is told once', async () => {
    const { gateway, clock, d, sid } = await subscribed();
    await d.call({ type: 'subscribe_session', session_id: sid }, 'watcher'); // again: still once
    await d.call({ type: 'subscribe_session', session_id: sid }, 'w2');
    const e = new Driver(gateway);
    await e.call({ type: 'subscribe_session', session_id: sid }, 'w3');
    expect(gateway.hub.size).toBe(1);
    clock.advance(60_000);
    await settle();
    expect(
      d
        .pushes()
        .map((p) => p.dest)
        .sort(),
    ).toEqual(['w2', 'watcher']);
    expect(e.pushes().map((p) => p.dest)).toEqual(['w3']);
  });

  it('after unsubscribe_session: no push, no timer', async () => {
    const { gateway, clock, d, sid } = await subscribed();
    expect(clock.pending).toBe(2); // the store sweep + the hub's one timer
    expect(await d.call({ type: 'unsubscribe_session', session_id: sid }, 'watcher')).toEqual({
      type: 'unsubscribed',
      session_id: sid,
      in_reply_to: expect.any(Number),
    });
    expect(gateway.hub.size).toBe(0);
    expect(clock.pending).toBe(1);
    clock.advance(120_000);
    await settle();
    expect(d.pushes()).toEqual([]);
    // Unsubscribing what was never followed is still answered.
    expect(await d.call({ type: 'unsubscribe_session', session_id: 'never' })).toMatchObject({ type: 'unsubscribed' });
  });

  it('unsubscribing one src leaves the others subscribed', async () => {
    const { clock, d, sid } = await subscribed();
    await d.call({ type: 'subscribe_session', session_id: sid }, 'other');
    await d.call({ type: 'unsubscribe_session', session_id: sid }, 'watcher');
    clock.advance(60_000);
    await settle();
    expect(d.pushes().map((p) => p.dest)).toEqual(['other']);
  });

  it('subscribing to an unknown or ended session is session_invalid and starts no timer', async () => {
    const { gateway, clock } = makeGateway();
    const d = new Driver(gateway);
    expect(await d.call({ type: 'subscribe_session', session_id: 'nope' })).toMatchObject({ type: 'session_invalid', error: expect.any(String) });
    const sid = (await d.call({ type: 'create_session', user_id: 'u', ttl: 1 })).session_id as string;
    clock.advance(1000);
    expect(await d.call({ type: 'subscribe_session', session_id: sid })).toMatchObject({ type: 'session_invalid' });
    expect(gateway.hub.size).toBe(0);
    expect(clock.pending).toBe(1);
  });

  it('expiry timers exist only for subscribed sessions: one clock timer however many', async () => {
    const { gateway, clock } = makeGateway();
    const d = new Driver(gateway);
    const ids: string[] = [];
    for (let i = 0; i < 1000; i++) ids.push((await gateway.sessions.create(`u${i}`, undefined, 60 + i)).sessionId);
    expect(gateway.hub.size).toBe(0);
    expect(clock.pending).toBe(1); // the store's sweep, nothing per session
    for (const id of ids.slice(0, 500)) d.send({ type: 'subscribe_session', session_id: id });
    await settle();
    expect(gateway.hub.size).toBe(500);
    expect(clock.pending).toBe(2);
    clock.advance(60_000 + 249_999);
    await settle();
    expect(d.pushes()).toHaveLength(250);
    expect(gateway.hub.size).toBe(250);
    clock.advance(250_001);
    await settle();
    expect(d.pushes()).toHaveLength(500);
    expect(gateway.hub.size).toBe(0);
    expect(clock.pending).toBe(1);
  });

  it('a connection that ends drops its subscriptions and timers, however many', async () => {
    const { gateway, clock, d } = await subscribed();
    for (let i = 0; i < 5; i++) {
      const s = (await d.call({ type: 'create_session', user_id: 'u' })).session_id as string;
      await d.call({ type: 'subscribe_session', session_id: s }, 'watcher');
      await d.call({ type: 'subscribe_session', session_id: s }, 'other');
    }
    expect(gateway.hub.size).toBe(6);
    d.end();
    await settle();
    expect(gateway.hub.size).toBe(0);
    expect(clock.pending).toBe(1);
  });

  it('while the store is down at the end, nothing is pushed; once it is back, the push comes', async () => {
    const clock = new ManualClock();
    const store = failingStore(createMemoryStore(clock), false);
    const { d, sid } = await subscribed({ clock, store }, 60);
    clock.advance(59_000);
    store.down = true;
    for (let i = 0; i < 10; i++) {
      clock.advance(500);
      await settle();
    }
    expect(d.pushes()).toEqual([]);
    expect(store.failures).toBeGreaterThan(1); // retried
    store.down = false;
    // The next look comes within the longest wait between two (4 s, a quarter more at most).
    expect(await pushDelay(clock, d, clock.now(), 50, 5000)).toBeLessThanOrEqual(5000);
    expect(d.pushes().map((p) => [p.body.session_id, p.body.reason])).toEqual([[sid, 'ttl']]);
  });

  it('while the store stays down, each followed session is looked at again less and less often', async () => {
    const clock = new ManualClock();
    const store = failingStore(createMemoryStore(clock), false);
    const { d, sid } = await subscribed({ clock, store }, 60);
    clock.advance(59_000);
    store.down = true;
    const before = store.failures;
    // 60 s down: 250 ms doubling to 4 s (a quarter either way) is at most 4 + 60 / 3 looks,
    // where a fixed 250 ms would be 240.
    for (let i = 0; i < 600; i++) {
      clock.advance(100);
      await settle();
    }
    const looks = store.failures - before;
    expect(looks).toBeGreaterThanOrEqual(15);
    expect(looks).toBeLessThanOrEqual(25);
    expect(d.pushes()).toEqual([]);
    store.down = false;
    expect(await pushDelay(clock, d, clock.now(), 50, 5000)).toBeLessThanOrEqual(5000);
    expect(d.pushes().map((p) => [p.body.session_id, p.body.reason])).toEqual([[sid, 'ttl']]);
  });

  it('too many subscriptions on one connection: error 1002', async () => {
    const { gateway } = makeGateway({ maxSubscriptions: 2 });
    const d = new Driver(gateway);
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await d.call({ type: 'create_session', user_id: 'u' })).session_id as string);
    expect((await d.call({ type: 'subscribe_session', session_id: ids[0] })).type).toBe('subscribed');
    expect((await d.call({ type: 'subscribe_session', session_id: ids[1] })).type).toBe('subscribed');
    expect(await d.call({ type: 'subscribe_session', session_id: ids[2] })).toMatchObject({ type: 'error', code: 1002 });
    expect((await d.call({ type: 'subscribe_session', session_id: ids[0] })).type).toBe('subscribed');
  });
});

describe('SubscriptionHub', () => {
  it('warns bound followers warnBefore ms ahead with the seconds left, then ends', async () => {
    const clock = new ManualClock();
    let end = T0 + 100_000;
    const hub = new SubscriptionHub(
      clock,
      async () => (clock.now() >= end ? { ended: 'ttl' } : { ended: undefined, next: end }),
      () => {},
    );
    const seen: string[] = [];
    hub.subscribe('h', 'k', { sessionId: 's', ended: (r) => seen.push(`end:${r}`), expiring: (s) => seen.push(`warn:${s}`), warnBefore: 60_000 }, end, 'ttl');
    clock.advance(39_999);
    expect(seen).toEqual([]);
    clock.advance(1);
    expect(seen).toEqual(['warn:60']);
    end += 30_000;
    hub.moved('h', end, 'ttl');
    clock.advance(60_000);
    await settle();
    expect(seen).toEqual(['warn:60', 'warn:60']);
    clock.advance(30_000);
    await settle();
    expect(seen).toEqual(['warn:60', 'warn:60', 'end:ttl']);
    expect(hub.size).toBe(0);
    expect(clock.pending).toBe(0);
  });

  it('a follower that comes after the warning went out is warned too, once, after its subscribe; the others are not warned again', async () => {
    const clock = new ManualClock();
    const end = T0 + 100_000;
    const hub = new SubscriptionHub(
      clock,
      async () => (clock.now() >= end ? { ended: 'ttl' } : { ended: undefined, next: end }),
      () => {},
    );
    const seen: string[] = [];
    const tab = (name: string) => ({
      sessionId: 's',
      ended: (r: string) => seen.push(`${name} end:${r}`),
      expiring: (x: number) => seen.push(`${name} warn:${x}`),
      warnBefore: 60_000,
    });
    hub.subscribe('h', 'one', tab('one'), end, 'ttl');
    clock.advance(40_000);
    expect(seen).toEqual(['one warn:60']);
    clock.advance(10_000);
    // A second tab, and a service subscriber that asked for no warning.
    hub.subscribe('h', 'two', tab('two'), end, 'ttl');
    hub.subscribe('h', 'svc', { sessionId: 's', ended: (r) => seen.push(`svc end:${r}`) }, end, 'ttl');
    expect(seen).toEqual(['one warn:60']); // not inside subscribe: its reply goes first
    clock.advance(0);
    expect(seen).toEqual(['one warn:60', 'two warn:50']);
    clock.advance(5_000);
    hub.subscribe('h', 'three', tab('three'), end, 'ttl');
    hub.unsubscribe('h', 'three'); // gone before its turn: nothing
    clock.advance(0);
    expect(seen).toEqual(['one warn:60', 'two warn:50']);
    clock.advance(45_000);
    await settle();
    expect(seen).toEqual(['one warn:60', 'two warn:50', 'one end:ttl', 'two end:ttl', 'svc end:ttl']);
    expect(clock.pending).toBe(0);
  });

  it('with a movable end, asks the store before warning: activity it did not see postpones the warning', async () => {
    const clock = new ManualClock(T0);
    let end = T0 + 120_000;
    const hub = new SubscriptionHub(
      clock,
      async () => (clock.now() >= end ? { ended: 'idle' } : { ended: undefined, next: end }),
      () => {},
      async () => ({ at: end, reason: 'idle' }),
    );
    const seen: string[] = [];
    hub.subscribe(
      'h',
      'k',
      { sessionId: 's', ended: (r) => seen.push(`end:${r}`), expiring: (x) => seen.push(`warn:${x}@${clock.now() - T0}`), warnBefore: 60_000 },
      end,
      'idle',
    );
    end = T0 + 200_000; // activity on another node moved the idle end
    clock.advance(60_000);
    await settle();
    expect(seen).toEqual([]); // no early warning
    clock.advance(80_000);
    await settle();
    expect(seen).toEqual(['warn:60@140000']);
    clock.advance(60_000);
    await settle();
    expect(seen).toEqual(['warn:60@140000', 'end:idle']);
  });

  it('a session gone from the store is ended with its own reason once its time has come, as destroyed before (an end this node missed)', async () => {
    const clock = new ManualClock(T0);
    const hub = goneHub(clock);
    const seen: string[] = [];
    hub.subscribe('late', 'k', { sessionId: 's1', ended: (r) => seen.push(`late:${r}`) }, T0 + 10_000, 'idle');
    hub.subscribe('early', 'k', { sessionId: 's2', ended: (r) => seen.push(`early:${r}`) }, T0 + 3_600_000, 'ttl');
    clock.advance(10_000); // the first one's end: the store no longer has it, its time had come
    await settle();
    expect(seen).toEqual(['late:idle']);
    hub.recheck('early'); // as after a resync: gone an hour before its end
    await settle();
    expect(seen).toEqual(['late:idle', 'early:destroyed']);
  });

  it('a look a request asked for (recheck awaiting the end) that finds the session gone waits for the end event and pushes its reason, once', async () => {
    const clock = new ManualClock(T0);
    const hub = goneHub(clock);
    const seen: string[] = [];
    hub.subscribe('h', 'k', { sessionId: 's', ended: (r) => seen.push(r) }, T0 + 3_600_000, 'ttl');
    // An update event for a session regenerated meanwhile on another node: the read finds it gone.
    hub.recheck('h', true);
    await settle();
    expect(seen).toEqual([]);
    clock.advance(END_EVENT_WAIT_MS / 2);
    await settle();
    // The end's event arrives: its reason is what the followers hear, and nothing else.
    hub.ended('h', 'regenerated');
    clock.advance(END_EVENT_WAIT_MS * 2);
    await settle();
    expect(seen).toEqual(['regenerated']);
  });

  it('a look awaiting the end whose event never comes pushes destroyed after END_EVENT_WAIT_MS', async () => {
    const clock = new ManualClock(T0);
    const hub = goneHub(clock);
    const seen: string[] = [];
    hub.subscribe('h', 'k', { sessionId: 's', ended: (r) => seen.push(`${r}@${clock.now() - T0}`) }, T0 + 3_600_000, 'ttl');
    hub.recheck('h', true);
    await settle();
    clock.advance(END_EVENT_WAIT_MS - 1);
    await settle();
    expect(seen).toEqual([]);
    clock.advance(1);
    await settle();
    expect(seen).toEqual([`destroyed@${END_EVENT_WAIT_MS}`]);
  });

  it('an end moved by activity elsewhere keeps the kind the store gives it: gone at that end, it is pushed with that reason', async () => {
    // Idle end at 10 s; activity on another node moved the idle end past the absolute end (15 s),
    // so the end is now the ttl: a node that was following the idle end must say ttl at 15 s.
    const clock = new ManualClock(T0);
    let checks = 0;
    const hub = new SubscriptionHub(
      clock,
      async () => (++checks === 1 ? { ended: undefined, next: T0 + 15_000, reason: 'ttl' } : { ended: 'gone' }),
      () => {},
      async () => undefined,
    );
    const seen: string[] = [];
    hub.subscribe('s', 'k', { sessionId: 's1', ended: (r) => seen.push(r) }, T0 + 10_000, 'idle');
    clock.advance(10_000);
    await settle();
    expect(checks).toBe(1);
    expect(seen).toEqual([]);
    clock.advance(5_000);
    await settle();
    expect(checks).toBe(2);
    expect(seen).toEqual(['ttl']);
  });

  it('a session gone when its warning comes is ended at once instead of warned', async () => {
    const clock = new ManualClock(T0);
    const hub = goneHub(clock);
    const seen: string[] = [];
    hub.subscribe(
      'h',
      'k',
      { sessionId: 's', ended: (r) => seen.push(`end:${r}`), expiring: () => seen.push('warn'), warnBefore: 60_000 },
      T0 + 120_000,
      'ttl',
    );
    clock.advance(60_000);
    await settle();
    // Gone a minute before its end: ended by a request this node did not hear of.
    expect(seen).toEqual(['end:destroyed']);
  });

  it('a follower that throws does not stop the others', () => {
    const errors: unknown[] = [];
    const hub = new SubscriptionHub(
      new ManualClock(),
      async () => ({ ended: undefined }),
      (e) => errors.push(e),
    );
    const got: string[] = [];
    hub.subscribe(
      'h',
      'a',
      {
        sessionId: 's',
        ended: () => {
          throw new Error('bad follower');
        },
      },
      T0 + 1,
      'ttl',
    );
    hub.subscribe('h', 'b', { sessionId: 's', ended: (r) => got.push(r) }, T0 + 1, 'ttl');
    hub.ended('h', 'destroyed');
    hub.ended('h', 'destroyed');
    expect(got).toEqual(['destroyed']);
    expect(errors).toHaveLength(1);
  });
});

describe('subscribe racing an end', () => {
  it('a session ended between the subscribe check and the follow is not left followed until its ttl', async () => {
    const clock = new ManualClock();
    const store = failingStore(createMemoryStore(clock), false);
    const { gateway } = makeGateway({ clock, store });
    const watcher = new Driver(gateway);
    const admin = new Driver(gateway);
    const s = await gateway.sessions.create('u', undefined, 3600);
    // The subscribe's read gets the session live at once but hands it over only when the gate
    // opens: the destroy runs to the end in between.
    const held = store.hold('get', { match: ([key]) => String(key).startsWith('s:'), once: true, afterInner: true });
    const sub = watcher.send({ type: 'subscribe_session', session_id: s.sessionId });
    await held.reached;
    expect(await admin.call({ type: 'destroy_session', session_id: s.sessionId })).toMatchObject({ type: 'session_destroyed' });
    held.release();
    await settle();
    // The destroy ran to its end before the subscribe went on: the subscribe's second look, after
    // the follow, finds the session gone and answers session_invalid (no push: it never followed).
    expect(watcher.reply(sub)).toMatchObject({ type: 'session_invalid' });
    expect(watcher.pushes()).toEqual([]);
    expect(gateway.hub.size).toBe(0);
    expect(clock.pending).toBe(1);
  });

  it('a subscriber subscribing again while the session ends elsewhere still gets its session_expired', async () => {
    const clock = new ManualClock();
    const inner = createMemoryStore(clock);
    const store = failingStore(inner, false);
    const { gateway } = makeGateway({ clock, store });
    const watcher = new Driver(gateway);
    const s = await gateway.sessions.create('u', undefined, 3600);
    expect(await watcher.call({ type: 'subscribe_session', session_id: s.sessionId })).toMatchObject({ type: 'subscribed' });
    // The second subscribe reads the session live; before it looks again, the session ends on
    // another node, whose event has not come (the record goes without one).
    const held = store.hold('get', { match: ([key]) => String(key).startsWith('s:'), once: true, afterInner: true });
    const again = watcher.send({ type: 'subscribe_session', session_id: s.sessionId });
    await held.reached;
    await inner.delete(sessionKey(gateway.sessions.hashOf(s.sessionId)));
    held.release();
    await settle();
    expect(watcher.reply(again)).toMatchObject({ type: 'session_invalid' });
    // The end's event (its reason) is waited for a while; it never comes here.
    expect(watcher.pushes()).toEqual([]);
    clock.advance(END_EVENT_WAIT_MS);
    await settle();
    // Told `subscribed` the first time, the subscriber is owed the end: exactly one push.
    expect(watcher.pushes().map((p) => p.body)).toEqual([expect.objectContaining({ type: 'session_expired', session_id: s.sessionId, reason: 'destroyed' })]);
    expect(gateway.hub.size).toBe(0);
  });

  it('a subscriber subscribing again while the session is regenerated elsewhere gets one session_expired, reason regenerated', async () => {
    const clock = new ManualClock();
    const inner = createMemoryStore(clock);
    const store = failingStore(inner, false);
    const { gateway } = makeGateway({ clock, store });
    const watcher = new Driver(gateway);
    const s = await gateway.sessions.create('u', undefined, 3600);
    const hash = gateway.sessions.hashOf(s.sessionId);
    expect(await watcher.call({ type: 'subscribe_session', session_id: s.sessionId })).toMatchObject({ type: 'subscribed' });
    const held = store.hold('get', { match: ([key]) => String(key).startsWith('s:'), once: true, afterInner: true });
    const again = watcher.send({ type: 'subscribe_session', session_id: s.sessionId });
    await held.reached;
    // Another node regenerates it: the record goes, and its event comes a little later.
    await inner.delete(sessionKey(hash));
    held.release();
    await settle();
    expect(watcher.reply(again)).toMatchObject({ type: 'session_invalid' });
    clock.advance(END_EVENT_WAIT_MS / 2);
    await settle();
    gateway.hub.ended(hash, 'regenerated');
    clock.advance(END_EVENT_WAIT_MS * 2);
    await settle();
    expect(watcher.pushes().map((p) => p.body)).toEqual([expect.objectContaining({ type: 'session_expired', session_id: s.sessionId, reason: 'regenerated' })]);
  });

  it('a subscribe whose second look fails answers error 11 and follows nothing', async () => {
    const clock = new ManualClock();
    const store = failingStore(createMemoryStore(clock), false);
    const { gateway } = makeGateway({ clock, store });
    const watcher = new Driver(gateway);
    const admin = new Driver(gateway);
    const s = await gateway.sessions.create('u', undefined, 3600);
    const held = store.hold('get', { match: ([key]) => String(key).startsWith('s:'), once: true, afterInner: true });
    const sub = watcher.send({ type: 'subscribe_session', session_id: s.sessionId });
    await held.reached;
    // The store goes away between the first look and the second.
    store.fail('get');
    held.release();
    await settle();
    expect(watcher.reply(sub)).toMatchObject({ type: 'error', code: 11 });
    expect(gateway.hub.size).toBe(0);
    store.restore('get');
    expect(await admin.call({ type: 'destroy_session', session_id: s.sessionId })).toMatchObject({ type: 'session_destroyed' });
    await settle();
    // Told error 11, the client never heard `subscribed`: no push for it either.
    expect(watcher.pushes()).toEqual([]);
  });
});

describe('background work that meets the store away', () => {
  it('writes no error line (the store health log says it once), and other failures still do', async () => {
    const lines: { level: number; msg: string }[] = [];
    const { pino } = await import('pino');
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l) as { level: number; msg: string }) });
    const clock = new ManualClock(T0);
    const store = failingStore(createMemoryStore(clock), false);
    const t = makeGateway({ clock, store, log });
    const d = new Driver(t.gateway);
    const sid = (await d.call({ type: 'create_session', user_id: 'u', ttl: 60 })).session_id as string;
    await d.call({ type: 'subscribe_session', session_id: sid }, 'watcher');
    store.fail('get');
    clock.advance(60_000); // the end's check meets the store away, and is tried again
    await settle();
    expect(lines.filter((l) => l.level >= 50)).toEqual([]);
    store.fail('get', new Error('a bug, not an outage'));
    clock.advance(1_000);
    await settle();
    expect(lines.filter((l) => l.level >= 50).map((l) => l.msg)).toEqual(['background task failed (sampled)']);
  });
});

describe('a store that fails half-way through an end', () => {
  /** A session of user `u` (ttl 600 s) followed by `watcher`, on a store that fails when told to. */
  async function watched() {
    const clock = new ManualClock(T0);
    const store = failingStore(createMemoryStore(clock), false);
    const t = makeGateway({ clock, store });
    const d = new Driver(t.gateway);
    const sid = (await d.call({ type: 'create_session', user_id: 'u', ttl: 600 })).session_id as string;
    await d.call({ type: 'subscribe_session', session_id: sid }, 'watcher');
    return { store, t, d, sid };
  }

  it('destroy whose index update fails: answered session_destroyed (the session has ended), followers told at once', async () => {
    const { store, t, d, sid } = await watched();
    store.fail('indexRemove', new GatewayError('UNAVAILABLE', 'Store unavailable'));
    expect(await d.call({ type: 'destroy_session', session_id: sid })).toMatchObject({ type: 'session_destroyed' });
    expect(store.failures).toBeGreaterThan(0);
    await settle();
    expect(d.pushes().map((p) => p.body)).toEqual([expect.objectContaining({ type: 'session_expired', session_id: sid, reason: 'destroyed' })]);
    store.restore('indexRemove');
    expect(await d.call({ type: 'validate_session', session_id: sid })).toMatchObject({ type: 'session_invalid' });
    // The stale member is skipped by list and revoke.
    expect(await t.gateway.sessions.list('u')).toEqual([]);
    expect(await d.call({ type: 'revoke_user_sessions', user_id: 'u' })).toMatchObject({ type: 'sessions_revoked', count: 0 });
  });

  it('revoke whose index update fails: every session ended and counted, each follower told once', async () => {
    const { store, t, d, sid } = await watched();
    const other = (await d.call({ type: 'create_session', user_id: 'u', ttl: 600 })).session_id as string;
    await d.call({ type: 'subscribe_session', session_id: other }, 'watcher');
    store.fail('indexRemove', new GatewayError('UNAVAILABLE', 'Store unavailable'));
    expect(await d.call({ type: 'revoke_user_sessions', user_id: 'u' })).toMatchObject({ type: 'sessions_revoked', count: 2 });
    expect(store.failures).toBeGreaterThan(0);
    await settle();
    expect(d.pushes().map((p) => p.body)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ type: 'session_expired', session_id: sid, reason: 'revoked' }),
        expect.objectContaining({ type: 'session_expired', session_id: other, reason: 'revoked' }),
      ]),
    );
    expect(d.pushes()).toHaveLength(2);
    store.restore('indexRemove');
    expect(await t.gateway.sessions.list('u')).toEqual([]);
  });

  it('regenerate whose removal of the old id from the indexes fails: answered with the new id, which is live', async () => {
    const { store, t, d, sid } = await watched();
    store.fail('indexRemove', new GatewayError('UNAVAILABLE', 'Store unavailable'));
    const r = await d.call({ type: 'regenerate_session', old_session_id: sid });
    expect(store.failures).toBeGreaterThan(0);
    expect(r).toMatchObject({ type: 'session_regenerated', new_session_id: expect.any(String) });
    await settle();
    expect(d.pushes().map((p) => p.body)).toEqual([expect.objectContaining({ type: 'session_expired', session_id: sid, reason: 'regenerated' })]);
    store.restore('indexRemove');
    expect(await d.call({ type: 'validate_session', session_id: sid })).toMatchObject({ type: 'session_invalid' });
    expect(await d.call({ type: 'validate_session', session_id: r.new_session_id as string })).toMatchObject({ type: 'session_valid' });
    // The stale member of the old id is skipped: the user's list holds the new session only.
    expect(await t.gateway.sessions.list('u')).toHaveLength(1);
  });

  it('regenerate whose new write fails: error 11, and the old id stays as it was (nothing was taken)', async () => {
    const { store, d, sid } = await watched();
    store.fail('set');
    const r = await d.call({ type: 'regenerate_session', old_session_id: sid });
    expect(r).toMatchObject({ type: 'error', code: 11 });
    await settle();
    expect(d.pushes()).toEqual([]);
    store.restore('set');
    expect(await d.call({ type: 'validate_session', session_id: sid })).toMatchObject({ type: 'session_valid' });
  });

  it('regenerate whose take of the old id fails: error 11, neither id stays valid, and the followers of the old one are told', async () => {
    const clock = new ManualClock(T0);
    const memory = createMemoryStore(clock);
    let takes = 0;
    // The first take's answer is lost (the store did it, or not: the gateway cannot tell).
    const store = storeWith(memory, {
      take: async (take: Store['take'], key: string) => {
        if (takes++ === 0) throw GatewayError.unavailable(new Error('answer lost'));
        return take(key);
      },
    });
    const t = makeGateway({ clock, store });
    const d = new Driver(t.gateway);
    const sid = (await d.call({ type: 'create_session', user_id: 'u', ttl: 600 })).session_id as string;
    await d.call({ type: 'subscribe_session', session_id: sid }, 'watcher');
    expect(await d.call({ type: 'regenerate_session', old_session_id: sid })).toMatchObject({ type: 'error', code: 11 });
    await settle();
    expect(takes).toBe(3);
    expect(d.pushes().map((p) => p.body)).toEqual([expect.objectContaining({ type: 'session_expired', session_id: sid, reason: 'destroyed' })]);
    expect(await d.call({ type: 'list_sessions', user_id: 'u' })).toMatchObject({ type: 'sessions', sessions: [] });
  });
});

describe('subscribe and unsubscribe cost (issue 14, finding 1)', () => {
  it('each subscribe and unsubscribe looks at a bounded number of subscribers, not all of the session', () => {
    const clock = new ManualClock(T0);
    const hub = new SubscriptionHub(
      clock,
      async () => ({ ended: undefined }),
      () => undefined,
    );
    let reads = 0;
    const sub = (warnBefore?: number) => ({
      sessionId: 's',
      ended: () => undefined,
      get expiring() {
        reads++;
        return warnBefore === undefined ? undefined : () => undefined;
      },
      warnBefore,
    });
    const n = 2000;
    for (let i = 0; i < n; i++) hub.subscribe('h', `k${i}`, sub(i % 100 === 0 ? 60_000 : undefined), T0 + 3_600_000, 'ttl');
    let dropped = 0;
    for (let i = 0; i < n; i += 2) if (hub.unsubscribe('h', `k${i}`)) dropped++;
    expect(dropped).toBe(n / 2);
    // A walk over the subscribers on each call read `expiring` about n * n / 2 times.
    expect(reads).toBeLessThanOrEqual(4 * n);
    expect(hub.subscribers('h')).toBe(n / 2);
  });

  it('refuses a new subscriber past the limit, but lets an existing key re-subscribe', () => {
    const clock = new ManualClock(T0);
    const hub = new SubscriptionHub(
      clock,
      async () => ({ ended: undefined }),
      () => undefined,
    );
    const sub = { sessionId: 's', ended: () => undefined };
    expect(hub.subscribe('h', 'a', sub, T0 + 1000, 'ttl', 2)).toBe(true);
    expect(hub.subscribe('h', 'b', sub, T0 + 1000, 'ttl', 2)).toBe(true);
    expect(hub.subscribe('h', 'c', sub, T0 + 1000, 'ttl', 2)).toBe(false);
    expect(hub.subscribe('h', 'a', sub, T0 + 1000, 'ttl', 2)).toBe(true);
    expect(hub.subscribers('h')).toBe(2);
  });

  it('a resync of many followed sessions checks at most MAX_CHECKS at once, each once however often it is asked', async () => {
    const clock = new ManualClock(T0);
    const pending: ((r: { ended: undefined; next: number }) => void)[] = [];
    let calls = 0;
    const hub = new SubscriptionHub(
      clock,
      () => {
        calls++;
        return new Promise((resolve) => pending.push(resolve));
      },
      () => {},
    );
    const n = 3 * MAX_CHECKS + 10;
    const noop = { sessionId: 's', ended: () => {} };
    for (let i = 0; i < n; i++) hub.subscribe(`h${i}`, 'c', noop, T0 + 3_600_000, 'ttl');
    // Three resyncs in a row, as a link that comes and goes would make.
    for (let round = 0; round < 3; round++) for (const hash of hub.followed()) hub.recheck(hash);
    expect(calls).toBe(MAX_CHECKS);
    expect(hub.checking).toBe(MAX_CHECKS);
    let most = 0;
    while (pending.length > 0) {
      most = Math.max(most, hub.checking);
      pending.shift()!({ ended: undefined, next: T0 + 3_600_000 });
      await settle();
    }
    expect(most).toBe(MAX_CHECKS);
    expect(hub.checking).toBe(0);
    // Every session was checked; only those being checked when asked again are checked twice.
    expect(calls).toBe(n + MAX_CHECKS);
    expect(hub.size).toBe(n);
  });

  it('a session unsubscribed while its check waits in the queue is not checked', async () => {
    const clock = new ManualClock(T0);
    const pending: ((r: { ended: undefined; next: number }) => void)[] = [];
    const checked: string[] = [];
    const hub = new SubscriptionHub(
      clock,
      (hash) => {
        checked.push(hash);
        return new Promise((resolve) => pending.push(resolve));
      },
      () => {},
    );
    const noop = { sessionId: 's', ended: () => {} };
    for (let i = 0; i <= MAX_CHECKS; i++) hub.subscribe(`h${i}`, 'c', noop, T0 + 3_600_000, 'ttl');
    for (const hash of hub.followed()) hub.recheck(hash);
    const last = `h${MAX_CHECKS}`;
    expect(checked).not.toContain(last);
    expect(hub.unsubscribe(last, 'c')).toBe(true);
    while (pending.length > 0) {
      pending.shift()!({ ended: undefined, next: T0 + 3_600_000 });
      await settle();
    }
    expect(checked).toHaveLength(MAX_CHECKS);
    expect(checked).not.toContain(last);
  });
});
