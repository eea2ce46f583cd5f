import { Keyv } from 'keyv';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock.js';
import { GatewayError } from '../../../src/errors.js';
import { KeyvStore } from '../../../src/store/keyv-store.js';
import { createMemoryStore } from '../../../src/store/memory.js';
import { MemoryMap } from '../../../src/store/memory-map.js';
import { heapAfterGc } from '../../helpers/heap.js';
import { makeGateway } from '../harness.js';

/** One full pass of the sweep takes about 5 s of clock time, whatever the size. */
const SWEEP_PASS_MS = 5_000 + 100;

/** Atomics that do nothing: for stores whose reads are what a test is about. */
const INERT_ATOMICS = {
  take: () => undefined,
  swap: () => undefined,
  swapIf: () => ({ swapped: false, old: undefined }),
  claim: () => true,
  indexAdd: () => {},
  indexRemove: () => {},
  indexMembers: () => [],
};
describe('MemoryMap', () => {
  it('expires on read at exactly its ttl, on the injected clock', () => {
    const clock = new ManualClock();
    const m = new MemoryMap(clock);
    m.set('k', { value: 1 }, 1000);
    clock.advance(999);
    expect(m.get('k')?.value).toBe(1);
    clock.advance(1);
    expect(m.get('k')).toBeUndefined();
    m.close();
  });

  it('frees entries nobody reads again: one sweep pass after expiry', () => {
    const clock = new ManualClock();
    const m = new MemoryMap(clock);
    for (let i = 0; i < 10_000; i++) m.set(`k${i}`, { value: i }, 1000 + i);
    m.set('keep', { value: 'x' }, 3_600_000);
    m.indexAdd('u:a', 'm1', clock.now() + 500);
    m.indexAdd('u:a', 'm2', clock.now() + 3_600_000);
    m.indexAdd('u:b', 'm3', clock.now() + 500);
    expect(m.size).toBe(10_003);
    clock.advance(11_000 + SWEEP_PASS_MS);
    expect(m.size).toBe(2); // 'keep' and u:a (m2)
    expect(m.indexMembers('u:a', clock.now())).toEqual(['m2']);
    m.close();
  });

  it('a pass takes about 5 s even while it deletes most of what it visits', () => {
    const clock = new ManualClock();
    const m = new MemoryMap(clock);
    for (let i = 0; i < 300_000; i++) m.set(`k${i}`, { value: i }, 1000);
    for (let i = 0; i < 300_000; i++) m.indexAdd(`u:${i % 10}`, `m${i}`, clock.now() + 1000);
    clock.advance(1000 + SWEEP_PASS_MS);
    expect(m.size).toBe(0);
    m.close();
  });

  it('under steady churn nothing outlives its expiry by more than one pass', () => {
    const clock = new ManualClock();
    const m = new MemoryMap(clock);
    const exps: number[] = [];
    let seed = 7;
    const rand = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    for (let t = 0; t < 600; t++) {
      // Bursts: some ticks add thousands, most add few.
      const n = t % 50 === 0 ? 20_000 : rand(200);
      for (let i = 0; i < n; i++) {
        const ttl = 1 + rand(20_000);
        m.set(`k${exps.length}`, { value: 0 }, ttl);
        exps.push(clock.now() + ttl);
      }
      clock.advance(100);
      if (t % 10 === 0) {
        const now = clock.now();
        const mayRemain = exps.filter((e) => e > now - SWEEP_PASS_MS).length;
        const live = exps.filter((e) => e > now).length;
        expect(m.size).toBeGreaterThanOrEqual(live);
        expect(m.size, `at ${t}`).toBeLessThanOrEqual(mayRemain);
      }
    }
    m.close();
  });

  it('take is atomic get+delete; swap keeps the expiry and writes nothing when absent', () => {
    const clock = new ManualClock();
    const m = new MemoryMap(clock);
    m.set('k', { value: 'a' }, 1000);
    expect(m.swap('k', 'b')).toBe('a');
    expect(m.swap('absent', 'z')).toBeUndefined();
    expect(m.has('absent')).toBe(false);
    clock.advance(999);
    expect(m.get('k')?.value).toBe('b');
    clock.advance(1);
    expect(m.swap('k', 'c')).toBeUndefined();
    m.set('t', { value: 1 }, 1000);
    expect(m.take('t')).toBe(1);
    expect(m.take('t')).toBeUndefined();
    m.close();
  });

  it('close stops the sweep timer', () => {
    const clock = new ManualClock();
    const m = new MemoryMap(clock);
    expect(clock.pending).toBe(1);
    m.close();
    expect(clock.pending).toBe(0);
  });
});

