import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import type { EndReason } from '../protocol/messages.js';

/** How to open a store (see createStore); each backend reads what it needs. */
export interface StoreOptions {
  url: string;
  clock: Clock;
  timeoutMs: number;
  /** For connection state changes of remote backends (lost, back). */
  log?: Logger;
}

/** A session end that other nodes must tell their subscribers about. */
export interface EndedEvent {
  kind: 'ended';
  /** Store key hash of the session (never the id). */
  hash: string;
  reason: EndReason;
  /** Instance id of the node that published it (nodes skip their own). */
  origin: string;
}

/** A live session changed (extend_session, update_session): other nodes re-read it and tell their followers. */
export interface ChangedEvent {
  kind: 'extended' | 'updated';
  /** Store key hash of the session (never the id). */
  hash: string;
  origin: string;
}

/** A user's access tokens were revoked up to a time: other nodes forget their cached mark for that user. */
export interface TokensRevokedEvent {
  kind: 'tokens_revoked';
  /** Hash of the user id (user ids are never published). */
  user: string;
  origin: string;
}

export type StoreEvent = EndedEvent | ChangedEvent | TokensRevokedEvent;

/** Cross-node events. On one process it carries nothing: the local node already knows. */
export interface EventBus {
  publish(event: StoreEvent): Promise<void>;
  /** Calls `fn` for events from other nodes; returns the unsubscribe. */
  subscribe(fn: (event: StoreEvent) => void): () => void;
  /** Calls `fn` after the bus lost and regained its connection: events may have been missed. */
  onResync(fn: () => void): () => void;
}

/** See `Store.swapIf`. */
export interface SwapIfOptions {
  /** Moves the expiry to this time (ms since epoch); without it the expiry is kept. */
  expiresAt?: number;
  /** Writes only while the store's clock is before this time (ms since epoch). */
  before?: number;
}

/** See `Store.indexAdd`. */
export interface IndexAddOptions {
  /** Sets `expiresAt` even when it is earlier than the member's expiry (default: the later one is kept). */
  shorten?: boolean;
}

export interface SwapIfResult<T> {
  swapped: boolean;
  old: T | undefined;
}

/** The operations of the Store contract, as metric labels and span names. */
export type StoreOperation = 'get' | 'set' | 'delete' | 'take' | 'swap' | 'swapIf' | 'claim' | 'indexAdd' | 'indexRemove' | 'indexMembers';

/** Told how long each operation took and whether it succeeded. */
export type StoreObserver = (op: StoreOperation, seconds: number, ok: boolean) => void;

/**
 * The store contract every backend meets (test/store/contract.ts runs it on each).
 * Keys are plain strings; values are JSON-compatible. Every failure or time-out rejects
 * with GatewayError UNAVAILABLE: nothing reads as "not found" because the store was away.
 */
export interface Store {
  /** Which backend: for logs and /readyz. */
  readonly kind: 'memory' | 'redis' | 'postgres';
  get<T>(key: string): Promise<T | undefined>;
  /**
   * `get` for the hot paths: the value itself where the backend holds it in this process
   * (memory), else `get`'s Promise. Fails as `get` does (a throw or a rejection, UNAVAILABLE).
   * `at`: the caller's clock reading, by which a backend in this process judges the value's
   * expiry (so that the caller judges what it reads by the same moment, with one reading);
   * a remote backend judges by its own clock and ignores it.
   */
  read<T>(key: string, at?: number): T | undefined | Promise<T | undefined>;
  /** Stores `value` for `ttlMs` milliseconds (> 0); the backend frees it then. */
  set<T>(key: string, value: T, ttlMs: number): Promise<void>;
  /** Deletes; true when something was there. */
  delete(key: string): Promise<boolean>;
  /**
   * Atomically reads and deletes: of concurrent callers (on any node) exactly one gets the value.
   * `late` is told what a take that timed out (rejected with error 11) took once the backend
   * answers after all: a remote backend may still carry out an operation it was too slow to
   * answer in time.
   */
  take<T>(key: string, late?: (value: T | undefined) => void): Promise<T | undefined>;
  /**
   * Atomically replaces an existing value and returns the old one; writes nothing when absent.
   * Keeps its expiry, or moves it to `expiresAt` (ms since epoch) when given. `late`, as for
   * `take`: told what a swap that timed out (rejected with error 11) replaced, once the backend
   * answers after all.
   */
  swap<T>(key: string, value: T, expiresAt?: number, late?: (old: T | undefined) => void): Promise<T | undefined>;
  /**
   * Compare-and-swap: atomically writes `value` only when the stored value equals `expected`
   * (as JSON: the same text JSON.stringify gives) and, with `before` (ms since epoch), only
   * while the store's clock at the time of the write is before it. Keeps the expiry, or moves
   * it to `expiresAt` when given. `old` is what was stored when the call ran (undefined when
   * absent): `swapped` false with `old` equal to `expected` means `before` had passed.
   */
  swapIf<T>(key: string, expected: T, value: T, options?: SwapIfOptions): Promise<SwapIfResult<T>>;
  /**
   * Atomically marks `key` as used for `ttlMs` milliseconds (> 0): true for the one caller (on
   * any node) that found it free (absent or expired), false while it is held. The key then
   * reads as `value` (default `true`), the winner's: a loser's value is never written.
   */
  claim(key: string, ttlMs: number, value?: unknown): Promise<boolean>;
  /**
   * Adds `member` to the set at `key` until `expiresAt` (ms since epoch). A member already
   * there keeps the later of its expiry and `expiresAt`, atomically: of racing adds (two
   * extends of one session) the later end stays, whatever order they land in. With `shorten`
   * the expiry is set to `expiresAt` even when that is earlier.
   */
  indexAdd(key: string, member: string, expiresAt: number, options?: IndexAddOptions): Promise<void>;
  indexRemove(key: string, member: string): Promise<void>;
  /**
   * Members whose expiry is after `now`, the caller's time. Redis and PostgreSQL judge by their
   * own clock instead, the one every node shares (docs/postgres.md, "Whose clock"; docs/redis.md).
   */
  indexMembers(key: string, now: number): Promise<string[]>;
  readonly events: EventBus;
  /** False while the backend is unreachable. */
  isReady(): boolean;
  /** Number of keys held, where the backend can tell cheaply (memory: exact). */
  size(): number | undefined;
  close(): Promise<void>;
  /** Reports each operation's time (remote backends; memory answers in place). */
  observe?(observer: StoreObserver): void;
}
