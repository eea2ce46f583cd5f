import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock.js';
import type { GatewayError } from '../../../src/errors.js';
import type { EventBus, Store, StoreEvent } from '../../../src/store/types.js';
import { createMemoryStore } from '../../../src/store/memory.js';
import { failingStore } from '../../helpers/failing-store.js';
import { storeWith } from '../../helpers/store-with.js';
import { Driver, makeGateway, SECRET, settle } from '../harness.js';

const T0 = Date.UTC(2026, 0, 1);

/** A token of the gateway's key outside any refresh family: only the user's mark can refuse it. */
function loneToken(sub: string, iat = T0 / 1000): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, iat, exp: iat + 900, jti: `lone-${sub}-${iat}` })}`;
  return `${head}.${createHmac('sha256', SECRET).update(head).digest('base64url')}`;
}

/** An event bus shared by the stores of several gateways in one process, as Redis pub/sub is between nodes. */
class SharedBus implements EventBus {
  readonly #listeners = new Set<(e: StoreEvent) => void>();
  readonly #resync = new Set<() => void>();
  readonly published: StoreEvent[] = [];
  async publish(e: StoreEvent): Promise<void> {
    this.published.push(e);
    for (const fn of this.#listeners) fn(e);
  }
  subscribe(fn: (e: StoreEvent) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }
  onResync(fn: () => void): () => void {
    this.#resync.add(fn);
    return () => this.#resync.delete(fn);
  }
  resync(): void {
    for (const fn of this.#resync) fn();
  }
}

/** One store seen through `bus`: what a second node on the same backend would have. */
function withBus(store: Store, bus: EventBus): Store {
  return new Proxy(store, {
    get(target, prop) {
      if (prop === 'events') return bus;
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/** Two gateways (nodes) on one memory store, with events between them. */
function twoNodes() {
  const clock = new ManualClock(T0);
  const store = createMemoryStore(clock);
  const bus = new SharedBus();
  const a = makeGateway({ clock, store: withBus(store, bus) });
  const b = makeGateway({ clock, store: withBus(store, bus) });
  return { clock, bus, a: a.gateway, b: b.gateway };
}

describe('revoke_user_tokens', () => {
  it("refuses the user's tokens issued at or before `before`, not later ones nor other users'", async () => {
    const { gateway, clock } = makeGateway({ start: T0 + 400 });
    const early = await gateway.tokens.generate({ sub: 'alice' });
    const bob = await gateway.tokens.generate({ sub: 'bob' });
    const noSub = await gateway.tokens.generate({ user: 'alice' });
    clock.advance(500); // the same second as `early`
    const sameSecond = await gateway.tokens.generate({ sub: 'alice' });
    const d = new Driver(gateway);
    expect(await d.call({ type: 'revoke_user_tokens', user_id: 'alice' })).toEqual({ type: 'tokens_revoked', in_reply_to: 1, before: T0 / 1000 });
    expect(await gateway.tokens.verify(early.access_token)).toEqual({ valid: false, error: 'Token revoked' });
    expect(await gateway.tokens.verify(sameSecond.access_token)).toEqual({ valid: false, error: 'Token revoked' });
    expect((await gateway.tokens.verify(bob.access_token)).valid).toBe(true);
    expect((await gateway.tokens.verify(noSub.access_token)).valid).toBe(true);
    clock.advance(100);
    const later = await gateway.tokens.generate({ sub: 'alice' });
    expect((await gateway.tokens.verify(later.access_token)).valid).toBe(true);
  });

  it('revokes the refresh families started at or before it; one started later rotates', async () => {
    const { gateway, clock } = makeGateway({ start: T0 });
    const old = await gateway.tokens.generate({ sub: 'alice' });
    const rotated = await gateway.tokens.refresh(old.refresh_token);
    expect(rotated).toHaveProperty('refresh_token');
    clock.advance(5_000);
    const d = new Driver(gateway);
    expect(await d.call({ type: 'revoke_user_tokens', user_id: 'alice', before: T0 / 1000 + 2 })).toMatchObject({
      type: 'tokens_revoked',
      before: T0 / 1000 + 2,
    });
    const next = rotated as { refresh_token: string; access_token: string };
    expect(await gateway.tokens.refresh(next.refresh_token)).toEqual({ error: 'Refresh token revoked' });
    expect(await gateway.tokens.verify(next.access_token)).toEqual({ valid: false, error: 'Token revoked' });
    const fresh = await gateway.tokens.generate({ sub: 'alice' });
    expect(await gateway.tokens.refresh(fresh.refresh_token)).toHaveProperty('access_token');
  });

  it('answers the mark in force: a `before` older than a mark already applied gets that later mark, which still refuses', async () => {
    const { gateway, clock } = makeGateway({ start: T0 });
    clock.advance(10_000);
    const inside = loneToken('alice', T0 / 1000 + 5);
    const d = new Driver(gateway);
    expect(await d.call({ type: 'revoke_user_tokens', user_id: 'alice' })).toMatchObject({ before: T0 / 1000 + 10 });
    // An older `before` changes nothing: the reply says which tokens are refused now.
    expect(await d.call({ type: 'revoke_user_tokens', user_id: 'alice', before: T0 / 1000 })).toEqual({
      type: 'tokens_revoked',
      in_reply_to: 2,
      before: T0 / 1000 + 10,
    });
    expect(await gateway.tokens.verify(inside)).toEqual({ valid: false, error: 'Token revoked' });
    // A mark too old for any token to live under it is answered as given when none is later.
    expect(await d.call({ type: 'revoke_user_tokens', user_id: 'bob', before: 0 })).toMatchObject({ before: 0 });
  });

  it('revokes a family kept alive by rotation past its first refresh token’s lifetime, for good', async () => {
    // Refresh tokens live 60 s here; the family is rotated every 40 s, so at 120 s its first token
    // (and anything written with that token's lifetime) is long gone, while the family lives.
    const { gateway, clock } = makeGateway({ start: T0, refreshTokenTtl: 60, accessTokenTtl: 10, clockTolerance: 0 });
    let pair = await gateway.tokens.generate({ sub: 'alice' });
    for (let i = 0; i < 3; i++) {
      clock.advance(40_000);
      const next = await gateway.tokens.refresh(pair.refresh_token);
      expect(next).toHaveProperty('refresh_token');
      pair = next as typeof pair;
    }
    await gateway.revokeUserTokens('alice', Math.floor(clock.now() / 1000));
    // Long after the access tokens' lifetime and tolerance, the family stays revoked.
    clock.advance(30_000);
    const after = await gateway.tokens.refresh(pair.refresh_token);
    expect(after).not.toHaveProperty('access_token');
    expect(after).toHaveProperty('error');
  });

  it('a family the revocation could not find (started on another node meanwhile) is revoked at its next refresh', async () => {
    const { gateway, store } = makeGateway({ start: T0 });
    const pair = await gateway.tokens.generate({ sub: 'alice' });
    // As if the family had been listed after the revocation read the user's families.
    const fam = pair.refresh_token.split('.')[0]!;
    await store.indexRemove('uf:alice', fam);
    await gateway.revokeUserTokens('alice', T0 / 1000);
    expect(await gateway.tokens.refresh(pair.refresh_token)).toEqual({ error: 'Refresh token revoked' });
  });

  it("a family started on another node while the revocation listed the user's families stays revoked after the access lifetime", async () => {
    const clock = new ManualClock(T0);
    const store = createMemoryStore(clock);
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let held = false;
    // Node B writes the new family's record late: node A's revocation finds it listed, without a record.
    const late = storeWith(store, {
      set: async (set: Store['set'], key: string, value: unknown, ttlMs: number) => {
        if (key.startsWith('rf:') && !held) {
          held = true;
          await released;
        }
        return set(key, value, ttlMs);
      },
    });
    const a = makeGateway({ clock, store }).gateway;
    const b = makeGateway({ clock, store: late }).gateway;
    const started = b.tokens.generate({ sub: 'alice' });
    await settle();
    expect(held).toBe(true);
    await a.revokeUserTokens('alice', T0 / 1000);
    release();
    const pair = await started;
    // Past the access tokens' lifetime and tolerance, the user's mark is still what stops the family.
    clock.advance((900 + 30 + 2) * 1000);
    expect(await b.tokens.refresh(pair.refresh_token)).toEqual({ error: 'Refresh token revoked' });
    expect(await a.tokens.inspectRefresh(pair.refresh_token)).toBeUndefined();
  });

  it('keeps one mark per user however often it is revoked: a later mark replaces the earlier ones', async () => {
    const { gateway, clock, store } = makeGateway({ start: T0 });
    for (let i = 0; i < 5; i++) {
      await gateway.revokeUserTokens('alice', Math.floor(clock.now() / 1000));
      clock.advance(1000);
    }
    expect(await store.indexMembers('unb:alice', clock.now())).toEqual([String(T0 / 1000 + 4)]);
    // An older `before` sent later adds its mark without taking the higher one away.
    await gateway.revokeUserTokens('alice', T0 / 1000);
    expect((await store.indexMembers('unb:alice', clock.now())).sort()).toEqual([String(T0 / 1000), String(T0 / 1000 + 4)]);
  });

  it('a revocation whose event never comes back is error 11, and leaves nothing behind for its user', async () => {
    const clock = new ManualClock(T0);
    // A remote-looking store whose channel takes events and hands none back (its listener is cut off).
    const silent: EventBus = { publish: async () => undefined, subscribe: () => () => undefined, onResync: () => () => undefined };
    const inner = withBus(createMemoryStore(clock), silent);
    const store = new Proxy(inner, { get: (t, prop) => (prop === 'kind' ? 'redis' : Reflect.get(t, prop, t)) });
    const { gateway } = makeGateway({ clock, store });
    // The wait for the event is a real 2 s timer (it bounds a wait on the network).
    const answers = ['a', 'b', 'c'].map((u) =>
      gateway.revokeUserTokens(u, T0 / 1000).then(
        () => 'done',
        (err: GatewayError) => err.wireCode,
      ),
    );
    await settle();
    expect(gateway.echoesAwaited).toBe(3);
    expect(await Promise.all(answers)).toEqual([11, 11, 11]);
    expect(gateway.echoesAwaited).toBe(0);
  });

  it('fails closed: with the store away and no cached mark, verify_token is error 11', async () => {
    const clock = new ManualClock(T0);
    const store = failingStore(createMemoryStore(clock), false);
    const { gateway } = makeGateway({ clock, store });
    const pair = await gateway.tokens.generate({ sub: 'alice' });
    store.down = true;
    const d = new Driver(gateway);
    expect(await d.call({ type: 'verify_token', token: pair.access_token })).toMatchObject({ type: 'error', code: 11 });
    expect(await d.call({ type: 'revoke_user_tokens', user_id: 'alice' })).toMatchObject({ type: 'error', code: 11 });
  });

  it('another node refuses at once: its cached mark is forgotten on the tokens_revoked event, which names no user id', async () => {
    const { a, b, bus } = twoNodes();
    const pair = await a.tokens.generate({ sub: 'alice' });
    // B has seen alice's tokens: her (empty) mark is in its cache.
    expect((await b.tokens.verify(pair.access_token)).valid).toBe(true);
    await a.revokeUserTokens('alice', T0 / 1000);
    expect(await b.tokens.verify(pair.access_token)).toEqual({ valid: false, error: 'Token revoked' });
    const told = bus.published.filter((e) => e.kind === 'tokens_revoked');
    expect(told).toHaveLength(1);
    expect(JSON.stringify(told)).not.toContain('alice');
  });

  it('after a resync (events may have been missed) every cached mark is read again', async () => {
    const { a, b, bus } = twoNodes();
    const token = loneToken('alice');
    expect((await b.tokens.verify(token)).valid).toBe(true);
    // A revocation whose event B missed: the mark is in the store, B's cache does not know.
    await a.tokens.revokeUser('alice', T0 / 1000, async () => undefined);
    expect(await a.tokens.verify(token)).toEqual({ valid: false, error: 'Token revoked' });
    expect((await b.tokens.verify(token)).valid).toBe(true);
    bus.resync();
    expect(await b.tokens.verify(token)).toEqual({ valid: false, error: 'Token revoked' });
  });

  it('a mark read while a revocation is announced is not cached stale', async () => {
    const clock = new ManualClock(T0);
    const inner = createMemoryStore(clock);
    const bus = new SharedBus();
    const slow = failingStore(withBus(inner, bus), false);
    const a = makeGateway({ clock, store: withBus(inner, bus) }).gateway;
    const b = makeGateway({ clock, store: slow }).gateway;
    const token = loneToken('alice');
    // B's read of alice's mark returns what it read before the revocation, after the event.
    const held = slow.hold('indexMembers', { once: true, afterInner: true });
    const verifying = b.tokens.verify(token);
    await held.reached;
    await a.revokeUserTokens('alice', T0 / 1000);
    held.release();
    expect((await verifying).valid).toBe(true);
    expect(await b.tokens.verify(token)).toEqual({ valid: false, error: 'Token revoked' });
  });
});

describe('extend and update across nodes', () => {
  it('a follower on node B learns the new end and the new data of a change made on node A', async () => {
    const { a, b } = twoNodes();
    const s = await a.sessions.create('alice', undefined, 60);
    const follower = new Driver(b);
    expect(await follower.call({ type: 'subscribe_session', session_id: s.sessionId }, 'app')).toMatchObject({ type: 'subscribed', expires_in: 60 });
    const service = new Driver(a);
    expect(await service.call({ type: 'extend_session', session_id: s.sessionId, ttl: 600 })).toMatchObject({ type: 'session_extended', expires_in: 600 });
    expect(await service.call({ type: 'update_session', session_id: s.sessionId, data: { role: 'admin' } })).toMatchObject({ type: 'session_updated' });
    await settle();
    expect(follower.pushes().map((p) => p.body)).toEqual([
      { type: 'session_extended', session_id: s.sessionId, expires_in: 600, msg_id: 1 },
      { type: 'session_updated', session_id: s.sessionId, data: { role: 'admin' }, msg_id: 2 },
    ]);
  });
});
