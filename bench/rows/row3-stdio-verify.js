import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { paired } from '../lib/paired.js';
import { runJson } from '../lib/proc.js';
import { requestLines, verifyBody } from '../lib/workload.js';

const require = createRequire(import.meta.url);

/**
 * Row 3. Main figure: 1,000 hot tokens over and over, which stay in the verifier caches on
 * both sides (few users, many requests each): the best fast-jwt does. Also measured ("cold"):
 * 10,000 distinct tokens in turn, more than the caches (4,096) hold, so every verify does
 * the HMAC on both sides (many users).
 */
export const row = {
  id: 3,
  what: 'verify_token over stdio (HS256, 1,000 tokens over and over, revocation checked)',
  unit: 'msgs/s',
  baselineWhat: 'bare fast-jwt verify loop in one process, same verifier options, its cache (4,096) holding every token',
  target: { on: 'ratio', op: '>=', limit: 0.5 },

  async run(ctx) {
    const lines = ctx.quick ? 20_000 : 120_000;
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
    const hot = await measure(1_000, ctx.runs);
    const cold = await measure(10_000, Math.min(3, ctx.runs));
    return {
      value: hot.gateway,
      baseline: hot.baseline,
      note: `${lines.toLocaleString('en')} lines after ${warm.toLocaleString('en')} warm-up; cold = 10,000 distinct tokens in turn, more than the caches hold on either side (every verify does the HMAC)`,
      extra: { cold_value: Math.round(cold.gateway), cold_baseline: Math.round(cold.baseline), cold_ratio: +(cold.gateway / cold.baseline).toFixed(3) },
    };
  },
};
