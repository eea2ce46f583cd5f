import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock.js';
import { GatewayError } from '../../../src/errors.js';
import { createMemoryStore } from '../../../src/store/memory.js';
import { EPOCH_CHECK_MS } from '../../../src/store/store-epoch.js';
import type { Store } from '../../../src/store/types.js';
import { Driver, makeGateway, settle } from '../harness.js';

/**
 * A remote-looking store (kind redis) over a memory store that can be swapped for an empty one
 * (a Redis restarted without persistence), with a resync the test triggers (the link back).
 */
function losableStore(clock: ManualClock) {
  let inner = createMemoryStore(clock);
  const resyncs: (() => void)[] = [];
  /** While true, every read fails as a store away does. */
  const away = { reads: false };
  const store = new Proxy({} as Store, {
    get(_target, prop) {
      if (prop === 'kind') return 'redis';
      if (prop === 'get' && away.reads) return () => Promise.reject(GatewayError.unavailable(new Error('store away')));
      if (prop === 'events')
        return {
          ...inner.events,
          onResync: (fn: () => void) => {
            resyncs.push(fn);
            return () => undefined;
          },
        };
      const v = Reflect.get(inner, prop, inner) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(inner) : v;
    },
  });
  const resync = () => {
    for (const fn of resyncs) fn();
  };
  return {
    store,
    away,
    inner: () => inner,
    resync,
    lose: () => {
      inner = createMemoryStore(clock);
      resync();
    },
    /** Emptied with the link up (a FLUSHALL, a TRUNCATE): no resync. */
    empty: () => {
      inner = createMemoryStore(clock);
    },
  };
}

