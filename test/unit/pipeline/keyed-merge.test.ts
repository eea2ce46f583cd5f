import { Subject, from, lastValueFrom, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { EXCLUSIVE, keyedMerge, type OrderKey } from '../../../src/pipeline/keyed-merge.js';
import { settle } from '../harness.js';

interface Item {
  key?: OrderKey;
  n: number;
}

/** A work function whose results are released by hand, recording what runs when. */
function controlled() {
  const running: Item[] = [];
  const started: number[] = [];
  const waiters = new Map<number, (v: string) => void>();
  let peak = 0;
  const work = (item: Item) =>
    new Promise<string>((resolve) => {
      running.push(item);
      started.push(item.n);
      peak = Math.max(peak, running.length);
      waiters.set(item.n, (v) => {
        running.splice(running.indexOf(item), 1);
        resolve(v);
      });
    });
  return {
    work,
    started,
    running,
    get peak() {
      return peak;
    },
    release(n: number) {
      const w = waiters.get(n);
      if (!w) throw new Error(`item ${n} is not running`);
      waiters.delete(n);
      w(`r${n}`);
    },
  };
}

const recover = (item: Item, err: unknown) => `e${item.n}:${(err as Error).message}`;

describe('keyedMerge', () => {
  it('runs one key in arrival order, other keys concurrently', async () => {
    const c = controlled();
    const in$ = new Subject<Item>();
    const out: string[] = [];
    in$.pipe(keyedMerge((i) => i.key, c.work, recover, 10)).subscribe((r) => out.push(r));
    in$.next({ key: 'a', n: 1 });
    in$.next({ key: 'a', n: 2 });
    in$.next({ key: 'b', n: 3 });
    in$.next({ n: 4 });
    in$.next({ key: 'a', n: 5 });
    expect(c.started).toEqual([1, 3, 4]);
    c.release(3);
    c.release(4);
    await settle();
    expect(out).toEqual(['r3', 'r4']);
    c.release(1);
    await settle();
    expect(c.started).toEqual([1, 3, 4, 2]);
    c.release(2);
    await settle();
    expect(c.started).toEqual([1, 3, 4, 2, 5]);
    c.release(5);
    await settle();
    expect(out).toEqual(['r3', 'r4', 'r1', 'r2', 'r5']);
  });

  it('per-key order holds for many keys under a small concurrency bound, which is never exceeded', async () => {
    const order = new Map<string, number[]>();
    let running = 0;
    let peak = 0;
    const work = async (i: Item) => {
      const key = String(i.key);
      running++;
      peak = Math.max(peak, running);
      const seen = order.get(key) ?? [];
      seen.push(i.n);
      order.set(key, seen);
      // Finish in a scrambled order: some items take longer than others.
      for (let k = 0; k < (i.n * 7) % 5; k++) await Promise.resolve();
      running--;
      return `${key}:${i.n}`;
    };
    const items: Item[] = [];
    for (let n = 0; n < 2000; n++) items.push({ key: `k${(n * 13) % 17}`, n });
    const out = await lastValueFrom(
      from(items).pipe(
        keyedMerge((i) => i.key, work, recover, 4),
        toArray(),
      ),
    );
    expect(out).toHaveLength(2000);
    expect(peak).toBeLessThanOrEqual(4);
    expect(peak).toBeGreaterThan(1);
    for (const [key, ns] of order) {
      expect(ns, key).toEqual([...ns].sort((a, b) => a - b));
      const results = out.filter((r) => r.startsWith(`${key}:`)).map((r) => Number(r.split(':')[1]));
      expect(results, key).toEqual(ns);
    }
  });

  it('the bound holds with keyless items too', async () => {
    const c = controlled();
    const in$ = new Subject<Item>();
    in$.pipe(keyedMerge((i) => i.key, c.work, recover, 3)).subscribe();
    for (let n = 1; n <= 10; n++) in$.next({ n });
    expect(c.started).toEqual([1, 2, 3]);
    c.release(2);
    await settle();
    expect(c.started).toEqual([1, 2, 3, 4]);
    expect(c.peak).toBe(3);
  });

  it('survives a handler that throws, synchronously or by rejecting', async () => {
    const work = (i: Item): Promise<string> | string => {
      if (i.n % 3 === 0) throw new Error('sync');
      if (i.n % 3 === 1) return Promise.reject(new Error('async'));
      return `ok${i.n}`;
    };
    const items = Array.from({ length: 30 }, (_, n) => ({ key: n % 2 ? 'odd' : undefined, n }));
    const out = await lastValueFrom(
      from(items).pipe(
        keyedMerge((i) => i.key, work, recover, 2),
        toArray(),
      ),
    );
    expect(out).toHaveLength(30);
    expect(out.filter((r) => r.endsWith(':sync'))).toHaveLength(10);
    expect(out.filter((r) => r.endsWith(':async'))).toHaveLength(10);
    expect(out.filter((r) => r.startsWith('ok'))).toHaveLength(10);
  });

  it('completes only after the source completes and every item has settled', async () => {
    const c = controlled();
    const in$ = new Subject<Item>();
    let done = false;
    in$.pipe(keyedMerge((i) => i.key, c.work, recover, 2)).subscribe({ complete: () => void (done = true) });
    in$.next({ key: 'a', n: 1 });
    in$.next({ key: 'a', n: 2 });
    in$.complete();
    await settle();
    expect(done).toBe(false);
    c.release(1);
    await settle();
    expect(done).toBe(false);
    c.release(2);
    await settle();
    expect(done).toBe(true);
  });

  it('completes at once on an empty source', async () => {
    expect(
      await lastValueFrom(
        from([] as Item[]).pipe(
          keyedMerge(
            (i) => i.key,
            (i) => i.n,
            () => -1,
            1,
          ),
          toArray(),
        ),
      ),
    ).toEqual([]);
  });

  it('a long queue of synchronous results behind a slow one does not overflow the stack', async () => {
    const c = controlled();
    const in$ = new Subject<Item>();
    const out: (string | number)[] = [];
    const work = (i: Item): string | number | Promise<string> => (i.n === 0 ? c.work(i) : i.n);
    in$
      .pipe(
        keyedMerge(
          (i) => i.key,
          work,
          (i) => `e${i.n}`,
          1,
        ),
      )
      .subscribe((r) => out.push(r));
    in$.next({ n: 0 });
    for (let n = 1; n <= 100_000; n++) in$.next({ n });
    c.release(0);
    await settle();
    expect(out).toHaveLength(100_001);
    expect(out.filter((r) => typeof r === 'string' && r.startsWith('e'))).toEqual([]);
  });

  it('a long run of synchronous results for one key does not overflow the stack', async () => {
    const c = controlled();
    const in$ = new Subject<Item>();
    const out: (string | number)[] = [];
    const work = (i: Item): string | number | Promise<string> => (i.n === 0 ? c.work(i) : i.n);
    in$
      .pipe(
        keyedMerge(
          (i) => i.key,
          work,
          (i) => `e${i.n}`,
          8,
        ),
      )
      .subscribe((r) => out.push(r));
    for (let n = 0; n <= 20_000; n++) in$.next({ key: 'same', n });
    c.release(0);
    await settle();
    expect(out).toHaveLength(20_001);
    expect(out.filter((r) => typeof r === 'string')).toEqual(['r0']);
  });

  it('an EXCLUSIVE item starts once every earlier item has finished, and later ones wait for it', async () => {
    const c = controlled();
    const in$ = new Subject<Item>();
    const out: string[] = [];
    in$.pipe(keyedMerge((i) => i.key, c.work, recover, 10)).subscribe((r) => out.push(r));
    in$.next({ key: 'a', n: 1 });
    in$.next({ key: 'a', n: 2 });
    in$.next({ n: 3 });
    in$.next({ key: EXCLUSIVE, n: 4 });
    in$.next({ key: 'b', n: 5 });
    in$.next({ n: 6 });
    expect(c.started).toEqual([1, 3]);
    c.release(1);
    await settle();
    expect(c.started).toEqual([1, 3, 2]);
    c.release(3);
    c.release(2);
    await settle();
    expect(c.started).toEqual([1, 3, 2, 4]);
    expect(c.running.map((i) => i.n)).toEqual([4]);
    c.release(4);
    await settle();
    expect(c.started).toEqual([1, 3, 2, 4, 5, 6]);
    c.release(5);
    c.release(6);
    await settle();
    expect(out).toEqual(['r1', 'r3', 'r2', 'r4', 'r5', 'r6']);
  });

  it('EXCLUSIVE items in a row run one at a time, each alone, and the stream then completes', async () => {
    const c = controlled();
    const in$ = new Subject<Item>();
    const out: string[] = [];
    let done = false;
    in$.pipe(keyedMerge((i) => i.key, c.work, recover, 10)).subscribe({ next: (r) => out.push(r), complete: () => void (done = true) });
    in$.next({ key: EXCLUSIVE, n: 1 });
    in$.next({ key: EXCLUSIVE, n: 2 });
    in$.next({ n: 3 });
    in$.next({ key: EXCLUSIVE, n: 4 });
    in$.complete();
    for (const n of [1, 2, 3, 4]) {
      expect(c.running.map((i) => i.n)).toEqual([n]);
      c.release(n);
      await settle();
    }
    expect(out).toEqual(['r1', 'r2', 'r3', 'r4']);
    expect(c.peak).toBe(1);
    expect(done).toBe(true);
  });

  it('synchronous EXCLUSIVE items between synchronous keyed ones keep arrival order without recursion', async () => {
    const in$ = new Subject<Item>();
    const out: number[] = [];
    in$
      .pipe(
        keyedMerge(
          (i) => i.key,
          (i) => i.n,
          () => -1,
          4,
        ),
      )
      .subscribe((r) => out.push(r));
    for (let n = 0; n < 30_000; n++) in$.next({ key: n % 3 === 0 ? EXCLUSIVE : `k${n % 5}`, n });
    await settle();
    expect(out).toEqual(Array.from({ length: 30_000 }, (_, n) => n));
  });
});
