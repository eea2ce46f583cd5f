import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { paired } from '../lib/paired.js';
import { runJson } from '../lib/proc.js';
import { requestLines, verifyBody } from '../lib/workload.js';

const require = createRequire(import.meta.url);

/**
 * Row 3. Main figure: 10,000 distinct tokens in turn, more than the verifier cache (4,096)
 * holds, so every verify does the HMAC on both sides (many users). Also measured: 1,000 hot
 * tokens that stay in the cache on both sides (few users, many requests each).
 */
export const row = {
  id: 3,
  what: 'verify_token over stdio (HS256, 10,000 distinct tokens, revocation checked)',
  unit: 'msgs/s',
  baselineWhat: 'bare fast-jwt verify loop in one process, same verifier options (cache 4096)',
  target: { on: 'ratio', op: '>=', limit: 0.5 },

  async run(ctx) {
    const lines = ctx.quick ? 20_000 : 200_000;
    const warm = ctx.quick ? 10_000 : 20_000;
    const { createSigner } = require('fast-jwt');
    const sign = createSigner({ key: Buffer.from(ctx.jwtSecret, 'utf8'), algorithm: 'HS256' });
    const iat = Math.floor(Date.now() / 1000);
    const measure = async (count, runs) => {
      const tokens = Array.from({ length: count }, (_, i) =>
        sign({ sub: `user-${i}`, role: 'member', iat, exp: iat + 900, jti: randomBytes(16).toString('base64url') }),
      );
      const tokenFile = join(ctx.tmp, `row3-tokens-${count}.json`);
      writeFileSync(tokenFile, JSON.stringify(tokens));
      const file = join(ctx.tmp, `row3-lines-${count}.jsonl`);
      writeFileSync(file, requestLines(warm + lines, verifyBody, tokens).join(''));
      ctx.log(`  ${count.toLocaleString('en')} distinct tokens:`);
      return paired(
        runs,
        () =>
          runJson('node', [
            ctx.gen('stdio-drive.js'),
            JSON.stringify({ cmd: 'node', args: [ctx.cli, 'stdio'], env: ctx.gatewayEnv(), file, lines: warm + lines, warm, expect: '"type":"token_valid"' }),
          ]).then((r) => {
            if (r.matched !== r.msgs) throw new Error(`row 3: ${r.msgs - r.matched} replies were not token_valid`);
            return { value: r.rate, seconds: r.seconds, cpuUs: r.targetCpuUs };
          }),
        () =>
          runJson('node', [ctx.target('jwt-loop.js'), JSON.stringify({ tokens: tokenFile, secret: ctx.jwtSecret, msgs: lines, warm })]).then((r) => ({
            value: r.rate,
            seconds: r.seconds,
          })),
        ctx.log,
      );
    };
    const cold = await measure(10_000, ctx.runs);
    const hot = await measure(1_000, Math.min(3, ctx.runs));
    return {
      value: cold.gateway,
      baseline: cold.baseline,
      note: `${lines.toLocaleString('en')} lines after ${warm.toLocaleString('en')} warm-up; hot = 1,000 tokens that stay in the verifier cache on both sides`,
      extra: { hot_value: Math.round(hot.gateway), hot_baseline: Math.round(hot.baseline), hot_ratio: +(hot.gateway / hot.baseline).toFixed(3) },
    };
  },
};
