import { describe, expect, it } from 'vitest';
import { hashSecret } from '../../../src/crypto.js';
import { GatewayError } from '../../../src/errors.js';
import { endOf, secondsLeft, unixSeconds, type SessionRecord } from '../../../src/sessions/records.js';
import { ManualClock } from '../../../src/clock.js';
import { createMemoryStore } from '../../../src/store/memory.js';
import type { EventBus, Store, StoreEvent } from '../../../src/store/types.js';
import { storeWith } from '../../helpers/store-with.js';
import { waitForCount } from '../../helpers/wait-for.js';
import { Driver, makeGateway, settle } from '../harness.js';

const T0 = Date.UTC(2026, 0, 1); // a whole second

const OPERATIONS = new Set(['get', 'read', 'set', 'delete', 'take', 'swap', 'swapIf', 'claim', 'indexAdd', 'indexRemove', 'indexMembers']);

/**
 * `store` behind a network: every operation is answered at the next `round()`, all the
 * operations sent before it together, as a remote store answers what went out in one write.
 */
function behindRoundTrips(store: Store) {
  /** Answers waiting, by how many more rounds they wait. */
  let sent: { wait: number; answer: () => void }[] = [];
  /** `store` as another client sees it, whose operations named in `slower` wait that many more rounds. */
  const client = (slower: Partial<Record<string, number>> = {}) =>
    new Proxy(store, {
      get(target, prop) {
        const v = Reflect.get(target, prop, target) as unknown;
        if (typeof v !== 'function') return v;
        const fn = (v as (...a: unknown[]) => unknown).bind(target);
        if (!OPERATIONS.has(String(prop))) return fn;
        return (...args: unknown[]) =>
          new Promise((resolve, reject) =>
            sent.push({
              wait: slower[String(prop)] ?? 0,
              answer: () =>
                void Promise.resolve()
                  .then(() => fn(...args))
                  .then(resolve, reject),
            }),
          );
      },
    });
  /** Answers what was sent (and has waited its extra rounds); resolves, with how many that was, once the answers were acted on. */
  const round = async (): Promise<number> => {
    const answering = sent.filter((s) => s.wait === 0);
    sent = sent.filter((s) => s.wait > 0);
    for (const s of sent) s.wait--;
    for (const s of answering) s.answer();
    await settle();
    return answering.length;
  };
  return { remote: client(), client, round };
}

describe('records: rounding', () => {
  it('expires_in rounds the milliseconds left up; expires_at floors', () => {
    expect(secondsLeft(T0 + 3_600_000, T0)).toBe(3600);
    expect(secondsLeft(T0 + 3_600_000, T0 + 1)).toBe(3600);
    expect(secondsLeft(T0 + 3_600_000, T0 + 1300)).toBe(3599);
    expect(secondsLeft(T0 + 3_600_000, T0 + 1000)).toBe(3599);
    expect(secondsLeft(T0 + 3_600_000, T0 + 3_599_999)).toBe(1);
    expect(secondsLeft(T0 + 3_600_000, T0 + 3_600_000)).toBe(0);
    expect(secondsLeft(T0, T0 + 5000)).toBe(0);
    expect(unixSeconds(T0 + 999)).toBe(T0 / 1000);
    expect(unixSeconds(T0 + 1000)).toBe(T0 / 1000 + 1);
  });

  it('endOf takes the nearer of absolute and idle ends', () => {
    const r: SessionRecord = { u: 'u', c: T0, e: T0 + 10_000, s: T0 };
    expect(endOf(r, 0)).toEqual({ at: T0 + 10_000, reason: 'ttl' });
    expect(endOf(r, 4000)).toEqual({ at: T0 + 4000, reason: 'idle' });
    expect(endOf({ ...r, s: T0 + 8000 }, 4000)).toEqual({ at: T0 + 10_000, reason: 'ttl' });
    expect(endOf({ ...r, s: undefined }, 4000)).toEqual({ at: T0 + 10_000, reason: 'ttl' });
  });
});

