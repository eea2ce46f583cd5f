import { describe, expect, it } from 'vitest';
import { SmallMap } from '../../src/small-map.js';

describe('SmallMap', () => {
  it('behaves as a Map over random sets, deletes and clears (a model check)', () => {
    // A fixed-seed generator: the same sequence on every run.
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let round = 0; round < 60; round++) {
      const small = new SmallMap<number, string>();
      const model = new Map<number, string>();
      for (let step = 0; step < 30; step++) {
        const key = rand(4);
        const op = rand(10);
        if (op < 5) {
          small.set(key, `v${step}`);
          model.set(key, `v${step}`);
        } else if (op < 9) expect(small.delete(key)).toBe(model.delete(key));
        else {
          small.clear();
          model.clear();
        }
        expect(small.size).toBe(model.size);
        expect([...small.keys()]).toEqual([...model.keys()]);
        expect([...small.values()]).toEqual([...model.values()]);
        for (let k = 0; k < 4; k++) {
          expect(small.get(k)).toBe(model.get(k));
          expect(small.has(k)).toBe(model.has(k));
        }
      }
    }
  });

  it('keeps one entry without a Map and replaces its value under the same key', () => {
    const m = new SmallMap<string, number>();
    m.set('a', 1).set('a', 2);
    expect(m.size).toBe(1);
    expect(m.get('a')).toBe(2);
    expect(m.get('b')).toBeUndefined();
    m.set('b', 3);
    expect([...m.keys()]).toEqual(['a', 'b']);
    expect(m.delete('a')).toBe(true);
    expect(m.delete('a')).toBe(false);
    expect([...m.values()]).toEqual([3]);
  });

  it('compares keys as a Map does (NaN finds NaN, 0 finds -0)', () => {
    const m = new SmallMap<number, string>();
    m.set(NaN, 'nan');
    expect(m.get(NaN)).toBe('nan');
    m.clear();
    m.set(0, 'zero');
    expect(m.get(-0)).toBe('zero');
  });
});
