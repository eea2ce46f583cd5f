import { GatewayError } from '../errors.js';
import type { EndReason } from '../protocol/messages.js';
import type { EventBus, StoreEvent } from './types.js';

/** What the bus needs to send: Redis PUBLISH, or PostgreSQL NOTIFY, on the shared connection(s). */
export interface Publisher {
  publish(channel: string, message: string): Promise<unknown>;
}

/** Unsent end events kept for retry; beyond it the oldest go (each is about 150 bytes). */
const MAX_UNSENT = 10_000;
const HASH = /^[A-Za-z0-9_-]{1,128}$/;
/** Every EndReason; the compiler checks the list is complete. */
const REASONS: Record<EndReason, true> = { ttl: true, idle: true, destroyed: true, regenerated: true, revoked: true };

/** Parses an event from another node; anything else on the channel is ignored. */
export function parseEvent(message: string): StoreEvent | undefined {
  let e: unknown;
  try {
    e = JSON.parse(message);
  } catch {
    return undefined;
  }
  if (typeof e !== 'object' || e === null) return undefined;
  const { kind, hash, reason, origin, user } = e as Record<string, unknown>;
  if (typeof origin !== 'string') return undefined;
  if (kind === 'tokens_revoked') return typeof user === 'string' && HASH.test(user) ? { kind, user, origin } : undefined;
  if (typeof hash !== 'string' || !HASH.test(hash)) return undefined;
  if (kind === 'extended' || kind === 'updated') return { kind, hash, origin };
  if (kind !== 'ended' || typeof reason !== 'string' || !Object.hasOwn(REASONS, reason)) return undefined;
  return { kind, hash, reason: reason as EndReason, origin };
}

/**
 * Cross-node events over a broadcast channel: Redis pub/sub or PostgreSQL LISTEN/NOTIFY.
 * Publishing goes through the shared command connection(s); listening needs a connection
 * of its own, which the owner keeps and hands each message to `deliver`. Both channels
 * deliver at most once and nothing while a node is cut off, so the owner calls `resync()`
 * whenever the listener (re)connects or the backend comes back: listeners then re-check
 * every followed session against the store.
 */
export class ChannelEventBus implements EventBus {
  readonly #channel: string;
  readonly #publisher: Publisher;
  readonly #listeners = new Set<(event: StoreEvent) => void>();
  readonly #resync = new Set<() => void>();
  readonly #timeoutMs: number;
  /** Messages whose publish failed, oldest first. */
  readonly #unsent = new Set<string>();
  #retrying = false;

  constructor(channel: string, publisher: Publisher, timeoutMs: number) {
    this.#channel = channel;
    this.#publisher = publisher;
    this.#timeoutMs = timeoutMs;
  }

  get channel(): string {
    return this.#channel;
  }

  /**
   * Rejects with UNAVAILABLE when the backend does not take it within the time limit. A
   * message that failed is kept (bounded) and sent again by `retry()`: the end it announces
   * already happened in the store, and a node that never hears of it would leave its
   * followers waiting until their own timers, or forever for a destroyed session.
   */
  publish(event: StoreEvent): Promise<void> {
    return this.#send(JSON.stringify(event));
  }

  #send(message: string): Promise<void> {
    const sent = this.#publisher.publish(this.#channel, message);
    return new Promise<void>((resolve, reject) => {
      const fail = (err: unknown) => {
        clearTimeout(timer);
        this.#keep(message);
        reject(GatewayError.unavailable(err));
      };
      const timer = setTimeout(() => fail(new Error(`publish timed out after ${this.#timeoutMs} ms`)), this.#timeoutMs);
      sent.then(() => (clearTimeout(timer), resolve()), fail);
    });
  }

  #keep(message: string): void {
    if (this.#unsent.has(message)) return;
    if (this.#unsent.size >= MAX_UNSENT) {
      // Oldest first: listeners re-check everything they follow on resync anyway.
      const oldest = this.#unsent.values().next().value as string;
      this.#unsent.delete(oldest);
    }
    this.#unsent.add(message);
  }

  /** Messages that failed to go out and wait for `retry()`. */
  get unsent(): number {
    return this.#unsent.size;
  }

  /** Sends again the messages that failed (the owner calls it once the backend answers again). */
  retry(): void {
    if (this.#unsent.size === 0 || this.#retrying) return;
    const batch = [...this.#unsent];
    this.#unsent.clear();
    this.#retrying = true;
    // A failure puts the message back (#send keeps it) for the next retry.
    void Promise.allSettled(batch.map((m) => this.#send(m))).finally(() => (this.#retrying = false));
  }

  subscribe(fn: (event: StoreEvent) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  onResync(fn: () => void): () => void {
    this.#resync.add(fn);
    return () => this.#resync.delete(fn);
  }

  /** Hands a raw channel message to every listener. */
  deliver(message: string): void {
    const event = parseEvent(message);
    if (event === undefined) return;
    for (const fn of this.#listeners) {
      try {
        fn(event);
      } catch {
        // One listener's failure must not starve the others; each logs its own trouble.
      }
    }
  }

  /** Events may have been missed: every listener re-checks what it follows. */
  resync(): void {
    for (const fn of this.#resync) {
      try {
        fn();
      } catch {
        // as above
      }
    }
  }
}
