import { isAscii, isUtf8 } from 'node:buffer';

/**
 * A line; or the news that one was too long and has been skipped, or was not UTF-8 (with its
 * first bytes, decoded with replacement characters, to read its `msg_id` and ends from).
 */
export type LineEvent = { line: string } | { oversized: number; head: string } | { notUtf8: true; head: string };

/** How much of an oversized line is kept, to read its `msg_id` and ends from. */
export const HEAD_BYTES = 4096;

/**
 * Splits a byte stream into lines, holding at most `maxBytes` of any line: a longer line
 * is counted and dropped as it streams past, never buffered whole.
 */
export class LineSplitter {
  readonly #max: number;
  #parts: Buffer[] = [];
  #held = 0;
  /** bytes of the current line seen while discarding it; -1 when not discarding */
  #skipping = -1;
  /** whether the last byte discarded was a \r, which is the line's end, not part of it */
  #skippedCr = false;
  /** the first bytes of the line being discarded */
  #head = '';

  constructor(maxBytes: number) {
    this.#max = maxBytes;
  }

  /** Feeds a chunk; calls `emit` for each complete line or oversized line. */
  push(chunk: Buffer, emit: (e: LineEvent) => void): void {
    let start = 0;
    // One check of the whole chunk; only a chunk that fails it (an invalid byte, or a character
    // cut at either edge) has its lines checked one by one.
    const ascii = isAscii(chunk);
    const utf8 = ascii || isUtf8(chunk);
    // A chunk of ASCII only needs no UTF-8 decoding: each byte is its character.
    const encoding = ascii ? 'latin1' : 'utf8';
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      const end = nl === -1 ? chunk.length : nl;
      const len = end - start;
      if (nl !== -1 && this.#skipping < 0 && this.#held === 0 && len <= this.#max + 1) {
        // A whole line inside this chunk (the common case): decoded in place, no copy.
        const stop = len > 0 && chunk[end - 1] === 0x0d ? end - 1 : end;
        if (stop - start > this.#max) emit({ oversized: stop - start, head: chunk.toString('utf8', start, Math.min(stop, start + HEAD_BYTES)) });
        else if (stop > start && !utf8 && !isUtf8(chunk.subarray(start, stop)))
          emit({ notUtf8: true, head: chunk.toString('utf8', start, Math.min(stop, start + HEAD_BYTES)) });
        else if (stop > start) emit({ line: chunk.toString(encoding, start, stop) });
        start = nl + 1;
        continue;
      }
      if (this.#skipping >= 0) {
        this.#skipping += len;
        if (len > 0) this.#skippedCr = chunk[end - 1] === 0x0d;
      } else if (this.#held + len > this.#max + 1) {
        // +1: a trailing \r is not part of the limit.
        this.#skipping = this.#held + len;
        this.#skippedCr = chunk[end - 1] === 0x0d;
        this.#head = Buffer.concat([...this.#parts, chunk.subarray(start, Math.min(end, start + HEAD_BYTES))]).toString('utf8', 0, HEAD_BYTES);
        this.#parts = [];
        this.#held = 0;
      } else if (len > 0) {
        this.#parts.push(chunk.subarray(start, end));
        this.#held += len;
      }
      if (nl === -1) return;
      this.#endLine(emit);
      start = nl + 1;
    }
  }

  /** End of input: a last line without a newline still counts. */
  end(emit: (e: LineEvent) => void): void {
    if (this.#skipping >= 0 || this.#held > 0) this.#endLine(emit);
  }

  #endLine(emit: (e: LineEvent) => void): void {
    if (this.#skipping >= 0) {
      emit({ oversized: this.#skipping - (this.#skippedCr ? 1 : 0), head: this.#head });
      this.#skipping = -1;
      this.#head = '';
      return;
    }
    let buf = this.#parts.length === 1 ? this.#parts[0]! : Buffer.concat(this.#parts, this.#held);
    this.#parts = [];
    this.#held = 0;
    if (buf.length > 0 && buf[buf.length - 1] === 0x0d) buf = buf.subarray(0, buf.length - 1);
    if (buf.length > this.#max) {
      emit({ oversized: buf.length, head: buf.toString('utf8', 0, HEAD_BYTES) });
      return;
    }
    if (buf.length > 0 && !isUtf8(buf)) emit({ notUtf8: true, head: buf.toString('utf8', 0, HEAD_BYTES) });
    else if (buf.length > 0) emit({ line: buf.toString('utf8') });
  }
}
