import type { Readable, Writable } from 'node:stream';
import { Observable } from 'rxjs';
import type { Gateway } from '../gateway.js';
import type { Outbound } from '../pipeline/connection.js';
import { decode, oversized, type Decoded } from '../protocol/decode.js';
import { readEnvelopeHead } from '../protocol/head.js';
import { encode } from '../protocol/replies.js';
import { LineSplitter, type LineEvent } from './line-splitter.js';

export interface StdioOptions {
  maxMessageBytes: number;
  /** Pause reading while this many requests await their replies. */
  highWaterMark?: number;
  /** Flush the output once this many bytes are batched. */
  batchBytes?: number;
}

const isPush = (m: Outbound) => !('in_reply_to' in m.body) && 'msg_id' in m.body;

/**
 * JSON lines in, JSON lines out. Output is batched per turn of the event loop (one write
 * for many replies); reading pauses while the output cannot drain or too many requests
 * are in flight, so memory stays bounded whatever the producer does. Resolves once input
 * has ended and every reply has been written.
 */
export function runStdio(gateway: Gateway, input: Readable, output: Writable, o: StdioOptions): Promise<void> {
  const conn = gateway.connect();
  const highWater = o.highWaterMark ?? 4 * gateway.options.maxInFlight;
  const batchBytes = o.batchBytes ?? 64 * 1024;
  let pending = 0;
  let batch: string[] = [];
  let batchLen = 0;
  let flushScheduled = false;
  let outputBlocked = false;

  const resumeIfCalm = () => {
    if (!outputBlocked && pending < highWater && input.isPaused()) input.resume();
  };

  const flush = () => {
    flushScheduled = false;
    if (batch.length === 0) return;
    const data = batch.join('');
    batch = [];
    batchLen = 0;
    // One 'drain' listener at a time, however many writes the full buffer refuses.
    if (!output.write(data) && !outputBlocked) {
      outputBlocked = true;
      input.pause();
      output.once('drain', () => {
        outputBlocked = false;
        resumeIfCalm();
      });
    }
  };

  const send = (m: Outbound) => {
    if (!isPush(m)) {
      pending--;
      resumeIfCalm();
    }
    const line = `${encode(m)}\n`;
    batch.push(line);
    batchLen += line.length;
    if (batchLen >= batchBytes) flush();
    else if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flush);
    }
  };

  const in$ = new Observable<Decoded>((sub) => {
    const splitter = new LineSplitter(o.maxMessageBytes);
    const emit = (e: LineEvent) => {
      pending++;
      sub.next('line' in e ? decode(e.line) : oversized(e.oversized, o.maxMessageBytes, readEnvelopeHead(e.head)));
      if (pending >= highWater && !input.isPaused()) input.pause();
    };
    const onData = (chunk: Buffer | string) => splitter.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk, emit);
    const onEnd = () => {
      splitter.end(emit);
      sub.complete();
    };
    const onError = () => sub.complete();
    input.on('data', onData);
    input.once('end', onEnd);
    input.once('error', onError);
    return () => {
      input.off('data', onData);
      input.off('end', onEnd);
      input.off('error', onError);
    };
  });

  return new Promise<void>((resolve, reject) => {
    conn.handle(in$).subscribe({
      next: send,
      error: reject,
      complete: () => {
        flush();
        // Resolve once the last write has left the process.
        output.write('', () => resolve());
      },
    });
  });
}
