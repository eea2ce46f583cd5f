import type { Readable, Writable } from 'node:stream';
import type { Gateway } from '../gateway.js';
import { Pump } from '../pipeline/pump.js';
import { decode, notUtf8, oversized } from '../protocol/decode.js';
import { readEnvelopeHead } from '../protocol/head.js';
import { LineSplitter, type LineEvent } from './line-splitter.js';

export interface StdioOptions {
  maxMessageBytes: number;
  /** Pause reading while this many requests await their replies. */
  highWaterMark?: number;
  /** Flush the output once this many bytes are batched. */
  batchBytes?: number;
  /**
   * Aborted: stop reading (a line not yet ended is dropped: it was never read in full), answer
   * what was read, and resolve, as when the input ends. The CLI aborts it on SIGTERM and SIGINT.
   */
  signal?: AbortSignal;
}

/**
 * JSON lines in, JSON lines out, through the pump (src/pipeline/pump.ts): output is batched
 * per turn of the event loop, and reading pauses while the output cannot drain or too many
 * requests are in flight. Resolves once input has ended and every reply has been written.
 */
export async function runStdio(gateway: Gateway, input: Readable, output: Writable, o: StdioOptions): Promise<void> {
  let batch: string[] = [];
  let awaitingDrain = false;
  const pump = new Pump(
    gateway.connect({ logFields: { transport: 'stdio' } }),
    {
      write: (text) => batch.push(`${text}\n`),
      flush: () => {
        const data = batch.join('');
        batch = [];
        // One 'drain' listener at a time, however many writes the full buffer refuses.
        if (!output.write(data) && !awaitingDrain) {
          awaitingDrain = true;
          pump.blocked();
          output.once('drain', () => {
            awaitingDrain = false;
            pump.unblocked();
          });
        }
      },
      pause: () => input.pause(),
      resume: () => input.resume(),
    },
    { highWaterMark: o.highWaterMark ?? 4 * gateway.options.maxInFlight, batchBytes: o.batchBytes, schedule: setImmediate },
  );
  const splitter = new LineSplitter(o.maxMessageBytes);
  const emit = (e: LineEvent) =>
    pump.receive(
      'line' in e ? decode(e.line) : 'oversized' in e ? oversized(e.oversized, o.maxMessageBytes, readEnvelopeHead(e.head)) : notUtf8(readEnvelopeHead(e.head)),
    );
  const onData = (chunk: Buffer | string) => splitter.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk, emit);
  const onEnd = () => {
    splitter.end(emit);
    pump.end();
  };
  const onError = () => pump.end();
  // The reader of the output went away (EPIPE): nothing more can be answered, so nothing more
  // is read; what is left is dropped and the run ends. The listener stays: a write already
  // scheduled fails the same way.
  let outputGone = false;
  const onOutputError = (err: NodeJS.ErrnoException) => {
    if (outputGone) return;
    outputGone = true;
    gateway.log.warn({ code: err.code }, 'the output was closed by its reader: stopping');
    pump.stop();
  };
  const stopReading = () => {
    input.off('data', onData);
    input.off('end', onEnd);
    input.off('error', onError);
  };
  const onAbort = () => {
    stopReading();
    input.pause();
    pump.end();
  };
  output.on('error', onOutputError);
  input.on('data', onData);
  input.once('end', onEnd);
  input.once('error', onError);
  if (o.signal?.aborted) onAbort();
  else o.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await pump.done;
  } finally {
    stopReading();
    o.signal?.removeEventListener('abort', onAbort);
  }
  // Resolve once the last write has left the process.
  if (!outputGone) await new Promise<void>((resolve) => output.write('', () => resolve()));
}
