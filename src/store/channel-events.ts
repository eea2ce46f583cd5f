import { GatewayError } from '../errors.js';
import type { EndReason } from '../protocol/messages.js';
import type { EndedEvent, EventBus, StoreEvent } from './types.js';
import { within } from './within.js';

/** What the bus needs to send: Redis PUBLISH, or PostgreSQL NOTIFY, on the shared connection(s). */
export interface Publisher {
  publish(channel: string, message: string): Promise<unknown>;
  /**
   * Subscribers of each channel (Redis PUBSUB NUMSUB). Where the backend can count them, the
   * bus sends a burst of ends as one `ended_many` message once it knows every listener reads it.
   */
  subscribers?(channels: string[]): Promise<Record<string, number>>;
}

/** Unsent end events kept for retry; beyond it the oldest go (each is about 150 bytes). */
const MAX_UNSENT = 10_000;
const HASH = /^[A-Za-z0-9_-]{1,128}$/;
/** Hashes in one `ended_many` message at most (about 46 bytes each on the wire). */
const MAX_GROUP = 128;
/** Every EndReason; the compiler checks the list is complete. */
const REASONS: Record<EndReason, true> = { ttl: true, idle: true, destroyed: true, regenerated: true, revoked: true };

/**
 * Several ends of one node and reason, as one message on the wire. Listeners never see it:
 * the bus hands them one `ended` event per hash.
 */
export interface EndedManyMessage {
  kind: 'ended_many';
  hashes: string[];
  reason: EndReason;
  origin: string;
}

/**
 * Parses a message from another node; anything else on the channel is ignored. A node that
 * does not know `ended_many` ignores it too: the bus sends it only where every listener reads it.
 */
export function parseEvent(message: string): StoreEvent | EndedManyMessage | undefined {
  let e: unknown;
  try {
    e = JSON.parse(message);
  } catch {
    return undefined;
  }
  if (typeof e !== 'object' || e === null) return undefined;
  const { kind, hash, hashes, reason, origin, user } = e as Record<string, unknown>;
  if (typeof origin !== 'string') return undefined;
  if (kind === 'tokens_revoked') return typeof user === 'string' && HASH.test(user) ? { kind, user, origin } : undefined;
  if (kind === 'ended_many') {
    if (!Array.isArray(hashes) || hashes.length > MAX_GROUP || typeof reason !== 'string' || !Object.hasOwn(REASONS, reason)) return undefined;
    // One bad hash spoils the message: it was not written by a node.
    for (const h of hashes as unknown[]) if (typeof h !== 'string' || !HASH.test(h)) return undefined;
    return { kind, hashes: hashes as string[], reason: reason as EndReason, origin };
  }
  if (typeof hash !== 'string' || !HASH.test(hash)) return undefined;
  if (kind === 'extended' || kind === 'updated') return { kind, hash, origin };
  if (kind !== 'ended' || typeof reason !== 'string' || !Object.hasOwn(REASONS, reason)) return undefined;
  return { kind, hash, reason: reason as EndReason, origin };
}

interface PendingEnds {
  origin: string;
  reason: EndReason;
  hashes: string[];
  waiters: { resolve: () => void; reject: (err: unknown) => void }[];
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
  /** Ends published in this turn of the event loop, by origin and reason: sent together. */
  #pendingEnds = new Map<string, PendingEnds>();
  /** The last send of gathered ends: resolves once their messages are handed to the publisher. */
  #sending: Promise<void> = Promise.resolve();

  constructor(channel: string, publisher: Publisher, timeoutMs: number) {
    this.#channel = channel;
    this.#publisher = publisher;
    this.#timeoutMs = timeoutMs;
  }

  get channel(): string {
    return this.#channel;
  }

  /**
   * The channel whose subscription says "I read `ended_many`": a node listens to it along with
   * `channel`, in one SUBSCRIBE. Nothing is published on it.
   */
  get groupsChannel(): string {
    return `${this.#channel}:ended_many`;
  }