describe('a store that loses its data (StoreEpoch)', () => {
  it('access tokens issued before the loss are refused once it is noticed (their revocations went with it); later ones verify', async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const { store, lose, resync } = losableStore(clock);
    const { gateway } = makeGateway({ clock, store });
    const d = new Driver(gateway);
    await settle();
    const revoked = (await d.call({ type: 'generate_access_token', payload: { sub: 'u' } })).access_token as string;
    const kept = (await d.call({ type: 'generate_access_token', payload: { sub: 'u' } })).access_token as string;
    expect((await d.call({ type: 'revoke_token', token: revoked })).type).toBe('token_revoked');
    expect(await d.call({ type: 'verify_token', token: revoked })).toMatchObject({ type: 'token_invalid', error: 'Token revoked' });
    expect((await d.call({ type: 'verify_token', token: kept })).type).toBe('token_valid');
    // The link comes back without a loss: nothing changes.
    clock.advance(2_000);
    resync();
    await settle();
    expect((await d.call({ type: 'verify_token', token: kept })).type).toBe('token_valid');
    // Then a loss, noticed at the next return of the link.
    lose();
    await settle();
    expect(await d.call({ type: 'verify_token', token: revoked })).toMatchObject({ type: 'token_invalid', error: 'Token revoked' });
    expect(await d.call({ type: 'verify_token', token: kept })).toMatchObject({ type: 'token_invalid', error: 'Token revoked' });
    // A token of the next second verifies (those of the second of the loss are refused: see below).
    clock.advance(1_000);
    const fresh = (await d.call({ type: 'generate_access_token', payload: { sub: 'u' } })).access_token as string;
    expect((await d.call({ type: 'verify_token', token: fresh })).type).toBe('token_valid');
  });

  it('a loss noticed in the second the revoked tokens were issued refuses them, on this node and on one started later; the next second verifies', async () => {
    for (const how of ['restart', 'flush'] as const) {
      // The loss noticed at `offset` ms into a second: at once (restart), or by the next look
      // (flush), 1 ms after the tokens were issued and revoked, in the same second.
      for (const offset of [1, 500, 999]) {
        const noticed = Date.UTC(2026, 0, 1) + offset;
        const clock = new ManualClock(how === 'restart' ? noticed : noticed - EPOCH_CHECK_MS);
        const losable = losableStore(clock);
        const { gateway } = makeGateway({ clock, store: losable.store });
        const d = new Driver(gateway);
        await settle();
        if (how === 'flush') clock.advance(EPOCH_CHECK_MS - 1);
        const revoked = (await d.call({ type: 'generate_access_token', payload: { sub: 'a' } })).access_token as string;
        expect((await d.call({ type: 'revoke_token', token: revoked })).type).toBe('token_revoked');
        if (how === 'restart') losable.lose();
        else {
          losable.empty();
          clock.advance(1);
        }
        await settle();
        expect(await d.call({ type: 'verify_token', token: revoked }), `${how} +${offset} ms`).toMatchObject({ type: 'token_invalid', error: 'Token revoked' });
        const later = new Driver(makeGateway({ clock, store: losable.store }).gateway);
        await settle();
        expect(await later.call({ type: 'verify_token', token: revoked }), `${how} +${offset} ms, later node`).toMatchObject({
          type: 'token_invalid',
          error: 'Token revoked',
        });
        clock.advance(1_000);
        const fresh = (await d.call({ type: 'generate_access_token', payload: { sub: 'b' } })).access_token as string;
        expect((await d.call({ type: 'verify_token', token: fresh })).type).toBe('token_valid');
        expect((await later.call({ type: 'verify_token', token: fresh })).type).toBe('token_valid');
      }
    }
  });

  it('a first start on an empty store is no loss', async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const { store } = losableStore(clock);
    const { gateway } = makeGateway({ clock, store });
    const d = new Driver(gateway);
    await settle();
    const token = (await d.call({ type: 'generate_access_token', payload: { sub: 'u' } })).access_token as string;
    clock.advance(5_000);
    expect((await d.call({ type: 'verify_token', token })).type).toBe('token_valid');
  });

  it('a first look that fails (the store away at start) is made again without a resync, so a later loss is still noticed', async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const { store, away, inner, lose } = losableStore(clock);
    away.reads = true;
    const { gateway } = makeGateway({ clock, store });
    const d = new Driver(gateway);
    await settle();
    away.reads = false;
    expect(await inner().get('epoch')).toBeUndefined();
    // The marker is written by the next look of the series, EPOCH_CHECK_MS on.
    clock.advance(EPOCH_CHECK_MS);
    await settle();
    expect(await inner().get('epoch')).toBeDefined();
    const token = (await d.call({ type: 'generate_access_token', payload: { sub: 'u' } })).access_token as string;
    clock.advance(2_000);
    lose();
    await settle();
    expect(await d.call({ type: 'verify_token', token })).toMatchObject({ type: 'token_invalid', error: 'Token revoked' });
  });

  it('every node notices a loss, also those that look after another node wrote the marker again', async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const first = losableStore(clock);
    // A second node on the same backend: its own link (resync), the same contents.
    const resyncs: (() => void)[] = [];
    const second = new Proxy({} as Store, {
      get(_target, prop) {
        if (prop === 'events')
          return {
            ...first.store.events,
            onResync: (fn: () => void) => {
              resyncs.push(fn);
              return () => undefined;
            },
          };
        const v = Reflect.get(first.store, prop) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(first.store) : v;
      },
    });
    const a = makeGateway({ clock, store: first.store }).gateway;
    const b = makeGateway({ clock, store: second }).gateway;
    await settle();
    const da = new Driver(a);
    const db = new Driver(b);
    const token = (await da.call({ type: 'generate_access_token', payload: { sub: 'u' } })).access_token as string;
    expect((await db.call({ type: 'verify_token', token })).type).toBe('token_valid');
    clock.advance(2_000);
    // The store is emptied; node A's link comes back first and writes the marker again.
    first.lose();
    await settle();
    expect(await first.inner().get('epoch')).toBeDefined();
    expect(await da.call({ type: 'verify_token', token })).toMatchObject({ type: 'token_invalid', error: 'Token revoked' });
    // Node B's link comes back after: it finds a marker, but not the one it saw.
    for (const fn of resyncs) fn();
    await settle();
    expect(await db.call({ type: 'verify_token', token })).toMatchObject({ type: 'token_invalid', error: 'Token revoked' });
    // And a resync with nothing lost changes nothing on either node.
    clock.advance(2_000);
    const fresh = (await da.call({ type: 'generate_access_token', payload: { sub: 'u' } })).access_token as string;
    first.resync();
    for (const fn of resyncs) fn();
    await settle();
    expect((await da.call({ type: 'verify_token', token: fresh })).type).toBe('token_valid');
    expect((await db.call({ type: 'verify_token', token: fresh })).type).toBe('token_valid');
  });

  it('a node started after the loss refuses the tokens issued before it too (the marker says when its contents began)', async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const losable = losableStore(clock);
    const a = makeGateway({ clock, store: losable.store }).gateway;
    await settle();
    const da = new Driver(a);
    const before = (await da.call({ type: 'generate_access_token', payload: { sub: 'u' } })).access_token as string;
    expect((await da.call({ type: 'revoke_token', token: before })).type).toBe('token_revoked');
    clock.advance(2_000);
    losable.lose();
    await settle();
    // Node C starts now, on the emptied store: it never saw the old generation.
    const c = makeGateway({ clock, store: losable.store }).gateway;
    await settle();
    const dc = new Driver(c);
    expect(await dc.call({ type: 'verify_token', token: before })).toMatchObject({ type: 'token_invalid', error: 'Token revoked' });
    clock.advance(1_000);
    const after = (await dc.call({ type: 'generate_access_token', payload: { sub: 'u' } })).access_token as string;
    expect((await dc.call({ type: 'verify_token', token: after })).type).toBe('token_valid');
    expect((await da.call({ type: 'verify_token', token: after })).type).toBe('token_valid');
  });

  it('a store emptied while the link stays up (no resync) is noticed within EPOCH_CHECK_MS', async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const losable = losableStore(clock);
    const { gateway } = makeGateway({ clock, store: losable.store });
    await settle();
    const d = new Driver(gateway);
    const revoked = (await d.call({ type: 'generate_access_token', payload: { sub: 'u' } })).access_token as string;
    expect((await d.call({ type: 'revoke_token', token: revoked })).type).toBe('token_revoked');
    clock.advance(2_000);
    await settle();
    losable.empty();
    expect((await d.call({ type: 'verify_token', token: revoked })).type).toBe('token_valid');
    clock.advance(EPOCH_CHECK_MS);
    await settle();
    expect(await d.call({ type: 'verify_token', token: revoked })).toMatchObject({ type: 'token_invalid', error: 'Token revoked' });
  });

  it('a store emptied while the link stays up pushes session_expired to the followers of the sessions it held, once the loss is noticed', async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const losable = losableStore(clock);
    const { gateway } = makeGateway({ clock, store: losable.store });
    await settle();
    const d = new Driver(gateway);
    const sessionId = (await d.call({ type: 'create_session', user_id: 'u', ttl: 3600 })).session_id as string;
    expect((await d.call({ type: 'subscribe_session', session_id: sessionId }, 'sub')).type).toBe('subscribed');
    clock.advance(2_000);
    await settle();
    losable.empty();
    expect(d.pushes()).toEqual([]);
    // No resync comes (the link never broke): the look of the series notices the loss.
    clock.advance(EPOCH_CHECK_MS);
    await settle(10);
    expect(d.pushes().map((p) => [p.dest, p.body.type, p.body.reason])).toEqual([['sub', 'session_expired', 'destroyed']]);
    expect((await d.call({ type: 'validate_session', session_id: sessionId })).type).toBe('session_invalid');
  });
});
