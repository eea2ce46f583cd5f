import { describe, expect, it } from 'vitest';
import { ParsedReads } from '../../../src/store/parsed-reads.js';

/** A parse that counts its calls. */
function counted() {
  let calls = 0;
  const reads = new ParsedReads((raw: string) => {
    calls++;
    return JSON.parse(raw) as { value: { u: string; d?: { role: string } } };
  });
  return { reads, calls: () => calls };
}

describe('ParsedReads', () => {
  it('parses a text once, and gives the same value for every read of the same text of a key', () => {
    const { reads, calls } = counted();
    const raw = '{"value":{"u":"alice","d":{"role":"admin"}},"expires":1}';
    const first = reads.parse('s:a', raw);
    // A text equal to the last one but not the same string (a new reply from the store).
    const again = reads.parse('s:a', JSON.stringify(JSON.parse(raw)));
    expect(again).toBe(first);
    expect(first).toEqual({ value: { u: 'alice', d: { role: 'admin' } }, expires: 1 });
    expect(calls()).toBe(1);
  });

  it('parses again when the stored text of the key changed, and keys never share a value', () => {
    const { reads, calls } = counted();
    const a = reads.parse('s:a', '{"value":{"u":"alice"}}');
    const changed = reads.parse('s:a', '{"value":{"u":"alice","d":{"role":"admin"}}}');
    const other = reads.parse('s:b', '{"value":{"u":"alice"}}');
    expect(changed).not.toBe(a);
    expect(changed.value.d).toEqual({ role: 'admin' });
    expect(other).not.toBe(a);
    expect(calls()).toBe(3);
  });

  it('hands out values that cannot be changed, at any depth', () => {
    const { reads } = counted();
    const v = reads.parse('s:a', '{"value":{"u":"alice","d":{"role":"admin"}}}');
    expect(() => {
      (v.value as { u: string }).u = 'mallory';
    }).toThrow(TypeError);
    expect(() => {
      v.value.d!.role = 'root';
    }).toThrow(TypeError);
    expect(reads.parse('s:a', '{"value":{"u":"alice","d":{"role":"admin"}}}').value).toEqual({ u: 'alice', d: { role: 'admin' } });
  });

  it('keeps a bounded number of keys: the least recently read are parsed again', () => {
    const { reads, calls } = counted();
    const raw = '{"value":{"u":"x"}}';
    for (let i = 0; i < 10_000; i++) reads.parse(`s:${i}`, raw);
    expect(calls()).toBe(10_000);
    reads.parse('s:9999', raw);
    expect(calls()).toBe(10_000);
    reads.parse('s:0', raw);
    expect(calls()).toBe(10_001);
  });
});
