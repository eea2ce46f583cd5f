import { hashSecret } from '../crypto.js';
import { tokenKeys as keys } from './store-keys.js';
import type { TokenOptions } from './types.js';

/** Claim that binds tokens to a session; the gateway sets it itself. */
export const BINDING_CLAIM = 'sid_hash';

/**
 * Tokens bound to a session (exchange_session): a marker per live session, and an index of
 * the refresh families issued under it, so that the session's end revokes them at once.
 */
export class SessionBinding {
  readonly #o: TokenOptions;
  readonly #revokeFamily: (fam: string, why: string, byTime: boolean) => Promise<void>;

  constructor(o: TokenOptions, revokeFamily: (fam: string, why: string, byTime: boolean) => Promise<void>) {
    this.#o = o;
    this.#revokeFamily = revokeFamily;
  }

  /** The binding claim for a session: a hash of its store hash, never the id itself. */
  bindingFor(sessionHash: string): string {
    return hashSecret(`binding:${sessionHash}`);
  }

  /**
   * Marks a session as live for its bound tokens for `ttlMs` (its absolute end); the marker
   * holds the store hash so that verification can ask whether the session is still live.
   */
  async bind(sessionHash: string, ttlMs: number): Promise<string> {
    const claim = this.bindingFor(sessionHash);
    await this.#o.store.set(keys.binding(claim), sessionHash, Math.max(1, ttlMs));
    return claim;
  }

  /**
   * The session's end moved (extend_session): its marker, where there is one, lives until the
   * new end. Atomic: nothing is written for a session that has no marker (never exchanged, or ended).
   */
  async extend(sessionHash: string, endMs: number): Promise<void> {
    await this.#o.store.swap(keys.binding(this.bindingFor(sessionHash)), sessionHash, endMs);
  }

  /** Records a refresh family issued under a binding claim, until its refresh tokens expire. */
  async track(claim: string, fam: string): Promise<void> {
    // So that the session's end can revoke the family at once (RFC 9700 section 4.14).
    await this.#o.store.indexAdd(keys.boundFamilies(claim), fam, this.#o.clock.now() + this.#o.refreshTtl * 1000);
  }

  /** The refresh families recorded under a binding claim. */
  families(claim: string): Promise<string[]> {
    return this.#o.store.indexMembers(keys.boundFamilies(claim), this.#o.clock.now());
  }

  /** Forgets a family recorded under a binding claim (it was revoked). */
  untrack(claim: string, fam: string): Promise<void> {
    return this.#o.store.indexRemove(keys.boundFamilies(claim), fam);
  }

  /** True while the session a binding claim stands for is live. */
  async isLive(claim: string): Promise<boolean> {
    const marker = await this.#o.store.get<string | 1>(keys.binding(claim));
    if (marker === undefined) return false;
    // The marker holds the session's store hash: ask the sessions, which know the idle timeout.
    if (typeof marker === 'string' && this.#o.sessionLive) return this.#o.sessionLive(marker);
    return true;
  }

  /** The session ended: its bound access tokens are refused and its refresh families are revoked now. */
  async sessionEnded(sessionHash: string, byTime: boolean): Promise<void> {
    const claim = this.bindingFor(sessionHash);
    const had = await this.#o.store.delete(keys.binding(claim));
    // The index is read even without a marker: the marker may have expired with the session.
    const index = keys.boundFamilies(claim);
    const families = await this.#o.store.indexMembers(index, this.#o.clock.now());
    for (const fam of families) {
      await this.#revokeFamily(fam, byTime ? 'bound session ran out' : 'bound session ended', byTime);
      await this.#o.store.indexRemove(index, fam);
    }
    if (!had && families.length === 0) return;
    this.#o.log.info({ event: 'bound tokens revoked', session: this.#o.logRef(sessionHash), families: families.length }, 'bound tokens revoked');
  }
}
