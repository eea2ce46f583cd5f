import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GatewayError } from '../../src/errors.js';
import type { Store, StoreEvent } from '../../src/store/types.js';
import { waitForCount } from '../helpers/wait-for.js';

/** One store under test, and how to move its time and break its backend. */
export interface StoreHarness {
  store: Store;
  /** The time the store's callers pass in (indexMembers' `now`). */
  now(): number;
  /** Lets `ms` pass: moves a manual clock, or really waits for a remote backend. */
  pass(ms: number): Promise<void>;
  /** A second store on the same backend and namespace (another node); absent for memory. */
  peer?(): Promise<Store>;
  /** Takes the backend away and brings it back; absent where it cannot fail (memory). */
  outage?: { begin(): Promise<void>; end(): Promise<void> };
  close(): Promise<void>;
}

/** Real-time backends need TTLs long enough to survive a few round trips on a busy machine (half of 1 s was not, on a loaded 2-core host). */
const TTL = 2000;

async function rejectsUnavailable(p: Promise<unknown>): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GatewayError);
  expect((err as GatewayError).code).toBe('UNAVAILABLE');
  expect((err as GatewayError).wireCode).toBe(11);
}

/**
 * What a backend offers beyond one node's reads and writes: other nodes on the same data
 * (`peer`), and a backend that can go away (`outage`). Declared per backend, so that a case
 * is either run or not part of its suite: a harness that declares one and lacks it fails.
 */
export interface StoreCapabilities {
  peers: boolean;
  outage: boolean;
}

/**
 * The store contract (src/store/types.ts), one suite for every backend, with a fresh
 * store per test. `make` returns the harness for a new, empty store.
 */
