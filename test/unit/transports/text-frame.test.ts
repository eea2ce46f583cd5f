import { describe, expect, it } from 'vitest';
import * as wsModule from 'ws';
import { textFrame } from '../../../src/transports/ws/text-frame.js';

/** ws's frame parser: a named export of ws's ES module, not in its types. */
interface FrameReader {
  on(event: 'message', fn: (data: Buffer, isBinary: boolean) => void): void;
  on(event: 'error', fn: (err: Error) => void): void;
  write(chunk: Buffer): void;
}
const { Receiver } = wsModule as unknown as { Receiver: new (o: { isServer: boolean; maxPayload: number }) => FrameReader };

/** What ws's own receiver (a client's side) reads from `bytes`: the messages, or its error. */
function read(bytes: Buffer): { messages: string[]; error?: Error } {
  const r = new Receiver({ isServer: false, maxPayload: 0 });
  const messages: string[] = [];
  let error: Error | undefined;
  r.on('message', (data, isBinary) => {
    expect(isBinary).toBe(false);
    messages.push(data.toString('utf8'));
  });
  r.on('error', (err) => (error = err));
  r.write(bytes);
  return { messages, error };
}

describe('textFrame', () => {
  it('frames text of every length class as ws reads it: 7-bit, 16-bit and 64-bit lengths, multi-byte UTF-8', () => {
    const texts: string[] = [];
    for (const n of [0, 1, 125, 126, 127, 65_535, 65_536, 70_000]) texts.push('x'.repeat(n));
    // Lengths counted in bytes, not characters: 'é' is two bytes, '😀' four.
    texts.push('é'.repeat(63), 'é'.repeat(64), '😀'.repeat(16_384), `{"type":"session_valid","user_id":"ü"}`);
    for (const text of texts) {
      const frame = textFrame(text);
      expect(frame[0]).toBe(0x81); // FIN, text
      expect(frame[1]! & 0x80).toBe(0); // a server's frames are not masked
      const { messages, error } = read(frame);
      expect(error).toBeUndefined();
      expect(messages).toEqual([text]);
    }
  });

  it('a lone surrogate is framed as the replacement character Node encodes it to, so the length still matches', () => {
    const { messages, error } = read(Buffer.concat([textFrame('a\ud800b'), textFrame('next')]));
    expect(error).toBeUndefined();
    expect(messages).toEqual(['a\ufffdb', 'next']);
  });

  it('frames written back to back are read as separate messages', () => {
    const texts = ['a', 'b'.repeat(300), 'c'.repeat(70_000), 'd'];
    const { messages, error } = read(Buffer.concat(texts.map(textFrame)));
    expect(error).toBeUndefined();
    expect(messages).toEqual(texts);
  });
});