describe('SessionService', () => {
  it('creates ids of 256 random bits, URL-safe, stored only under their hash', async () => {
    const { gateway, store } = makeGateway();
    const ids = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const s = await gateway.sessions.create('alice', undefined);
      expect(s.sessionId).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(s.hash).toBe(hashSecret(s.sessionId));
      ids.add(s.sessionId);
      expect(await store.get(`s:${s.sessionId}`)).toBeUndefined();
      expect(await store.get(`s:${s.hash}`)).toMatchObject({ u: 'alice' });
    }
    expect(ids.size).toBe(200);
  });

  it('answers a destroy, a regenerate and a revoke only once their ends are announced to the other nodes', async () => {
    const clock = new ManualClock(T0);
    const memory = createMemoryStore(clock);
    const held: { event: StoreEvent; send: () => void }[] = [];
    // The bus hands an announcement over only when the test says so (a slow publish).
    const events: EventBus = {
      ...memory.events,
      publish: (event) => new Promise<void>((resolve) => held.push({ event, send: resolve })),
    };
    const store = new Proxy(memory, {
      get(target, prop) {
        if (prop === 'events') return events;
        const v = Reflect.get(target, prop, target) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const { gateway } = makeGateway({ clock, store });
    const a = await gateway.sessions.create('ann', undefined);
    const b = await gateway.sessions.create('ann', undefined);
    const c = await gateway.sessions.create('bob', undefined);
    const answered: string[] = [];
    const calls = [
      gateway.sessions.destroy(a.sessionId).then(() => answered.push('destroy')),
      gateway.sessions.regenerate(c.sessionId).then(() => answered.push('regenerate')),
      gateway.sessions.revokeUser('ann').then(() => answered.push('revoke')),
    ];
    await waitForCount(() => held.length, 3, 2000, 'announcements');
    await settle();
    expect(answered).toEqual([]);
    expect(held.map((h) => h.event)).toEqual(
      expect.arrayContaining([
        { kind: 'ended', hash: a.hash, reason: 'destroyed', origin: gateway.instanceId },
        { kind: 'ended', hash: c.hash, reason: 'regenerated', origin: gateway.instanceId },
        { kind: 'ended', hash: b.hash, reason: 'revoked', origin: gateway.instanceId },
      ]),
    );
    for (const h of held) h.send();
    await Promise.all(calls);
    expect(answered.sort()).toEqual(['destroy', 'regenerate', 'revoke']);
  });

  it('ttl 3600 validated at once: 3600; 1.3 s later: 3599; expires_at is floor(end)', async () => {
    // A start that is not a whole second, so floor and ceil differ.
    const { gateway, clock } = makeGateway({ start: T0 + 250 });
    const s = await gateway.sessions.create('alice', undefined, 3600);
    expect(s.expiresIn).toBe(3600);
    expect(s.expiresAt).toBe(Math.floor((T0 + 250 + 3_600_000) / 1000));
    expect(s.expiresAt).toBe(T0 / 1000 + 3600);
    let v = await gateway.sessions.validate(s.sessionId);
    expect(v.valid && v.expiresIn).toBe(3600);
    clock.advance(1300);
    v = await gateway.sessions.validate(s.sessionId);
    expect(v.valid && v.expiresIn).toBe(3599);
  });

  it('uses the default ttl from the options when none is given', async () => {
    const { gateway } = makeGateway({ sessionTtl: 120 });
    const s = await gateway.sessions.create('alice', undefined);
    expect(s.expiresIn).toBe(120);
  });

  it('expires exactly at its end (absolute, counted from creation)', async () => {
    const { gateway, clock } = makeGateway();
    const s = await gateway.sessions.create('alice', { a: 1 }, 10);
    clock.advance(9999);
    const v = await gateway.sessions.validate(s.sessionId);
    expect(v.valid && v.expiresIn).toBe(1);
    clock.advance(1);
    expect((await gateway.sessions.validate(s.sessionId)).valid).toBe(false);
  });

  it('validation does not extend the absolute ttl', async () => {
    const { gateway, clock } = makeGateway();
    const s = await gateway.sessions.create('alice', undefined, 10);
    for (let i = 0; i < 9; i++) {
      clock.advance(1000);
      expect((await gateway.sessions.validate(s.sessionId)).valid).toBe(true);
    }
    clock.advance(1000);
    expect((await gateway.sessions.validate(s.sessionId)).valid).toBe(false);
  });

  it('stores and returns data', async () => {
    const { gateway } = makeGateway();
    const data = { theme: 'dark', cart: [1, 2], nested: { x: null } };
    const s = await gateway.sessions.create('bob', data);
    const v = await gateway.sessions.validate(s.sessionId);
    expect(v.valid && v.record.d).toEqual(data);
    const none = await gateway.sessions.create('bob', undefined);
    const w = await gateway.sessions.validate(none.sessionId);
    expect(w.valid && 'd' in w.record).toBe(false);
  });

  it('unknown ids of any shape are invalid', async () => {
    const { gateway } = makeGateway();
    for (const id of ['', 'abc123', 'x'.repeat(5000), '../../etc', '\u0000', 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA']) {
      expect(await gateway.sessions.validate(id)).toEqual({ valid: false, error: expect.any(String) });
    }
  });

  describe('idle timeout', () => {
    it('ends a session left idle; activity keeps it alive; expires_in is the nearer end', async () => {
      const { gateway, clock } = makeGateway({ sessionIdleTimeout: 300 });
      const s = await gateway.sessions.create('alice', undefined, 3600);
      expect(s.expiresIn).toBe(300);
      clock.advance(200_000);
      let v = await gateway.sessions.validate(s.sessionId);
      expect(v.valid && v.expiresIn).toBe(300);
      clock.advance(299_000);
      v = await gateway.sessions.validate(s.sessionId);
      expect(v.valid && v.expiresIn).toBe(300);
      clock.advance(300_000);
      expect((await gateway.sessions.validate(s.sessionId)).valid).toBe(false);
    });

    it('activity never carries a session past its absolute end', async () => {
      const { gateway, clock } = makeGateway({ sessionIdleTimeout: 300 });
      const s = await gateway.sessions.create('alice', undefined, 600);
      for (let t = 0; t < 550; t += 50) {
        clock.advance(50_000);
        expect(await gateway.sessions.validate(s.sessionId)).toMatchObject({ valid: true, expiresIn: Math.min(300, 600 - (t + 50)) });
      }
      clock.advance(50_000);
      expect((await gateway.sessions.validate(s.sessionId)).valid).toBe(false);
    });

    it('an idle-expired session is neither counted by a revoke nor reported destroyed', async () => {
      const { gateway, clock } = makeGateway({ sessionIdleTimeout: 10 });
      const told: string[] = [];
      gateway.hub.ended = (_h, reason) => void told.push(reason);
      const a = await gateway.sessions.create('alice', undefined, 3600);
      await gateway.sessions.create('alice', undefined, 3600);
      clock.advance(10_000);
      expect(await gateway.sessions.list('alice')).toEqual([]);
      expect(await gateway.sessions.destroy(a.sessionId)).toBe(false);
      expect(await gateway.sessions.revokeUser('alice')).toBe(0);
      expect(told).toEqual(['idle', 'idle']);
    });

    it('peek does not count as activity', async () => {
      const { gateway, clock } = makeGateway({ sessionIdleTimeout: 10 });
      const s = await gateway.sessions.create('alice', undefined, 3600);
      clock.advance(9000);
      expect((await gateway.sessions.peek(s.hash)).valid).toBe(true);
      clock.advance(1000);
      expect((await gateway.sessions.peek(s.hash)).valid).toBe(false);
    });

    it('a validate racing a destroy never brings the session back', async () => {
      const { gateway } = makeGateway({ sessionIdleTimeout: 300 });
      for (let i = 0; i < 20; i++) {
        const s = await gateway.sessions.create('alice', undefined);
        const [, ended] = await Promise.all([gateway.sessions.validate(s.sessionId), gateway.sessions.revokeUser('alice')]);
        expect(ended).toBe(1);
        expect((await gateway.sessions.peek(s.hash)).valid).toBe(false);
        expect(await gateway.sessions.list('alice')).toEqual([]);
      }
    });
  });

  describe('regenerate', () => {
    it('moves data and expiry to a new id and ends the old one', async () => {
      const { gateway, clock } = makeGateway({ start: T0 + 500 });
      const ended: [string, string][] = [];
      gateway.hub.ended = (hash, reason) => void ended.push([hash, reason]);
      const s = await gateway.sessions.create('bob', { theme: 'dark' }, 100);
      clock.advance(40_300);
      const r = await gateway.sessions.regenerate(s.sessionId);
      if ('error' in r) throw new Error(r.error);
      expect(r.sessionId).not.toBe(s.sessionId);
      expect(r.expiresAt).toBe(s.expiresAt);
      expect(r.expiresIn).toBe(60); // ceil(59.7)
      expect((await gateway.sessions.validate(s.sessionId)).valid).toBe(false);
      const v = await gateway.sessions.validate(r.sessionId);
      expect(v.valid && v.record).toMatchObject({ u: 'bob', d: { theme: 'dark' }, e: T0 + 500 + 100_000 });
      expect(ended).toEqual([[s.hash, 'regenerated']]);
      clock.advance(59_700);
      expect((await gateway.sessions.validate(r.sessionId)).valid).toBe(false);
    });

    it('of an unknown, expired or already regenerated id is invalid', async () => {
      const { gateway, clock } = makeGateway();
      expect(await gateway.sessions.regenerate('nope')).toEqual({ error: expect.any(String) });
      const s = await gateway.sessions.create('bob', undefined, 5);
      const r = await gateway.sessions.regenerate(s.sessionId);
      expect(r).toMatchObject({ sessionId: expect.any(String) });
      const renewed = (r as { sessionId: string }).sessionId;
      expect(await gateway.sessions.regenerate(s.sessionId)).toEqual({ error: expect.any(String) });
      clock.advance(5000);
      expect(await gateway.sessions.regenerate(renewed)).toEqual({ error: expect.any(String) });
    });

    it('of concurrent regenerations of one id exactly one wins', async () => {
      const { gateway } = makeGateway();
      const s = await gateway.sessions.create('bob', undefined);
      const results = await Promise.all(Array.from({ length: 10 }, () => gateway.sessions.regenerate(s.sessionId)));
      expect(results.filter((r) => 'sessionId' in r)).toHaveLength(1);
      expect(await gateway.sessions.list('bob')).toHaveLength(1);
    });

    it('with an idle timeout counts as activity on the new id', async () => {
      const { gateway, clock } = makeGateway({ sessionIdleTimeout: 60 });
      const s = await gateway.sessions.create('bob', undefined);
      clock.advance(50_000);
      const r = await gateway.sessions.regenerate(s.sessionId);
      if ('error' in r) throw new Error(r.error);
      expect(r.expiresIn).toBe(60);
      clock.advance(59_000);
      expect((await gateway.sessions.validate(r.sessionId)).valid).toBe(true);
    });
  });

  describe('destroy', () => {
    it('is idempotent and reports whether it ended something', async () => {
      const { gateway } = makeGateway();
      const ended: string[] = [];
      gateway.hub.ended = (_h, reason) => void ended.push(reason);
      const s = await gateway.sessions.create('carol', undefined);
      expect(await gateway.sessions.destroy(s.sessionId)).toBe(true);
      expect(await gateway.sessions.destroy(s.sessionId)).toBe(false);
      expect(await gateway.sessions.destroy('never-issued')).toBe(false);
      expect(ended).toEqual(['destroyed']);
      expect((await gateway.sessions.validate(s.sessionId)).valid).toBe(false);
    });

    it('over the wire is always session_destroyed', async () => {
      const { gateway } = makeGateway();
      const d = new Driver(gateway);
      const created = await d.call({ type: 'create_session', user_id: 'carol' });
      for (let i = 0; i < 3; i++) {
        expect(await d.call({ type: 'destroy_session', session_id: created.session_id as string })).toEqual({
          type: 'session_destroyed',
          message: 'Session destroyed',
          in_reply_to: expect.any(Number),
        });
      }
      expect(await d.call({ type: 'destroy_session', session_id: '' })).toMatchObject({ type: 'session_destroyed' });
    });
  });

  describe('user sessions', () => {
    it('lists by handle (no raw ids), destroys by handle, revokes all but one', async () => {
      const { gateway, clock } = makeGateway();
      const a = await gateway.sessions.create('dave', { n: 1 }, 100);
      clock.advance(1000);
      const b = await gateway.sessions.create('dave', undefined, 100);
      clock.advance(1000);
      const c = await gateway.sessions.create('dave', undefined, 100);
      await gateway.sessions.create('erin', undefined, 100);
      const list = await gateway.sessions.list('dave');
      expect(list.map((s) => s.handle)).toEqual([a.hash, b.hash, c.hash]);
      expect(list[0]).toEqual({ handle: a.hash, created_at: T0 / 1000, expires_at: T0 / 1000 + 100, data: { n: 1 } });
      expect(JSON.stringify(list)).not.toContain(a.sessionId);
      expect(await gateway.sessions.destroyHandle('erin', b.hash)).toBe(false);
      expect(await gateway.sessions.destroyHandle('dave', b.hash)).toBe(true);
      expect(await gateway.sessions.destroyHandle('dave', b.hash)).toBe(false);
      expect(await gateway.sessions.revokeUser('dave', c.sessionId)).toBe(1);
      expect((await gateway.sessions.list('dave')).map((s) => s.handle)).toEqual([c.hash]);
      expect(await gateway.sessions.revokeUser('dave')).toBe(1);
      expect(await gateway.sessions.list('dave')).toEqual([]);
      expect(await gateway.sessions.list('erin')).toHaveLength(1);
    });

    it('revokeUser ends every session of a user with more sessions than it has in hand at once, and counts each once', async () => {
      const { gateway } = makeGateway();
      const ended: string[] = [];
      gateway.hub.ended = (hash) => void ended.push(hash);
      const mine = [];
      for (let i = 0; i < 600; i++) mine.push(await gateway.sessions.create('frank', undefined));
      const other = await gateway.sessions.create('grace', undefined);
      expect(await gateway.sessions.revokeUser('frank', mine[70]!.sessionId)).toBe(599);
      expect(ended).toHaveLength(599);
      expect(new Set(ended).size).toBe(599);
      expect(ended).not.toContain(mine[70]!.hash);
      expect((await gateway.sessions.list('frank')).map((s) => s.handle)).toEqual([mine[70]!.hash]);
      expect((await gateway.sessions.validate(other.sessionId)).valid).toBe(true);
      expect(await gateway.sessions.revokeUser('frank')).toBe(1);
    });

    it('a regenerate racing revokeUser never leaves the user a live session, whatever the interleaving', async () => {
      // Both run over a store answered one round trip at a time; the revoke starts `offset`
      // round trips after the regenerate, so every ordering of their steps is tried.
      const outcomes = new Set<string>();
      // The revoke's reads of records may also come back later than its other operations (a
      // remote store batches them, or its client is busy): 0 to 3 rounds more.
      for (let offset = 0, slower = 0; slower <= 3; offset === 10 ? ((offset = 0), slower++) : offset++) {
        const { gateway: maker, clock, store } = makeGateway();
        const s = await maker.sessions.create('gina', undefined);
        const { remote, client, round } = behindRoundTrips(store);
        const { gateway } = makeGateway({ clock, store: remote });
        const { gateway: revoker } = makeGateway({ clock, store: client({ get: slower }) });
        const told: string[] = [];
        gateway.hub.ended = (_hash, reason) => void told.push(reason);
        revoker.hub.ended = (_hash, reason) => void told.push(reason);
        let regenerated: Awaited<ReturnType<typeof gateway.sessions.regenerate>> | undefined;
        let revoked: number | undefined;
        void gateway.sessions.regenerate(s.sessionId).then((r) => (regenerated = r));
        for (let i = 0; i < offset; i++) await round();
        void revoker.sessions.revokeUser('gina').then((n) => (revoked = n));
        for (let i = 0; i < 100 && (regenerated === undefined || revoked === undefined); i++) await round();
        expect(regenerated).toBeDefined();
        expect(revoked).toBe(1);
        expect(await maker.sessions.list('gina')).toEqual([]);
        expect((await maker.sessions.validate(s.sessionId)).valid).toBe(false);
        const fresh = regenerated !== undefined && 'sessionId' in regenerated ? regenerated.sessionId : undefined;
        const freshValid = fresh === undefined ? false : (await maker.sessions.validate(fresh)).valid;
        expect(freshValid).toBe(false);
        outcomes.add(fresh === undefined ? 'regenerate refused' : 'regenerated, then revoked');
        // One end of each id that lived: the old one's, and the new one's where it was made.
        expect(told.sort()).toEqual(fresh === undefined ? ['revoked'] : ['regenerated', 'revoked']);
      }
      expect([...outcomes].sort()).toEqual(['regenerate refused', 'regenerated, then revoked']);
    });

    it('revokeUser and back-channel logout take a few round trips per group of 128 sessions, and each push goes out once its record is taken', async () => {
      const { gateway: maker, clock, store } = makeGateway();
      const mine: string[] = [];
      for (let i = 0; i < 600; i++) mine.push((await maker.sessions.create('frank', undefined, undefined, { sub: 'idp-frank' })).hash);
      const { remote, round } = behindRoundTrips(store);
      const { gateway } = makeGateway({ clock, store: remote });
      let rounds = 0;
      const told = new Map<string, number>();
      gateway.hub.ended = (hash) => void told.set(hash, rounds);
      let count: number | undefined;
      void gateway.sessions.revokeUser('frank').then((n) => (count = n));
      while (count === undefined && rounds < 100) {
        rounds++;
        expect(await round()).toBeGreaterThan(0);
      }
      expect(count).toBe(600);
      expect([...told.keys()].sort()).toEqual([...mine].sort());
      // The index read, then for each of the 5 groups: the reads, the takes, the index tidied;
      // then the last group's bound tokens revoked (the others' were, meanwhile) before the answer.
      expect(rounds).toBe(1 + 5 * 3 + 1);
      // Pushed in the round trip of the take: the first group's third, the last group's fifteenth.
      expect(told.get(mine[0]!)).toBe(3);
      expect(Math.max(...told.values())).toBe(1 + 4 * 3 + 2);

      // Back-channel logout by the identity provider's subject: the same groups, its index tidied with them.
      for (let i = 0; i < 200; i++) await maker.sessions.create('frank', undefined, undefined, { sub: 'idp-frank-2' });
      const subIndex = `iu:${hashSecret('idp-frank-2')}`;
      expect(await store.indexMembers(subIndex, clock.now())).toHaveLength(200);
      rounds = 0;
      told.clear();
      count = undefined;
      void gateway.sessions.endByIdp({ sub: 'idp-frank-2' }).then((n) => (count = n));
      while (count === undefined && rounds < 100) {
        rounds++;
        await round();
      }
      expect(count).toBe(200);
      expect(told.size).toBe(200);
      // The index read, then for each of 2 groups: the reads, the takes, the user's index tidied, the provider's.
      expect(rounds).toBe(1 + 2 * 4);
      expect(await store.indexMembers(subIndex, clock.now())).toEqual([]);
      expect(await store.indexMembers('u:frank', clock.now())).toEqual([]);
    });

    it("keeps the identity provider's session id and subject only as hashes, and ends by them", async () => {
      const { gateway, store, clock } = makeGateway();
      const s = await gateway.sessions.create('erin', undefined, undefined, { sid: 'idp-sid-Xq7', sub: 'idp-sub-Zt9' });
      const record = (await store.get(`s:${s.hash}`)) as SessionRecord;
      expect(record).toMatchObject({ u: 'erin', is: hashSecret('idp-sid-Xq7'), iu: hashSecret('idp-sub-Zt9') });
      expect(JSON.stringify(record)).not.toMatch(/idp-(sid|sub)-/);
      expect(await store.indexMembers('is:idp-sid-Xq7', clock.now())).toEqual([]);
      expect(await store.indexMembers(`is:${hashSecret('idp-sid-Xq7')}`, clock.now())).toEqual([s.hash]);
      expect(await store.indexMembers(`iu:${hashSecret('idp-sub-Zt9')}`, clock.now())).toEqual([s.hash]);
      expect(await gateway.sessions.endByIdp({ sid: 'idp-sid-other' })).toBe(0);
      expect(await gateway.sessions.endByIdp({ sid: 'idp-sid-Xq7' })).toBe(1);
      expect((await gateway.sessions.validate(s.sessionId)).valid).toBe(false);
    });

    it('a handle cannot be presented as a session id', async () => {
      const { gateway } = makeGateway();
      const s = await gateway.sessions.create('dave', undefined);
      expect((await gateway.sessions.validate(s.hash)).valid).toBe(false);
    });

    it('expired sessions drop out of the list', async () => {
      const { gateway, clock } = makeGateway();
      await gateway.sessions.create('dave', undefined, 10);
      await gateway.sessions.create('dave', undefined, 20);
      clock.advance(10_000);
      expect(await gateway.sessions.list('dave')).toHaveLength(1);
      clock.advance(10_000);
      expect(await gateway.sessions.list('dave')).toHaveLength(0);
      expect(await gateway.sessions.revokeUser('dave')).toBe(0);
    });
  });

  describe('a take that times out and is carried out after all', () => {
    it('destroy answers error 11, and the end is announced once the store does it late', async () => {
      const { gateway: maker, clock, store } = makeGateway();
      const s = await maker.sessions.create('hal', undefined);
      // The store takes the record, but answers after the time limit: the caller's promise
      // was rejected (error 11), and the late answer is handed to `late`.
      let doLate: (() => Promise<void>) | undefined;
      const slow = storeWith(store, {
        take: (take: Store['take'], key: string, late?: (value: unknown) => void) => {
          doLate = async () => late?.(await take(key));
          return Promise.reject(GatewayError.unavailable(new Error('store operation timed out after 800 ms')));
        },
      });
      const { gateway } = makeGateway({ clock, store: slow });
      const told: [string, string][] = [];
      gateway.hub.ended = (hash, reason) => void told.push([hash, reason]);
      await expect(gateway.sessions.destroy(s.sessionId)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
      expect(told).toEqual([]);
      await doLate!();
      await settle();
      expect(told).toEqual([[s.hash, 'destroyed']]);
      expect((await maker.sessions.validate(s.sessionId)).valid).toBe(false);
      expect(await maker.sessions.list('hal')).toEqual([]);
    });
  });

  describe('checkExpiry', () => {
    it('ends a due session once, reports gone, or the new end', async () => {
      const { gateway, clock } = makeGateway({ sessionIdleTimeout: 100 });
      const s = await gateway.sessions.create('eve', undefined, 1000);
      expect(await gateway.sessions.checkExpiry(s.hash)).toEqual({ ended: undefined, next: T0 + 100_000, reason: 'idle' });
      clock.advance(100_000);
      expect(await gateway.sessions.checkExpiry(s.hash)).toEqual({ ended: 'idle' });
      expect(await gateway.sessions.checkExpiry(s.hash)).toEqual({ ended: 'gone' });
    });

    it('ends nothing when a request moved the end between its read and its take: the session stays valid', async () => {
      const { gateway: other, clock, store } = makeGateway({ sessionIdleTimeout: 100 });
      const s = await other.sessions.create('eve', undefined, 1000);
      clock.advance(99_999);
      // The checking node's read returns the copy it read; then, before it acts, a validate on
      // another node (activity, 1 ms before the idle end) lands, and the idle end passes.
      let raced = 0;
      let validInTheRace: boolean | undefined;
      const racing = storeWith(store, {
        get: async (get: Store['get'], key: string) => {
          const read = await get(key);
          if (raced++ === 0) {
            validInTheRace = (await other.sessions.validate(s.sessionId)).valid;
            clock.advance(1);
          }
          return read;
        },
      });
      const { gateway } = makeGateway({ sessionIdleTimeout: 100, clock, store: racing });
      expect(await gateway.sessions.checkExpiry(s.hash)).toEqual({ ended: undefined, next: T0 + 199_999, reason: 'idle' });
      // The first read, asked before the end and answered after it, is not trusted: read again.
      expect(raced).toBe(2);
      expect(validInTheRace).toBe(true);
      expect(await other.sessions.validate(s.sessionId)).toMatchObject({ valid: true, end: T0 + 200_000 });
    });
  });

  it('logs never carry the session id', async () => {
    const lines: string[] = [];
    const { pino } = await import('pino');
    const log = pino({ level: 'trace' }, { write: (l: string) => void lines.push(l) });
    const { gateway } = makeGateway({ log });
    const s = await gateway.sessions.create('frank', undefined);
    const r = await gateway.sessions.regenerate(s.sessionId);
    expect(r).toMatchObject({ sessionId: expect.any(String) });
    const renewed = (r as { sessionId: string }).sessionId;
    await gateway.sessions.destroy(renewed);
    await settle();
    expect(lines.length).toBeGreaterThanOrEqual(3);
    const all = lines.join('');
    expect(all).not.toContain(s.sessionId);
    expect(all).not.toContain(s.hash);
    expect(all).not.toContain(renewed);
    expect(all).not.toContain('frank');
  });
});
