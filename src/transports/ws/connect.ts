import type { Readable, Writable } from 'node:stream';
import { WebSocket } from 'ws';
import { redactUrlsIn } from '../../config.js';
import { notUtf8, oversized } from '../../protocol/decode.js';
import { readEnvelopeHead } from '../../protocol/head.js';
import { encode, errorReply } from '../../protocol/replies.js';
import { HEAD_BYTES, LineSplitter, type LineEvent } from '../line-splitter.js';
import { MAX_MESSAGE_BYTES_HEADER } from './handshake.js';

export interface ConnectOptions {
  /** Sent as `Authorization: Bearer <key>`: the service role. */
  serviceKey?: string;
  /** How long to wait for the replies still owed once input has ended. */
  settleMs?: number;
  /** How long the connection and the upgrade may take before the bridge gives up (default 10 s). */
  handshakeTimeoutMs?: number;
  input?: Readable;
  output?: Writable;
  errors?: Writable;
}

/** The longest line sent: as large a frame as the bridge itself accepts. */
const MAX_LINE_BYTES = 1 << 30;

/** The `src` of the errors the bridge answers itself, when a line's own ends cannot be read. */
const BRIDGE_ID = 'connect';

/** What a refused upgrade's status means, as `connect` says it. */
const REFUSALS: Record<number, string> = {
  404: 'the gateway has no WebSocket at this URL',
  429: 'the gateway refused the connection: too many from this address, or too many wrong keys',
  503: 'the gateway is not taking connections now',
};

/** ws's error when `handshakeTimeout` passes before the upgrade is answered. */
const HANDSHAKE_TIMED_OUT = 'Opening handshake has timed out';

/**
 * Why the socket could not open, in one line naming the host (never the URL, which may hold
 * a user and password, nor the key): `err` is what ws reported before 'open'.
 */
function cannotConnect(err: Error & { code?: string }, hostPort: string, hostname: string, serviceKey: string | undefined, timeoutMs: number): string {
  if (err.message === HANDSHAKE_TIMED_OUT) return `${hostPort} did not answer the WebSocket upgrade within ${timeoutMs / 1000} s`;
  const status = /^Unexpected server response: (\d{3})$/.exec(err.message)?.[1];
  if (status !== undefined) {
    const n = Number(status);
    if (n === 401) return serviceKey ? 'the gateway refused the service key (HTTP 401)' : 'the gateway refused the connection without a service key (HTTP 401)';
    if (n === 503) return `${REFUSALS[503]!} (HTTP 503: draining)`;
    return `${REFUSALS[n] ?? 'the gateway refused the connection'} (HTTP ${n})`;
  }
  switch (err.code) {
    case 'ECONNREFUSED':
      return `nothing is listening at ${hostPort} (connection refused)`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `the host name ${hostname} does not resolve (${err.code})`;
    case 'ECONNRESET':
      return `the connection to ${hostPort} was reset (ECONNRESET)`;
    case undefined:
      return `cannot connect to ${hostPort}: ${redactUrlsIn(err.message)}`;
    default:
      return `cannot connect to ${hostPort} (${err.code})`;
  }
}

