/** Store keys of the token state; the values are hashes or random ids, never tokens. */
export const tokenKeys = {
  refresh: (hash: string) => `rt:${hash}`,
  family: (fam: string) => `rf:${fam}`,
  familyRevoked: (fam: string) => `rfx:${fam}`,
  denied: (jti: string) => `jti:${jti}`,
  binding: (claim: string) => `b:${claim}`,
  boundFamilies: (claim: string) => `bf:${claim}`,
};
