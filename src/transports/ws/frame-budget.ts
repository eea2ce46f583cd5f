import type { Clock } from '../../clock.js';
import { TokenBucket } from './rate-limit.js';

export interface FrameBudgetOptions {
  /** Messages a second (`GATEWAY_RATE_LIMIT`). */
  messagesPerSecond: number;
  /** Bytes of frames a second (`GATEWAY_RATE_LIMIT_BYTES`). */
  bytesPerSecond: number;
  /** Frames that fail to decode a minute before the connection is closed (`GATEWAY_MALFORMED_LIMIT`). */
  malformedPerMinute: number;
  clock: Clock;
}

/** The limits every browser connection of one server shares, with their refusal texts. */
export class FrameLimits {
  readonly o: FrameBudgetOptions;
  readonly messageText: string;
  readonly bytesText: string;

  constructor(o: FrameBudgetOptions) {
    this.o = o;
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
export class FrameBudget {
  readonly #limits: FrameLimits;
  readonly #messages: TokenBucket;
  readonly #bytes: TokenBucket;
  readonly #malformed: TokenBucket;

  constructor(limits: FrameLimits) {
    const o = limits.o;
    this.#limits = limits;
    this.#messages = new TokenBucket(o.messagesPerSecond, o.clock);
    this.#bytes = new TokenBucket(o.bytesPerSecond, o.clock);
    this.#malformed = new TokenBucket(o.malformedPerMinute, o.clock, 60_000);
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
    return this.#bytes.spend(n);
  }

  /** Charges one message; false when over the message rate. */
  message(): boolean {
    return this.#messages.take();
  }

  /** Counts a frame that did not decode; false once the allowance is spent (close with 1008). */
  malformed(): boolean {
    return this.#malformed.take();
  }
}
