/** Store keys of the token state; the values are hashes or random ids, never tokens. */
export const tokenKeys = {
  refresh: (hash: string) => `rt:${hash}`,
  family: (fam: string) => `rf:${fam}`,
  /** Index of the hashes of every refresh token a family issued (so a revocation can delete them). */
  familyTokens: (fam: string) => `rh:${fam}`,
  /** Index of the causes of a family's revocation: sticky, added to and never overwritten. */
  familyRevoked: (fam: string) => `rfr:${fam}`,
  /** The single-value marker of earlier versions; still honoured (see RefreshFamilies.#revokedCauses). */
  legacyFamilyRevoked: (fam: string) => `rfx:${fam}`,
  denied: (jti: string) => `jti:${jti}`,
  /** Index holding a bound session's store hash until its end (see SessionBinding.bind). */
  binding: (claim: string) => `be:${claim}`,
  /** The single-value marker of earlier versions; still honoured (see SessionBinding.isLive). */
  legacyBinding: (claim: string) => `b:${claim}`,
  boundFamilies: (claim: string) => `bf:${claim}`,
  /** Index of the refresh families started for a user (`sub`), so that revoke_user_tokens finds them. */
  userFamilies: (userId: string) => `uf:${userId}`,
  /** Index of a user's "not before" marks (revoke_user_tokens), unix seconds as members. */
  userNotBefore: (userId: string) => `unb:${userId}`,
};