  /**
   * Rejects with UNAVAILABLE when the backend does not take it within the time limit. A
   * message that failed is kept (bounded) and sent again by `retry()`: the end it announces
   * already happened in the store, and a node that never hears of it would leave its
   * followers waiting until their own timers, or forever for a destroyed session.
   */
  publish(event: StoreEvent): Promise<void> {
    if (event.kind !== 'ended' || this.#publisher.subscribers === undefined) return this.#send(JSON.stringify(event));
    // Ends come in bursts (revoke_user_sessions ends a user's sessions together): those of one
    // turn of the event loop go out together, so every node parses one message, not one per end.
    const key = `${event.origin}\0${event.reason}`;
    let group = this.#pendingEnds.get(key);
    if (group === undefined) {
      if (this.#pendingEnds.size === 0) setImmediate(() => void this.flush());
      group = { origin: event.origin, reason: event.reason, hashes: [], waiters: [] };
      this.#pendingEnds.set(key, group);
    }
    group.hashes.push(event.hash);
    return new Promise<void>((resolve, reject) => group.waiters.push({ resolve, reject }));
  }

  /** Sends the gathered ends now, without waiting for the end of the turn (the owner calls it before closing). */
  flush(): Promise<void> {
    // A send still waiting for its count is waited for too: close must not overtake it.
    if (this.#pendingEnds.size > 0) this.#sending = Promise.all([this.#sending, this.#sendEnds()]).then(() => undefined);
    return this.#sending;
  }

  /**
   * Sends the ends gathered in one turn: as `ended_many` messages when every listener of the
   * channel also listens to `groupsChannel` (nodes that predate it would drop them), else one
   * message per end, as before. Checked on every send, after the records are gone: a node
   * that subscribes later cannot follow those sessions any more, so none misses the end.
   */
  async #sendEnds(): Promise<void> {
    const groups = [...this.#pendingEnds.values()];
    this.#pendingEnds = new Map();
    const grouped = groups.some((g) => g.hashes.length > 1) && (await this.#everyListenerReadsGroups());
    for (const g of groups) {
      const sends: Promise<void>[] = [];
      if (grouped) {
        for (let i = 0; i < g.hashes.length; i += MAX_GROUP) {
          const hashes = g.hashes.slice(i, i + MAX_GROUP);
          const message: EndedManyMessage | EndedEvent =
            hashes.length === 1
              ? { kind: 'ended', hash: hashes[0]!, reason: g.reason, origin: g.origin }
              : { kind: 'ended_many', hashes, reason: g.reason, origin: g.origin };
          sends.push(this.#send(JSON.stringify(message)));
        }
      } else {
        for (const hash of g.hashes) sends.push(this.#send(JSON.stringify({ kind: 'ended', hash, reason: g.reason, origin: g.origin } satisfies EndedEvent)));
      }
      // Each end's caller hears whether its own message went out; a failed one is kept for retry().
      Promise.all(sends).then(
        () => g.waiters.forEach((w) => w.resolve()),
        (err: unknown) => g.waiters.forEach((w) => w.reject(err)),
      );
    }
  }

  /** Fails closed: no answer, or any listener of the channel not on `groupsChannel`, means one message per end. */
  async #everyListenerReadsGroups(): Promise<boolean> {
    const count = { of: {} as Record<string, number> };
    const asked = Promise.resolve().then(() => this.#publisher.subscribers!([this.#channel, this.groupsChannel]));
    if (
      !(await within(
        asked.then((n) => (count.of = n)),
        this.#timeoutMs,
      ))
    )
      return false;
    const listeners = count.of[this.#channel] ?? 0;
    return listeners > 0 && (count.of[this.groupsChannel] ?? 0) >= listeners;
  }

  #send(message: string): Promise<void> {
    const sent = this.#publisher.publish(this.#channel, message);
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const fail = (err: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.#keep(message);
        reject(GatewayError.unavailable(err));
      };
      // As in Deadlines: given up only once the turn's sockets are read, so that an answer that
      // came in time is not failed because this process was busy.
      const timer = setTimeout(() => setImmediate(() => fail(new Error(`publish timed out after ${this.#timeoutMs} ms`))), this.#timeoutMs);
      sent.then(() => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve();
      }, fail);
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

  /** Hands a raw channel message to every listener (an `ended_many` as one `ended` per hash). */
  deliver(message: string): void {
    const event = parseEvent(message);
    if (event === undefined) return;
    if (event.kind !== 'ended_many') return this.#tell(event);
    const { hashes, reason, origin } = event;
    for (const hash of hashes) this.#tell({ kind: 'ended', hash, reason, origin });
  }

  #tell(event: StoreEvent): void {
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
