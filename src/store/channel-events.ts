import { GatewayError } from '../errors.js';
import type { EndReason } from '../protocol/messages.js';
import type { EventBus, StoreEvent } from './types.js';

/** What the bus needs to send: Redis PUBLISH, or PostgreSQL NOTIFY, on the shared connection(s). */
export interface Publisher {
  publish(channel: string, message: string): Promise<unknown>;
}

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
  const { kind, hash, reason, origin } = e as Record<string, unknown>;
  if (kind !== 'ended' || typeof hash !== 'string' || !HASH.test(hash) || typeof origin !== 'string') return undefined;
  if (typeof reason !== 'string' || !Object.hasOwn(REASONS, reason)) return undefined;
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

  constructor(channel: string, publisher: Publisher, timeoutMs: number) {
    this.#channel = channel;
    this.#publisher = publisher;
    this.#timeoutMs = timeoutMs;
  }

  get channel(): string {
    return this.#channel;
  }

  /** Rejects with UNAVAILABLE when the backend does not take it within the time limit. */
  publish(event: StoreEvent): Promise<void> {
    const sent = this.#publisher.publish(this.#channel, JSON.stringify(event));
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(GatewayError.unavailable(new Error(`publish timed out after ${this.#timeoutMs} ms`))), this.#timeoutMs);
      sent.then(
        () => (clearTimeout(timer), resolve()),
        (err: unknown) => (clearTimeout(timer), reject(GatewayError.unavailable(err))),
      );
    });
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
