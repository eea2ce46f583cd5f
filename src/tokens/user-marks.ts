import { hashSecret } from '../crypto.js';
import { maxTokenLifetime } from './claims.js';
import { tokenKeys as keys } from './store-keys.js';
import type { TokenOptions } from './types.js';

/** Users whose mark this node keeps in memory; past it the oldest entry goes. */
export const MAX_CACHED_USERS = 100_000;
/**
 * And the characters of their user ids, together: a `sub` may be thousands of characters long,
 * so a bound on the count alone would let the cache reach hundreds of MB.
 */
export const MAX_CACHED_CHARS = 4_000_000;

/**
 * Per-user "not before" marks (revoke_user_tokens): an access token of user U with `iat` at
 * or before U's mark is refused. The marks are kept in the store as an index whose members
 * only grow (two racing revocations keep the later), each living as long as a token it
 * refuses could; each node caches them per user, and forgets a user's entry when another
 * node announces a revocation for that user (or everything, after a lost event channel).
 */
export class UserMarks {
  readonly #o: TokenOptions;
  /** user id -> mark in unix seconds (0: none) */
  readonly #cache = new Map<string, number>();
  /** hash of the user id, as events name it -> user id */
  readonly #byHash = new Map<string, string>();
  /** Raised by every invalidation: a load that started before one does not fill the cache. */
  #epoch = 0;
  /** Characters of the user ids cached. */
  #chars = 0;

  constructor(o: TokenOptions) {
    this.#o = o;
  }

  /** What events and the store's logs name a user by. */
  static userHash(userId: string): string {
    return hashSecret(`user:${userId}`);
  }

  /** The user's mark from the cache (unix seconds, 0: none), or undefined when not cached. */
  cached(userId: string): number | undefined {
    return this.#cache.get(userId);
  }

  /** The user's mark, from the store (fails closed: a store error rejects). */
  async load(userId: string): Promise<number> {
    const epoch = this.#epoch;
    const members = await this.#o.store.indexMembers(keys.userNotBefore(userId), this.#o.clock.now());
    let mark = 0;
    for (const m of members) mark = Math.max(mark, Number(m) || 0);
    if (epoch === this.#epoch) this.#put(userId, mark);
    return mark;
  }

  /** The user's mark, cached or loaded. */
  get(userId: string): number | Promise<number> {
    return this.#cache.get(userId) ?? this.load(userId);
  }

  /**
   * Records a mark in the store and drops this node's cached one. Resolves with the mark in
   * force: `before`, or a later mark the user already had (an earlier `before` refuses nothing more).
   */
  async revoke(userId: string, before: number): Promise<number> {
    // Kept while a token issued at `before` could still be used: an access token until its exp
    // (the longest lifetime verification accepts, maxTokenLifetime), a refresh token until it
    // expires. A family started on another node while the revocation listed the user's families
    // is stopped by this mark alone, at its next rotation, however late that comes.
    const until = (before + maxTokenLifetime(this.#o) + 1) * 1000;
    const index = keys.userNotBefore(userId);
    if (until > this.#o.clock.now()) await this.#o.store.indexAdd(index, String(before), until);
    let inForce = before;
    for (const m of await this.#o.store.indexMembers(index, this.#o.clock.now())) {
      const mark = Number(m) || 0;
      // A higher mark refuses all that a lower one does, and outlives it: the lower ones go, so a
      // user revoked again and again keeps a member or two, not one per call for weeks.
      if (mark < before) await this.#o.store.indexRemove(index, m);
      inForce = Math.max(inForce, mark);
    }
    this.forget(UserMarks.userHash(userId));
    this.#epoch++;
    this.#drop(userId);
    return inForce;
  }

  /** Another node revoked tokens of the user with this hash. */
  forget(userHash: string): void {
    this.#epoch++;
    const userId = this.#byHash.get(userHash);
    if (userId === undefined) return;
    this.#drop(userId);
  }

  /** Events may have been missed: nothing cached can be trusted. */
  forgetAll(): void {
    this.#epoch++;
    this.#cache.clear();
    this.#byHash.clear();
    this.#chars = 0;
  }

  /** Users cached, and the characters of their ids (for tests). */
  get size(): { users: number; chars: number } {
    return { users: this.#cache.size, chars: this.#chars };
  }

  #put(userId: string, mark: number): void {
    if (this.#cache.has(userId)) {
      this.#cache.set(userId, mark);
      return;
    }
    // A user id longer than the whole budget is not cached: it is read from the store each time.
    if (userId.length > MAX_CACHED_CHARS) return;
    while (this.#cache.size > 0 && (this.#cache.size >= MAX_CACHED_USERS || this.#chars + userId.length > MAX_CACHED_CHARS))
      this.#drop(this.#cache.keys().next().value as string);
    this.#cache.set(userId, mark);
    this.#chars += userId.length;
    this.#byHash.set(UserMarks.userHash(userId), userId);
  }

  /** Forgets one user's cached mark. */
  #drop(userId: string): void {
    if (!this.#cache.delete(userId)) return;
    this.#chars -= userId.length;
    this.#byHash.delete(UserMarks.userHash(userId));
  }
}