describe('memory store', () => {
  it('100,000 created-and-expired sessions leave the store empty (size 0) after ttl plus one sweep pass', async () => {
    const { gateway, clock, store } = makeGateway();
    // Warm the code paths first, so that JIT code and caches do not count as session memory.
    for (let i = 0; i < 1000; i++) await gateway.sessions.create(`warm${i}`, { i }, 60);
    clock.advance(60_000 + SWEEP_PASS_MS);
    expect(store.size()).toBe(0);
    const heapBefore = await heapAfterGc();
    for (let i = 0; i < 100_000; i++) await gateway.sessions.create(`user${i % 1000}`, { i }, 60);
    expect(store.size()).toBe(100_000 + 1000); // sessions + one index per user
    const heapFull = await heapAfterGc();
    clock.advance(60_000 + SWEEP_PASS_MS);
    expect(store.size()).toBe(0);
    const heapAfter = await heapAfterGc();
    // What 100k sessions took (tens of MB) is given back (a generous bound: the test runner's own heap moves too).
    expect(heapFull - heapBefore).toBeGreaterThan(10 * 1024 * 1024);
    expect(heapAfter - heapBefore).toBeLessThan(Math.max(5 * 1024 * 1024, 0.2 * (heapFull - heapBefore)));
    await store.close();
  }, 60_000);

  it('sessions followed by nobody still leave memory with an idle timeout, at their absolute end', async () => {
    const { gateway, clock, store } = makeGateway({ sessionIdleTimeout: 10 });
    for (let i = 0; i < 1000; i++) await gateway.sessions.create('u', undefined, 60);
    clock.advance(10_000);
    expect(await gateway.sessions.list('u')).toEqual([]);
    clock.advance(50_000 + SWEEP_PASS_MS);
    expect(store.size()).toBe(0);
  });
});

describe('KeyvStore', () => {
  /** A Keyv store adapter that fails every call, the way a lost backend does. */
  const brokenAdapter = () => {
    const fail = () => Promise.reject(new Error('ECONNREFUSED 127.0.0.1:1 secret-detail'));
    return { opts: {}, namespace: undefined, get: fail, set: fail, delete: fail, clear: fail, has: fail, on: () => {} };
  };

  it('every failure, thrown or rejected, becomes GatewayError UNAVAILABLE (code 11), never "not found"', async () => {
    const keyv = new Keyv({ store: brokenAdapter() as never, throwOnErrors: true });
    const atomics = {
      take: () => {
        throw new Error('sync failure');
      },
      swap: () => Promise.reject(new Error('async failure')),
      swapIf: () => Promise.reject(new Error('async failure')),
      claim: () => Promise.reject(new Error('x')),
      indexAdd: () => Promise.reject(new Error('x')),
      indexRemove: () => Promise.reject(new Error('x')),
      indexMembers: () => Promise.reject(new Error('x')),
    };
    const store = new KeyvStore({ kind: 'memory', keyv, atomics, events: { publish: async () => {}, subscribe: () => () => {}, onResync: () => () => {} } });
    const ops: [string, () => Promise<unknown>][] = [
      ['get', () => store.get('k')],
      ['set', () => store.set('k', 1, 1000)],
      ['delete', () => store.delete('k')],
      ['take', () => store.take('k')],
      ['swap', () => store.swap('k', 1)],
      ['swapIf', () => store.swapIf('k', 1, 2)],
      ['claim', () => store.claim('k', 1000)],
      ['indexAdd', () => store.indexAdd('k', 'm', 1)],
      ['indexRemove', () => store.indexRemove('k', 'm')],
      ['indexMembers', () => store.indexMembers('k', 0)],
    ];
    for (const [name, op] of ops) {
      const err = await op().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, name).toBeInstanceOf(GatewayError);
      expect((err as GatewayError).wireCode, name).toBe(11);
      expect((err as GatewayError).message, name).toBe('Store unavailable');
    }
  });

  it('an in-place read that fails throws GatewayError UNAVAILABLE (code 11), never "not found"', () => {
    const keyv = new Keyv({ store: brokenAdapter() as never, throwOnErrors: true });
    const store = new KeyvStore({
      kind: 'memory',
      keyv,
      read: () => {
        throw new Error('sync failure');
      },
      readsInPlace: true,
      atomics: INERT_ATOMICS,
      events: { publish: async () => {}, subscribe: () => () => {}, onResync: () => () => {} },
    });
    let err: unknown;
    try {
      store.read('k');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).wireCode).toBe(11);
    expect((err as GatewayError).message).toBe('Store unavailable');
  });

  it('a time-out is UNAVAILABLE too', async () => {
    const keyv = new Keyv({ store: { ...brokenAdapter(), get: () => new Promise(() => {}) } as never, throwOnErrors: true });
    const store = new KeyvStore({
      kind: 'redis',
      keyv,
      timeoutMs: 20,
      atomics: INERT_ATOMICS,
      events: { publish: async () => {}, subscribe: () => () => {}, onResync: () => () => {} },
    });
    await expect(store.get('k')).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  });

  it('the memory store round-trips values and frees them at their ttl', async () => {
    const clock = new ManualClock();
    const store = createMemoryStore(clock);
    await store.set('k', { a: [1] }, 1000);
    expect(await store.get('k')).toEqual({ a: [1] });
    // In place: the value itself, no Promise.
    expect(store.read('k')).toEqual({ a: [1] });
    expect(await store.swap('k', { a: [2] })).toEqual({ a: [1] });
    clock.advance(1000);
    expect(store.read('k')).toBeUndefined();
    expect(await store.get('k')).toBeUndefined();
    expect(await store.delete('k')).toBe(false);
    await store.close();
    expect(clock.pending).toBe(0);
  });
});
