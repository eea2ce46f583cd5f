// Baseline of row 3: a bare fast-jwt verify loop in one process, with the verifier options
// the gateway uses for HS256 (required claims, time checked by the caller, cache 4096).
// Prints {msgs, seconds, rate}.
import { readFileSync } from 'node:fs';
import { createVerifier } from 'fast-jwt';

const o = JSON.parse(process.argv[2]);
const tokens = JSON.parse(readFileSync(o.tokens, 'utf8'));
const verify = createVerifier({
  key: Buffer.from(o.secret, 'utf8'),
  algorithms: ['HS256'],
  requiredClaims: ['exp', 'iat', 'jti'],
  ignoreExpiration: true,
  ignoreNotBefore: true,
  cache: 4096,
});
const loop = (n) => {
  let ok = 0;
  for (let i = 0; i < n; i++) if (verify(tokens[i % tokens.length]).jti) ok++;
  return ok;
};
loop(o.warm);
const t0 = performance.now();
const ok = loop(o.msgs);
const seconds = (performance.now() - t0) / 1000;
if (ok !== o.msgs) throw new Error('a token did not verify');
console.log(JSON.stringify({ msgs: o.msgs, seconds, rate: o.msgs / seconds }));
