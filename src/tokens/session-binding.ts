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
   * Marks a session's tokens as live until `endMs` (ms, its absolute end); returns the binding
   * claim. The marker is an index holding the session's store hash (so that verification asks
   * whether the session is live, idle timeout included) whose expiry only ever moves later
   * (Store.indexAdd keeps the later one): an exchange that read the end before an extend moved
   * it writes an earlier end than the extend's, and must not shorten the marker, even when
   * nothing after it is written (its node died, the store went away).
   */
  async bind(sessionHash: string, endMs: number): Promise<string> {
    const claim = this.bindingFor(sessionHash);
    await this.#o.store.indexAdd(keys.binding(claim), sessionHash, endMs);
    return claim;
  }

  /**
   * The session's end moves to `endMs` (extend_session, before the record is written): its
   * tokens live until then. Writes the marker also where none is yet (the session was never
   * exchanged), so that an exchange racing the extend finds the later end whatever order
   * their writes land in; one left for a session that ends meanwhile is harmless (`isLive`
   * asks the session) and expires at `endMs`.
   */
  async extend(sessionHash: string, endMs: number): Promise<void> {
    await this.#o.store.indexAdd(keys.binding(this.bindingFor(sessionHash)), sessionHash, endMs);
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
    return (await this.liveUntil(claim)) !== undefined;
  }

  /**
   * While the session a binding claim stands for is live, when it ends as of now (ms; an
   * extend or, with an idle timeout, its activity may move it later); Infinity when no
   * session service was given to ask; undefined once it is not live.
   */
  async liveUntil(claim: string): Promise<number | undefined> {
    const [sessionHash] = await this.#o.store.indexMembers(keys.binding(claim), this.#o.clock.now());
    // The session's store hash: ask the sessions, which know the idle timeout.
    if (sessionHash !== undefined) return this.#o.sessionEnd ? this.#o.sessionEnd(sessionHash) : Infinity;
    // A marker of an earlier version: one value, holding the store hash too.
    const marker = await this.#o.store.get<string | 1>(keys.legacyBinding(claim));
    if (marker === undefined) return undefined;
    if (typeof marker === 'string' && this.#o.sessionEnd) return this.#o.sessionEnd(marker);
    return Infinity;
  }

  /** The session ended: its bound access tokens are refused and its refresh families are revoked now. */
  async sessionEnded(sessionHash: string, byTime: boolean): Promise<void> {
    const claim = this.bindingFor(sessionHash);
    // A marker of an earlier version is left to its expiry: it holds the store hash, which
    // isLive finds ended, and the families revoked below have their access tokens denied.
    await this.#o.store.indexRemove(keys.binding(claim), sessionHash);
    // The index is read whatever the marker was: it may have expired with the session.
    const index = keys.boundFamilies(claim);
    const families = await this.#o.store.indexMembers(index, this.#o.clock.now());
    for (const fam of families) {
      await this.#revokeFamily(fam, byTime ? 'bound session ran out' : 'bound session ended', byTime);
      await this.#o.store.indexRemove(index, fam);
    }
    // An extend writes a marker for a session never exchanged: only revoked families are told.
    if (families.length === 0) return;
    this.#o.log.info({ event: 'bound tokens revoked', session: this.#o.logRef(sessionHash), families: families.length }, 'bound tokens revoked');
  }
}