export function storeContract(name: string, make: () => Promise<StoreHarness>, can: StoreCapabilities): void {
  describe(`store contract: ${name}`, () => {
    let h: StoreHarness;
    let s: Store;
    const extra: Store[] = [];

    beforeEach(async () => {
      h = await make();
      s = h.store;
    });

    afterEach(async () => {
      for (const e of extra.splice(0)) await e.close();
      await h.close();
    });

    it('reads nothing for a key never written', async () => {
      expect(await s.get('nope')).toBeUndefined();
      expect(await s.read('nope')).toBeUndefined();
    });

    it('read answers what get answers, before and after a write and a delete', async () => {
      await s.set('k', { u: 'user1', e: 2 }, TTL);
      expect(await s.read('k')).toEqual({ u: 'user1', e: 2 });
      expect(await s.read('k')).toEqual(await s.get('k'));
      await s.delete('k');
      expect(await s.read('k')).toBeUndefined();
    });

    it('round-trips JSON values, strings with a leading colon included', async () => {
      const values: unknown[] = [
        { u: 'user1', c: 1, e: 2, d: { role: 'admin', tags: ['a', 'b'], nested: { x: null } } },
        'plain',
        ':colon-first',
        '::double',
        'ünïcødé ✓',
        42,
        0,
        [1, 'two', { three: 3 }],
        [['jti', 1700000000]],
      ];
      for (const [i, v] of values.entries()) await s.set(`k${i}`, v, 60_000);
      for (const [i, v] of values.entries()) expect(await s.get(`k${i}`)).toEqual(v);
    });

    it('overwrites a value and its TTL', async () => {
      await s.set('k', 'first', TTL);
      await s.set('k', 'second', 60_000);
      await h.pass(TTL + 150);
      expect(await s.get('k')).toBe('second');
    });

    it('frees a value when its TTL runs out, not before', async () => {
      await s.set('k', 'v', TTL);
      await h.pass(TTL / 2);
      expect(await s.get('k')).toBe('v');
      await h.pass(TTL / 2 + 150);
      expect(await s.get('k')).toBeUndefined();
      expect(await s.take('k')).toBeUndefined();
    });

    it('deletes, telling whether something was there', async () => {
      await s.set('k', 'v', 60_000);
      expect(await s.delete('k')).toBe(true);
      expect(await s.get('k')).toBeUndefined();
      expect(await s.delete('k')).toBe(false);
    });

    it('take reads and deletes; a second take finds nothing', async () => {
      await s.set('k', { a: 1 }, 60_000);
      expect(await s.take('k')).toEqual({ a: 1 });
      expect(await s.take('k')).toBeUndefined();
      expect(await s.get('k')).toBeUndefined();
      expect(await s.take('never')).toBeUndefined();
    });

    it('take: of 50 concurrent callers exactly one gets the value', async () => {
      await s.set('k', 'prize', 60_000);
      const got = await Promise.all(Array.from({ length: 50 }, () => s.take<string>('k')));
      expect(got.filter((v) => v === 'prize')).toHaveLength(1);
      expect(got.filter((v) => v === undefined)).toHaveLength(49);
    });

    it('swap writes nothing when the key is absent', async () => {
      expect(await s.swap('k', 'new')).toBeUndefined();
      expect(await s.get('k')).toBeUndefined();
    });

    it('swap returns the old value, stores the new one and keeps the expiry', async () => {
      await s.set('k', { f: 'fam' }, TTL);
      await h.pass(TTL / 2);
      expect(await s.swap('k', { f: 'fam', spent: 1 })).toEqual({ f: 'fam' });
      expect(await s.get('k')).toEqual({ f: 'fam', spent: 1 });
      await h.pass(TTL / 2 + 150);
      expect(await s.get('k')).toBeUndefined();
    });

    it('swap with an expiry moves the end, later and earlier; absent: writes nothing', async () => {
      expect(await s.swap('gone', 'x', h.now() + TTL)).toBeUndefined();
      expect(await s.get('gone')).toBeUndefined();
      await s.set('k', 'a', TTL);
      expect(await s.swap('k', 'b', h.now() + 3 * TTL)).toBe('a');
      await h.pass(TTL + 150);
      expect(await s.get('k')).toBe('b');
      expect(await s.swap('k', 'c', h.now() + TTL / 2)).toBe('b');
      expect(await s.get('k')).toBe('c');
      await h.pass(TTL / 2 + 150);
      expect(await s.get('k')).toBeUndefined();
    });

    it('swapIf writes only over the expected value (as JSON), keeps the expiry, and says what was there', async () => {
      expect(await s.swapIf('k', 'a', 'b')).toEqual({ swapped: false, old: undefined });
      expect(await s.get('k')).toBeUndefined();
      const rec = { u: 'user1', c: 1, e: 2, d: { n: [1, 'x:y', null], s: 'é"\\' } };
      await s.set('k', rec, TTL);
      await h.pass(TTL / 2);
      const seen = await s.get<typeof rec>('k');
      expect(await s.swapIf('k', { ...rec, e: 3 }, { ...rec, e: 4 })).toEqual({ swapped: false, old: rec });
      expect(await s.swapIf('k', seen, { ...rec, e: 5 })).toEqual({ swapped: true, old: rec });
      expect(await s.get('k')).toEqual({ ...rec, e: 5 });
      // What a swapIf wrote compares as what set wrote did.
      expect((await s.swapIf('k', { ...rec, e: 5 }, { ...rec, e: 6 })).swapped).toBe(true);
      await h.pass(TTL / 2 + 150);
      expect(await s.get('k')).toBeUndefined();
    });

    it('swapIf over a value written by swap, and with an expiry that moves the end', async () => {
      await s.set('k', { a: 1 }, TTL);
      await s.swap('k', { a: 2 });
      expect((await s.swapIf('k', { a: 2 }, { a: 3 }, { expiresAt: h.now() + 3 * TTL })).swapped).toBe(true);
      await h.pass(TTL + 150);
      expect(await s.get('k')).toEqual({ a: 3 });
      expect((await s.swapIf('k', { a: 3 }, { a: 4 })).swapped).toBe(true);
      expect(await s.get('k')).toEqual({ a: 4 });
    });

    it('swapIf with before: nothing is written once the store clock has reached it', async () => {
      await s.set('k', { a: 1 }, 60_000);
      expect(await s.swapIf('k', { a: 1 }, { a: 2 }, { before: h.now() - 1 })).toEqual({ swapped: false, old: { a: 1 } });
      expect(await s.get('k')).toEqual({ a: 1 });
      expect(await s.swapIf('k', { a: 1 }, { a: 2 }, { before: h.now() + 60_000 })).toEqual({ swapped: true, old: { a: 1 } });
      await s.set('j', { a: 1 }, 60_000);
      const before = h.now() + TTL / 2;
      await h.pass(TTL / 2 + 150);
      expect(await s.swapIf('j', { a: 1 }, { a: 2 }, { before })).toEqual({ swapped: false, old: { a: 1 } });
      expect(await s.get('j')).toEqual({ a: 1 });
    });

    it('swapIf: of 50 concurrent callers expecting the same value exactly one writes', async () => {
      await s.set('k', { v: 0 }, 60_000);
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => s.swapIf('k', { v: 0 }, { v: i + 1 })));
      const won = results.filter((r) => r.swapped);
      expect(won).toHaveLength(1);
      const winner = results.indexOf(won[0]!) + 1;
      expect(await s.get('k')).toEqual({ v: winner });
      for (const r of results.filter((r) => !r.swapped)) expect(r.old).not.toEqual({ v: 0 });
    });

    it('swap: 50 concurrent swaps form one chain (exactly one sees the original)', async () => {
      await s.set('k', 'orig', 60_000);
      const olds = await Promise.all(Array.from({ length: 50 }, (_, i) => s.swap<string>('k', `v${i}`)));
      const final = await s.get<string>('k');
      expect(olds.filter((v) => v === 'orig')).toHaveLength(1);
      const seen = [...olds, final].sort();
      expect(seen).toEqual(['orig', ...Array.from({ length: 50 }, (_, i) => `v${i}`)].sort());
    });

    it('claim: the first caller gets the key, later ones do not while it is held', async () => {
      expect(await s.claim('j:a', 60_000)).toBe(true);
      expect(await s.claim('j:a', 60_000)).toBe(false);
      expect(await s.claim('j:b', 60_000)).toBe(true);
    });

    it('claim: of 50 concurrent callers exactly one gets the key', async () => {
      const got = await Promise.all(Array.from({ length: 50 }, () => s.claim('j:race', 60_000)));
      expect(got.filter((v) => v)).toHaveLength(1);
    });

    it("claim: the key reads as the winner's value (true by default); a loser's value is never written", async () => {
      expect(await s.claim('j:plain', 60_000)).toBe(true);
      expect(await s.get('j:plain')).toBe(true);
      const got = await Promise.all(Array.from({ length: 20 }, (_, i) => s.claim('j:valued', 60_000, `v${i}`)));
      expect(got.filter((v) => v)).toHaveLength(1);
      expect(await s.get('j:valued')).toBe(`v${got.indexOf(true)}`);
      expect(await s.claim('j:valued', 60_000, 'late')).toBe(false);
      expect(await s.get('j:valued')).toBe(`v${got.indexOf(true)}`);
    });

    /** The harness's second node: required where the backend declares peers. */
    async function peer(): Promise<Store> {
      if (!h.peer) throw new Error(`the ${name} harness declares peers but has no peer()`);
      const other = await h.peer();
      extra.push(other);
      return other;
    }

    if (can.peers) {
      it('claim: another node sees the claim', async () => {
        const other = await peer();
        expect(await s.claim('j:shared', 60_000)).toBe(true);
        expect(await other.claim('j:shared', 60_000)).toBe(false);
      });
    }

    it('claim: the key is free again once its TTL has run out, not before', async () => {
      expect(await s.claim('j:k', TTL)).toBe(true);
      await h.pass(TTL / 2);
      expect(await s.claim('j:k', TTL)).toBe(false);
      await h.pass(TTL / 2 + 150);
      expect(await s.claim('j:k', TTL)).toBe(true);
      expect(await s.claim('j:k', TTL)).toBe(false);
    });

    it('index: lists live members, forgets removed and expired ones', async () => {
      const now = h.now();
      await s.indexAdd('u:alice', 'h1', now + 60_000);
      await s.indexAdd('u:alice', 'h2', now + TTL);
      await s.indexAdd('u:alice', 'h3', now + 60_000);
      await s.indexAdd('u:bob', 'h4', now + 60_000);
      expect((await s.indexMembers('u:alice', h.now())).sort()).toEqual(['h1', 'h2', 'h3']);
      await s.indexRemove('u:alice', 'h3');
      await s.indexRemove('u:alice', 'never-there');
      expect((await s.indexMembers('u:alice', h.now())).sort()).toEqual(['h1', 'h2']);
      await h.pass(TTL + 150);
      expect(await s.indexMembers('u:alice', h.now())).toEqual(['h1']);
      expect(await s.indexMembers('u:bob', h.now())).toEqual(['h4']);
      expect(await s.indexMembers('u:nobody', h.now())).toEqual([]);
    });

    it('index: adding a member again moves its expiry', async () => {
      const now = h.now();
      await s.indexAdd('u:carol', 'h1', now + TTL);
      await s.indexAdd('u:carol', 'h1', now + 60_000);
      await h.pass(TTL + 150);
      expect(await s.indexMembers('u:carol', h.now())).toEqual(['h1']);
      await s.indexRemove('u:carol', 'h1');
      expect(await s.indexMembers('u:carol', h.now())).toEqual([]);
    });

    it('index: adds of one member keep the later expiry, whatever order they land in (racing extends)', async () => {
      const now = h.now();
      // Two extends of one session: the later end is written first, the earlier one lands last.
      await s.indexAdd('u:erin', 'h1', now + 60_000);
      await s.indexAdd('u:erin', 'h1', now + TTL);
      // Twenty at once, one of them with the later end.
      await Promise.all(Array.from({ length: 20 }, (_, i) => s.indexAdd('u:erin', 'h2', now + (i === 7 ? 60_000 : TTL))));
      await h.pass(TTL + 150);
      expect((await s.indexMembers('u:erin', h.now())).sort()).toEqual(['h1', 'h2']);
    });

    it('index: with shorten, adding a member again moves its expiry earlier', async () => {
      const now = h.now();
      await s.indexAdd('u:frank', 'h1', now + 60_000);
      await s.indexAdd('u:frank', 'h1', now + TTL, { shorten: true });
      await s.indexAdd('u:frank', 'h2', now + TTL, { shorten: true });
      expect((await s.indexMembers('u:frank', h.now())).sort()).toEqual(['h1', 'h2']);
      await h.pass(TTL + 150);
      expect(await s.indexMembers('u:frank', h.now())).toEqual([]);
    });

    it('is ready when its backend is', () => {
      expect(s.isReady()).toBe(true);
    });

    if (can.peers) {
      it('events: another node hears an end; unsubscribing stops it', async () => {
        const other = await peer();
        const heard: StoreEvent[] = [];
        const off = other.events.subscribe((e) => heard.push(e));
        const event: StoreEvent = { kind: 'ended', hash: 'abcDEF123_-', reason: 'revoked', origin: 'node-a' };
        const sent = Date.now();
        await s.events.publish(event);
        await waitForCount(() => heard.length, 1, 2000, 'events on the other node');
        expect(heard).toEqual([event]);
        // Promptly (a busy 2-core machine needs the slack; the cross-node figure is the benchmarks').
        expect(Date.now() - sent).toBeLessThan(1000);
        off();
        // A listener still subscribed is told of every event in the same turn as the others: once
        // it has the second end, the one unsubscribed would have it too.
        const still: StoreEvent[] = [];
        other.events.subscribe((e) => still.push(e));
        await s.events.publish({ ...event, hash: 'second' });
        await waitForCount(() => still.length, 1, 2000, 'events after the unsubscribe');
        expect(still).toEqual([{ ...event, hash: 'second' }]);
        expect(heard).toHaveLength(1);
      });
    }

    if (can.outage) {
      it('fails every operation with UNAVAILABLE (code 11) while the backend is away, then recovers', async () => {
        const outage = h.outage;
        if (!outage) throw new Error(`the ${name} harness declares outages but has no outage`);
        await s.set('kept', 'v', 60_000);
        await s.indexAdd('u:dave', 'h1', h.now() + 60_000);
        await outage.begin();
        const started = Date.now();
        const ops: Promise<unknown>[] = [
          s.get('kept'),
          s.set('k', 1, 60_000),
          s.delete('kept'),
          s.take('kept'),
          s.swap('kept', 'x'),
          s.claim('j:kept', 60_000),
          s.indexAdd('u:dave', 'h2', h.now() + 60_000),
          s.indexRemove('u:dave', 'h1'),
          s.indexMembers('u:dave', h.now()),
          s.events.publish({ kind: 'ended', hash: 'h', reason: 'destroyed', origin: 'o' }),
        ];
        try {
          for (const op of ops) await rejectsUnavailable(op);
          // Every failure within the time limit (1 s by default), all at once rather than one after
          // another (that would be 10 s): slack for a busy machine.
          expect(Date.now() - started).toBeLessThan(2500);
          const notReadyBy = Date.now() + 2000;
          while (s.isReady() && Date.now() < notReadyBy) await new Promise((r) => setTimeout(r, 20));
          expect(s.isReady()).toBe(false);
        } finally {
          await outage.end();
        }
        const back = Date.now();
        while (!s.isReady() && Date.now() - back < 5000) await new Promise((r) => setTimeout(r, 20));
        expect(s.isReady()).toBe(true);
        expect(Date.now() - back).toBeLessThan(2000);
        await s.set('after', 'ok', 60_000);
        expect(await s.get('after')).toBe('ok');
      });
    }
  });
}
