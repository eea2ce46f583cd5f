import type { Clock } from '../../clock.js';
import { TokenBuckets, type BucketRate } from './rate-limit.js';

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

/** The limits every browser connection of one server shares, with their refusal texts. */
export class FrameLimits {
  readonly o: FrameBudgetOptions;
  /** The rates of a budget's buckets, by index: MESSAGES, BYTES, MALFORMED. */
  readonly rates: readonly BucketRate[];
  readonly messageText: string;
  readonly bytesText: string;

  constructor(o: FrameBudgetOptions) {
    this.o = o;
    this.rates = [
      { rate: o.messagesPerSecond, perMs: 1000 },
      { rate: o.bytesPerSecond, perMs: 1000 },
      { rate: o.malformedPerMinute, perMs: 60_000 },
    ];
    // Made once per server, not per connection: each would be a string held for its life.
    this.messageText = `Rate limited: at most ${o.messagesPerSecond} messages a second`;
    this.bytesText = `Rate limited: at most ${o.bytesPerSecond} bytes a second`;
  }
}

/**
 * What a browser connection's frames cost, charged by the transport before anything is parsed,
 * so that no frame (malformed, oversized, deeply nested) is handled for free: its bytes first
 * (a connection in debt gets its frames refused unparsed), then one message, then, if it failed
 * to decode, one strike of the malformed allowance, whose exhaustion closes the connection.
 */
export class FrameBudget extends TokenBuckets {
  readonly #limits: FrameLimits;

  constructor(limits: FrameLimits) {
    super(limits.rates, limits.o.clock);
    this.#limits = limits;
  }

  /** The refusal of a message over the message rate. */
  get messageText(): string {
    return this.#limits.messageText;
  }

  /** The refusal of a frame over the byte rate. */
  get bytesText(): string {
    return this.#limits.bytesText;
  }

  /** Charges a frame's bytes; false when the connection was already over its byte rate. */
  bytes(n: number): boolean {
    return this.spend(BYTES, n);
  }

  /** Charges one message; false when over the message rate. */
  message(): boolean {
    return this.take(MESSAGES);
  }

  /** Counts a frame that did not decode; false once the allowance is spent (close with 1008). */
  malformed(): boolean {
    return this.take(MALFORMED);
  }
}
