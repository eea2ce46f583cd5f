import { describe, expect, it } from 'vitest';
import { HEAD_BYTES, LineSplitter, type LineEvent } from '../../../src/transports/line-splitter.js';

function run(max: number, chunks: (string | Buffer)[]): LineEvent[] {
  const s = new LineSplitter(max);
  const out: LineEvent[] = [];
  for (const c of chunks) s.push(typeof c === 'string' ? Buffer.from(c) : c, (e) => out.push(e));
  s.end((e) => out.push(e));
  return out;
}

/** What a splitter must produce: lines split on \n, one trailing \r dropped, empty lines skipped. */
function reference(max: number, text: Buffer): LineEvent[] {
  const out: LineEvent[] = [];
  let start = 0;
  while (start <= text.length) {
    let nl = text.indexOf(0x0a, start);
    if (nl === -1) nl = text.length;
    let line = text.subarray(start, nl);
    if (line.length && line[line.length - 1] === 0x0d) line = line.subarray(0, -1);
    if (line.length > max) out.push({ oversized: line.length, head: line.toString('utf8', 0, HEAD_BYTES) });
    else if (line.length) out.push({ line: line.toString('utf8') });
    start = nl + 1;
  }
  return out;
}

describe('LineSplitter', () => {
  it('splits LF and CRLF lines; a last line without a newline counts; empty lines are skipped', () => {
    expect(run(100, ['a\nb\r\n\n\r\nc'])).toEqual([{ line: 'a' }, { line: 'b' }, { line: 'c' }]);
    expect(run(100, ['{"x":1}\r', '\n{"y"', ':2}'])).toEqual([{ line: '{"x":1}' }, { line: '{"y":2}' }]);
    expect(run(100, [])).toEqual([]);
    expect(run(100, ['\n\n'])).toEqual([]);
  });

  it('a line of exactly the limit passes (with or without \\r); one byte more is oversized', () => {
    const ok = 'x'.repeat(10);
    expect(run(10, [`${ok}\n`])).toEqual([{ line: ok }]);
    expect(run(10, [`${ok}\r\n`])).toEqual([{ line: ok }]);
    expect(run(10, [`${ok}`])).toEqual([{ line: ok }]);
    expect(run(10, [`${ok}x\nnext\n`])).toEqual([{ oversized: 11, head: `${ok}x` }, { line: 'next' }]);
    expect(run(10, ['xxxxx', 'xxxxx', 'x', '\nnext'])).toEqual([{ oversized: 11, head: 'xxxxxxxxxxx' }, { line: 'next' }]);
    expect(run(10, [`${ok}x`])).toEqual([{ oversized: 11, head: `${ok}x` }]);
  });

  it('multi-byte characters split across chunks survive', () => {
    const text = Buffer.from('{"u":"é中😀"}\n');
    const chunks = [...text].map((b) => Buffer.from([b]));
    expect(run(100, chunks)).toEqual([{ line: '{"u":"é中😀"}' }]);
  });

  it('a line that is not UTF-8 is reported, with its head, however the input is cut; valid characters cut at an edge are not', () => {
    const bad = Buffer.concat([Buffer.from('{"u":"caf'), Buffer.from([0xe9]), Buffer.from('"}')]);
    const good = Buffer.from('{"u":"é中😀"}');
    const text = Buffer.concat([bad, Buffer.from('\n'), good, Buffer.from('\n'), bad]);
    const want = [{ notUtf8: true, head: '{"u":"caf\ufffd"}' }, { line: '{"u":"é中😀"}' }, { notUtf8: true, head: '{"u":"caf\ufffd"}' }];
    for (let cut = 0; cut <= text.length; cut++) expect(run(100, [text.subarray(0, cut), text.subarray(cut)])).toEqual(want);
    expect(
      run(
        100,
        [...text].map((b) => Buffer.from([b])),
      ),
    ).toEqual(want);
  });

  it('gives the same events however the input is cut into chunks', () => {
    let seed = 42;
    const rand = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    for (let round = 0; round < 300; round++) {
      const parts: string[] = [];
      for (let i = 0; i < 20; i++) {
        const len = rand(3) === 0 ? rand(40) : rand(12);
        parts.push('ab€'.repeat(len).slice(0, len) + (rand(4) === 0 ? '\r' : '') + (rand(6) === 0 ? '' : '\n'));
      }
      const text = Buffer.from(parts.join(''));
      const chunks: Buffer[] = [];
      for (let at = 0; at < text.length;) {
        const n = 1 + rand(15);
        chunks.push(text.subarray(at, at + n));
        at += n;
      }
      // The byte count of a skipped line is the line's, without its \r, wherever the chunks cut it.
      const norm = (es: LineEvent[]) => es.map((e) => ('line' in e ? e : 'oversized' in e ? { oversized: e.oversized } : e));
      expect(norm(run(16, chunks)), `round ${round}`).toEqual(norm(reference(16, text)));
    }
  });

  it('an oversized CRLF line counts the bytes an LF line of the same message does, however it is cut', () => {
    const line = 'y'.repeat(40);
    for (let cut = 0; cut <= 42; cut++) {
      const text = Buffer.from(`${line}\r\nnext\n`);
      expect(run(10, [text.subarray(0, cut), text.subarray(cut)]), `cut at ${cut}`).toEqual([{ oversized: 40, head: expect.any(String) }, { line: 'next' }]);
    }
    // At the end of input too.
    expect(run(10, ['y'.repeat(20), '\r'])).toEqual([{ oversized: 20, head: expect.any(String) }]);
  });

  it('an oversized line streams past without being held: 200 MB in 64 KiB chunks', () => {
    const s = new LineSplitter(65_536);
    const chunk = Buffer.alloc(65_536, 0x61);
    const out: LineEvent[] = [];
    const heapBefore = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
    for (let i = 0; i < 3200; i++) s.push(chunk, (e) => out.push(e));
    const grown = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers - heapBefore;
    s.push(Buffer.from('\n{"ok":1}\n'), (e) => out.push(e));
    expect(out).toEqual([{ oversized: 3200 * 65_536, head: expect.any(String) }, { line: '{"ok":1}' }]);
    // Only the head of the line is kept, to read its msg_id from.
    expect((out[0] as { head: string }).head.length).toBeLessThanOrEqual(HEAD_BYTES);
    expect(grown).toBeLessThan(32 * 1024 * 1024);
  });
});
