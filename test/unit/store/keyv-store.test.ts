import { Keyv } from 'keyv';
import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../../src/errors.js';
import type { Atomics } from '../../../src/store/keyv-store.js';
import { KeyvStore } from '../../../src/store/keyv-store.js';
import type { StoreOperation } from '../../../src/store/types.js';

/**
 * A remote-looking store whose `take` answers only when the test says so, whose `swap` answers
 * in place and whose `claim` throws; `away` makes the backend read as unreachable.
 */
function storeWithPendingTake(timeoutMs: number) {
  const pending: { resolve: (v: unknown) => void; reject: (err: unknown) => void }[] = [];
  const take = () => new Promise((resolve, reject) => pending.push({ resolve, reject }));
  const swap = () => 'old';
  const claim = () => {
    throw new Error('the client refused the command');
  };
  const atomics = { take, swap, claim } as unknown as Atomics;
  const backend = { away: false };
  const store = new KeyvStore({
    kind: 'redis',
    keyv: new Keyv(),
    atomics,
    events: { publish: () => Promise.resolve(), subscribe: () => () => {}, onResync: () => () => {} },
    timeoutMs,
    unreachable: () => backend.away,
  });
  const seen: { op: StoreOperation; ok: boolean; seconds: number }[] = [];
  store.observe((op, seconds, ok) => seen.push({ op, ok, seconds }));
  return { store, pending, seen, backend };
}

describe('KeyvStore: the time and outcome of each remote operation', () => {
  it('tells the observer once of an operation that answers, with its time', async () => {
    const { store, pending, seen } = storeWithPendingTake(60_000);
    const taken = store.take('s:a');
    expect(pending).toHaveLength(1);
    expect(seen).toHaveLength(0);
    pending[0]!.resolve('value');
    await expect(taken).resolves.toBe('value');
    expect(seen).toEqual([{ op: 'take', ok: true, seconds: expect.any(Number) }]);
    expect(seen[0]!.seconds).toBeGreaterThanOrEqual(0);
  });

  it('tells the observer once of an operation that fails, which rejects with code 11', async () => {
    const { store, pending, seen } = storeWithPendingTake(60_000);
    const taken = store.take('s:a');
    pending[0]!.reject(new Error('connection reset'));
    const err: unknown = await taken.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).wireCode).toBe(11);
    expect(seen).toEqual([{ op: 'take', ok: false, seconds: expect.any(Number) }]);
  });

  it('counts an operation refused at once (the backend unreachable, or the call throwing) as an error, and one answered in place as ok', async () => {
    const { store, pending, seen, backend } = storeWithPendingTake(60_000);
    backend.away = true;
    const refused: unknown = await store.take('s:a').catch((e: unknown) => e);
    expect((refused as GatewayError).wireCode).toBe(11);
    expect(pending).toHaveLength(0);
    backend.away = false;
    const thrown: unknown = await store.claim('c:a', 1000).catch((e: unknown) => e);
    expect((thrown as GatewayError).wireCode).toBe(11);
    await expect(store.swap('s:a', 'new')).resolves.toBe('old');
    expect(seen.map((s) => [s.op, s.ok])).toEqual([
      ['take', false],
      ['claim', false],
      ['swap', true],
    ]);
  });

  it('counts a time-out as one error, and an answer after it as nothing more', async () => {
    const { store, pending, seen } = storeWithPendingTake(40);
    const err: unknown = await store.take('s:a').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatewayError);
    expect(String((err as GatewayError).cause)).toMatch(/timed out after 40 ms/);
    expect(seen).toEqual([{ op: 'take', ok: false, seconds: expect.any(Number) }]);
    // The late answer neither settles the caller again nor adds an observation: the next
    // operation's, made after it, is the only one that follows.
    pending[0]!.resolve('late');
    const next = store.take('s:b');
    pending[1]!.resolve('second');
    await expect(next).resolves.toBe('second');
    expect(seen.map((s) => s.ok)).toEqual([false, true]);
  });

  it('tells a take that timed out what it took once the backend answers after all', async () => {
    const { store, pending } = storeWithPendingTake(40);
    const late: unknown[] = [];
    const err: unknown = await store.take('s:a', (v) => late.push(v)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatewayError);
    expect(late).toEqual([]);
    pending[0]!.resolve({ u: 'alice' });
    await Promise.resolve();
    await Promise.resolve();
    expect(late).toEqual([{ u: 'alice' }]);
    // A take answered in time is not told twice.
    const inTime = store.take('s:b', (v) => late.push(v));
    pending[1]!.resolve('on time');
    await expect(inTime).resolves.toBe('on time');
    expect(late).toEqual([{ u: 'alice' }]);
  });
});