/** The `msg_id` a line's request carries, if the line is an envelope with one. */
function msgIdOf(line: string): number | undefined {
  try {
    const v = JSON.parse(line) as { body?: { msg_id?: unknown } };
    const id = v?.body?.msg_id;
    return typeof id === 'number' ? id : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Bridges lines to a running gateway: each input line goes out as one text frame, as it
 * is (split as the stdio node splits them: on `\n`, a `\r` before it dropped, blank lines
 * skipped). A line that is not UTF-8 cannot be a text frame: the bridge answers it itself,
 * with the error the stdio node gives it, rather than read it with replacement characters
 * (which would make two spellings of a user id one); nor is a line over the frame limit the
 * gateway's 101 names (`Gateway-Max-Message-Bytes`), answered with the error 12 the gateway
 * gives a frame over it, where past 16 times it the gateway would close (1009). Each frame received is
 * written as one line, pushes included. Once input ends it waits for the reply to every
 * `msg_id` it sent (at most `settleMs`), closes, and resolves with the exit code: 0, or 1
 * when the socket could not open or closed abnormally. Reads no GATEWAY_* configuration.
 */
export function bridge(url: string, o: ConnectOptions = {}): Promise<number> {
  const input = o.input ?? process.stdin;
  const output = o.output ?? process.stdout;
  const errors = o.errors ?? process.stderr;
  const settleMs = o.settleMs ?? 2000;
  // A host that takes the connection but never answers the upgrade (a stopped process, a proxy
  // holding it) would otherwise leave the bridge waiting for ever.
  const handshakeTimeoutMs = o.handshakeTimeoutMs ?? 10_000;
  return new Promise<number>((resolve) => {
    let ws: WebSocket;
    let target: URL;
    try {
      target = new URL(url);
      if (!['ws:', 'wss:', 'http:', 'https:', 'ws+unix:'].includes(target.protocol)) throw new Error('scheme');
      ws = new WebSocket(url, {
        headers: o.serviceKey ? { Authorization: `Bearer ${o.serviceKey}` } : {},
        maxPayload: 1 << 30,
        handshakeTimeout: handshakeTimeoutMs,
      });
    } catch {
      // Not repeated: it may hold a user and password.
      errors.write('connect: the URL must be ws://host:port/ or wss://host:port/\n');
      resolve(2);
      return;
    }
    const hostPort = target.host || target.pathname;
    /** Reported by ws before the socket opened (the close event follows); said once, at close. */
    let failure: (Error & { code?: string }) | undefined;
    let opened = false;
    /** msg_id -> replies still owed (a client may reuse an id) */
    const owed = new Map<number, number>();
    let owedCount = 0;
    const queue: string[] = [];
    let inputDone = false;
    let closing = false;
    let finished = false;
    let settleTimer: NodeJS.Timeout | undefined;

    /** The reader of the output went away (EPIPE): nothing more can be handed on. */
    let outputGone = false;

    const finish = (code: number) => {
      if (finished) return;
      finished = true;
      clearTimeout(settleTimer);
      stopReading();
      output.off('error', onOutputError);
      if (outputGone) return resolve(code);
      // Every line received has been handed to `output`: flush it before reporting.
      output.write('', () => resolve(code));
    };

    const closeNow = () => {
      if (closing) return;
      closing = true;
      clearTimeout(settleTimer);
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close(1000);
      const t = setTimeout(() => {
        ws.terminate();
        finish(0);
      }, 1000);
      t.unref();
    };

    // As `stdio` does: no more is read or received, the socket is closed, and the bridge ends
    // with 0 (`connect URL | head -1` got what it asked for).
    const onOutputError = () => {
      if (outputGone) return;
      outputGone = true;
      stopReading();
      // Paused for an output that will never drain: read on, so that the closing handshake completes.
      if (ws.isPaused) ws.resume();
      closeNow();
    };
    output.on('error', onOutputError);

    const maybeDone = () => {
      if (inputDone && owedCount === 0 && ws.readyState === WebSocket.OPEN) closeNow();
    };

    /** The largest frame the gateway serves, as its 101 said (none from a server that does not say). */
    let frameLimit: number | undefined;

    const sendLine = (line: string) => {
      // Past 16 times its limit the gateway would close the connection (1009), ending the bridge:
      // answered here instead, with the error 12 the gateway gives a frame over its limit.
      const bytes = frameLimit === undefined ? 0 : Buffer.byteLength(line);
      if (frameLimit !== undefined && bytes > frameLimit) {
        const d = oversized(bytes, frameLimit, readEnvelopeHead(line.slice(0, HEAD_BYTES)));
        output.write(`${encode(errorReply(d, BRIDGE_ID, d.code, d.text))}\n`);
        return;
      }
      const id = msgIdOf(line);
      if (id !== undefined) {
        owed.set(id, (owed.get(id) ?? 0) + 1);
        owedCount++;
      }
      ws.send(line);
      // Stop reading input while the socket cannot keep up.
      if (ws.bufferedAmount > 4 * 1024 * 1024 && !input.isPaused()) {
        input.pause();
        const wait = () => {
          if (ws.readyState !== WebSocket.OPEN || ws.bufferedAmount <= 1024 * 1024) input.resume();
          else setTimeout(wait, 5).unref();
        };
        setTimeout(wait, 5).unref();
      }
    };

    const onLine = (e: LineEvent) => {
      if (!('line' in e)) {
        // Never sent: answered here, as the stdio node answers it.
        const d = 'oversized' in e ? oversized(e.oversized, MAX_LINE_BYTES, readEnvelopeHead(e.head)) : notUtf8(readEnvelopeHead(e.head));
        output.write(`${encode(errorReply(d, BRIDGE_ID, d.code, d.text))}\n`);
        return;
      }
      if (ws.readyState === WebSocket.OPEN) sendLine(e.line);
      else if (ws.readyState === WebSocket.CONNECTING) queue.push(e.line);
    };
    const inputEnded = () => {
      if (inputDone) return;
      inputDone = true;
      if (ws.readyState !== WebSocket.OPEN) return;
      settleTimer = setTimeout(closeNow, settleMs);
      settleTimer.unref();
      maybeDone();
    };
    const splitter = new LineSplitter(MAX_LINE_BYTES);
    const onData = (chunk: Buffer | string) => splitter.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk, onLine);
    const onEnd = () => {
      splitter.end(onLine);
      inputEnded();
    };
    const stopReading = () => {
      input.off('data', onData);
      input.off('end', onEnd);
      input.off('error', inputEnded);
      input.pause();
    };
    input.on('data', onData);
    input.once('end', onEnd);
    input.once('error', inputEnded);

    ws.on('upgrade', (res) => {
      const said = Number(res.headers[MAX_MESSAGE_BYTES_HEADER.toLowerCase()]);
      if (Number.isSafeInteger(said) && said > 0) frameLimit = said;
    });
    ws.on('open', () => {
      opened = true;
      for (const line of queue.splice(0)) sendLine(line);
      if (inputDone) {
        settleTimer = setTimeout(closeNow, settleMs);
        settleTimer.unref();
        maybeDone();
      }
    });
    ws.on('message', (data, isBinary) => {
      if (outputGone) return;
      const text = isBinary ? Buffer.from(data as Buffer).toString('base64') : data.toString();
      if (!output.write(`${text}\n`) && !ws.isPaused) {
        ws.pause();
        output.once('drain', () => ws.resume());
      }
      if (isBinary) return;
      let reply: number | undefined;
      try {
        const v = JSON.parse(text) as { body?: { in_reply_to?: unknown } };
        reply = typeof v?.body?.in_reply_to === 'number' ? v.body.in_reply_to : undefined;
      } catch {
        reply = undefined;
      }
      const left = reply === undefined ? undefined : owed.get(reply);
      if (left !== undefined) {
        if (left <= 1) owed.delete(reply!);
        else owed.set(reply!, left - 1);
        owedCount--;
        maybeDone();
      }
    });
    ws.on('error', (err) => {
      // Before open: could not connect (refused, 401, 403...); after: a broken connection. The
      // close event follows, which says it in one line.
      failure ??= err;
    });
    ws.on('close', (code, reason) => {
      // We closed, or the server ended normally (1000): done. Anything else ends the bridge early.
      if (closing || code === 1000) return finish(0);
      if (!opened) {
        errors.write(
          `connect: ${cannotConnect(failure ?? new Error('the connection closed before it opened'), hostPort, target.hostname, o.serviceKey, handshakeTimeoutMs)}\n`,
        );
        return finish(1);
      }
      const why = reason.length > 0 ? `: ${reason.toString()}` : failure !== undefined ? `: ${redactUrlsIn(failure.message)}` : '';
      errors.write(`connect: connection closed with code ${code}${why}\n`);
      finish(1);
    });
  });
}

/** `auth-gateway connect URL`: the bridge on stdin/stdout; exits with its code. */
export async function connect(url: string, o: { serviceKey?: string }): Promise<void> {
  const code = await bridge(url, { serviceKey: o.serviceKey });
  process.exit(code);
}
