import type { Clock } from '../../clock.js';
import { TokenBucketTable } from './rate-limit.js';

export interface FrameBudgetOptions {
  /** Messages a second (`GATEWAY_RATE_LIMIT`). */
  messagesPerSecond: number;
  /** Bytes of frames a second (`GATEWAY_RATE_LIMIT_BYTES`). */
  bytesPerSecond: number;
  /** Frames that fail to decode a minute before the connection is closed (`GATEWAY_MALFORMED_LIMIT`). */
  malformedPerMinute: number;
  clock: Clock;
}

const MESSAGES = 0;
const BYTES = 1;
const MALFORMED = 2;
const REFUSED = 3;
/** Refusals for the rate a connection may take in a burst, in seconds of its message rate (refilled at that rate). */
const REFUSAL_SECONDS = 10;

/**
 * What browser connections' frames cost, charged by the transport before anything is parsed,
 * so that no frame (malformed, oversized, deeply nested) is handled for free: its bytes first
 * (a connection in debt gets its frames refused unparsed), then one message, then, if it failed
 * to decode, one strike of the malformed allowance, whose exhaustion closes the connection. A
 * frame refused for the rate is answered from its head, unparsed, and takes one of the refusal
 * allowance (ten seconds of the message rate, refilled at the rate): a flood answered refusal
 * by refusal costs at most that, then the connection is closed.
 *
 * One object per server; each connection holds the number of its row (`open` at its first
 * frame, `release` when it closes), not an object of its own.
 */
export class FrameBudgets {
  readonly #table: TokenBucketTable;
  /** Made once per server, not per connection: each would be a string held for its life. */
  readonly messageText: string;
  readonly bytesText: string;

  constructor(o: FrameBudgetOptions) {
    this.#table = new TokenBucketTable(
      [
        { rate: o.messagesPerSecond, perMs: 1000 },
        { rate: o.bytesPerSecond, perMs: 1000 },
        { rate: o.malformedPerMinute, perMs: 60_000 },
        { rate: REFUSAL_SECONDS * o.messagesPerSecond, perMs: REFUSAL_SECONDS * 1000 },
      ],
      o.clock,
    );
    this.messageText = `Rate limited: at most ${o.messagesPerSecond} messages a second`;
    this.bytesText = `Rate limited: at most ${o.bytesPerSecond} bytes a second`;
  }

  /** Connections holding a budget now. */
  get size(): number {
    return this.#table.size;
  }

  /** A full budget for a connection's first frame; its row number. */
  open(): number {
    return this.#table.open();
  }

  /** The connection closed: its row is free again. */
  release(row: number): void {
    this.#table.release(row);
  }

  /** Charges a frame's bytes; false when the connection was already over its byte rate. */
  bytes(row: number, n: number): boolean {
    return this.#table.spend(row, BYTES, n);
  }

  /** Charges one message; false when over the message rate. */
  message(row: number): boolean {
    return this.#table.take(row, MESSAGES);
  }

  /** Counts a frame that did not decode; false once the allowance is spent (close with 1008). */
  malformed(row: number): boolean {
    return this.#table.take(row, MALFORMED);
  }

  /** Counts a frame refused for the rate; false once the allowance is spent (close with 1008). */
  refused(row: number): boolean {
    return this.#table.take(row, REFUSED);
  }
}
