import type { Subscriber, Subscription } from 'rxjs';
// The class's own module (an export of rxjs): the 'rxjs' index loads every operator, some 200
// modules, on the start of each process.
import { Observable } from 'rxjs/internal/Observable';
import type { Decoded } from '../protocol/decode.js';
import { encode } from '../protocol/replies.js';
import { isReply, type GatewayConnection, type Outbound, type PushSink } from './connection.js';

/**
 * The neutral connection contract: what a transport hands the pump. A transport maps its
 * native events onto `Pump.receive` / `Pump.end` and its native output onto this.
 */
export interface Wire {
  /** Sends one encoded message; the transport may hold it until `flush`. */
  write(text: string, message: Outbound): void;
  /** The end of a burst: sends whatever `write` held. */
  flush(): void;
  /** Stop reading from the peer. */
  pause(): void;
  /** Read from the peer again. */
  resume(): void;
  /** The pipeline failed (a bug): `done` rejects too. */
  failed?(err: unknown): void;
}

export interface PumpOptions {
  /** Reading pauses while this many requests await their replies, and resumes at half. */
  highWaterMark: number;
  /** A burst is flushed as soon as it holds this many characters (default 64 KiB). */
  batchBytes?: number;
  /**
   * Runs the end-of-burst flush later (`process.nextTick`, `setImmediate`): replies made in one
   * burst then leave in one write instead of a syscall each.
   */
  schedule: (fn: () => void) => void;
}

const BATCH_BYTES = 64 * 1024;

/**
 * Everything a transport needs between its wire and a GatewayConnection: the pending count,
 * back-pressure on reading (too many requests in flight, or output blocked), which outbound
 * messages are replies, and write batching. One per connection.
 *
 * @example
 * const pump = new Pump(gateway.connect(), wire, { highWaterMark: 64, schedule: setImmediate });
 * socket.on('message', (text) => pump.receive(decode(text)));
 * socket.on('end', () => pump.end());
 * await pump.done;
 */
export class Pump implements PushSink {
  readonly #conn: GatewayConnection;
  readonly #wire: Wire;
  readonly #highWater: number;
  readonly #batchBytes: number;
  readonly #schedule: (fn: () => void) => void;
  /** The request pipeline: subscribed at the first message read (see `#start`). */
  #subscription: Subscription | undefined;
  #input: Subscriber<Decoded> | undefined;
  #pending = 0;
  #reading = true;
  #paused = false;
  #blocked = false;
  #held = 0;
  #flushQueued = false;
  #settled = false;
  #failure: { err: unknown } | undefined;
  #done: Promise<void> | undefined;
  #resolve: (() => void) | undefined;
  #reject: ((err: unknown) => void) | undefined;

  constructor(conn: GatewayConnection, wire: Wire, o: PumpOptions) {
    this.#conn = conn;
    this.#wire = wire;
    this.#highWater = o.highWaterMark;
    this.#batchBytes = o.batchBytes ?? BATCH_BYTES;
    this.#schedule = o.schedule;
    // Pushes come through `listen` for the pump's whole life. The request pipeline is built at
    // the first message: a connection that only receives pushes (a browser waiting for its
    // session's end) holds no subscriptions, no promise.
    conn.listen(this);
  }

  /** Resolves once the pipeline has answered everything read and the last burst is flushed (or `stop`); rejects if the pipeline fails. */
  get done(): Promise<void> {
    return (this.#done ??= new Promise<void>((resolve, reject) => {
      if (this.#settled) return this.#failure === undefined ? resolve() : reject(this.#failure.err);
      this.#resolve = resolve;
      this.#reject = reject;
    }));
  }

  /** PushSink: a push of the connection (before the pipeline is built, or through it). */
  next(m: Outbound): void {
    this.#send(m);
  }

  /** Requests read and not yet answered. */
  get pending(): number {
    return this.#pending;
  }

  /** False once `end` was called: whatever arrives later is ignored. */
  get reading(): boolean {
    return this.#reading;
  }

  /** One message read from the peer; ignored after `end`. */
  receive(d: Decoded): void {
    if (!this.#reading) return;
    if (this.#subscription === undefined) this.#start();
    if (this.#input === undefined) return;
    this.#pending++;
    this.#input.next(d);
    if (this.#pending >= this.#highWater) this.#pause();
  }

  /** No more input: what was read is answered, then `done` resolves. */
  end(): void {
    if (!this.#reading) return;
    this.#reading = false;
    if (this.#subscription !== undefined) return this.#input?.complete();
    // Nothing was read: nothing to answer.
    this.#conn.close();
    this.#flush();
    this.#settle();
  }

  /** The peer's output buffer is full: stop reading until `unblocked`. */
  blocked(): void {
    this.#blocked = true;
    this.#pause();
  }

  /** The peer's output buffer drained. */
  unblocked(): void {
    this.#blocked = false;
    this.#resumeIfCalm();
  }

  /** The peer is gone: drops the pipeline, closes the connection (its follows end) and resolves `done`. */
  stop(): void {
    this.#reading = false;
    this.#subscription?.unsubscribe();
    this.#conn.close();
    this.#settle();
  }

  #start(): void {
    const in$ = new Observable<Decoded>((sub) => {
      this.#input = sub;
    });
    this.#subscription = this.#conn.requests(in$).subscribe({
      next: (m) => this.#send(m),
      error: (err: unknown) => this.#settle(err),
      complete: () => {
        this.#conn.close();
        this.#flush();
        this.#settle();
      },
    });
  }

  #settle(err?: unknown): void {
    if (this.#settled) return;
    this.#settled = true;
    if (err === undefined) return this.#resolve?.();
    this.#failure = { err };
    this.#wire.failed?.(err);
    this.#reject?.(err);
  }

  #pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.#wire.pause();
  }

  #resumeIfCalm(): void {
    if (!this.#paused || this.#blocked || !this.#reading || this.#pending > this.#highWater / 2) return;
    this.#paused = false;
    this.#wire.resume();
  }

  #send(m: Outbound): void {
    // Pushes come unasked; only a reply settles a request.
    if (isReply(m)) {
      this.#pending--;
      this.#resumeIfCalm();
    }
    const text = encode(m);
    this.#wire.write(text, m);
    this.#held += text.length;
    if (this.#held >= this.#batchBytes) this.#flush();
    else if (!this.#flushQueued) {
      this.#flushQueued = true;
      this.#schedule(() => {
        this.#flushQueued = false;
        this.#flush();
      });
    }
  }

  #flush(): void {
    if (this.#held === 0) return;
    this.#held = 0;
    this.#wire.flush();
  }
}
