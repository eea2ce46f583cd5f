import { spawn } from 'node:child_process';
import { median } from '../lib/stats.js';

const CREATE = `${JSON.stringify({ src: 'bench', dest: 'gateway', body: { type: 'create_session', msg_id: 1, user_id: 'alice' } })}\n`;

/**
 * Milliseconds from the spawn of `node args` to its first line on stdout, `input` written to
 * its stdin at once and closed (as `echo ... | node ...` does).
 * @param {readonly string[]} args
 * @param {string} input
 * @param {Record<string, string | undefined>} env
 * @param {(line: string) => boolean} expected
 * @returns {Promise<number>}
 */
function firstLine(args, input, env, expected) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'ignore'] });
    let out = '';
    let done = false;
    child.stdout.on('data', (d) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (done || nl < 0) return;
      done = true;
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      const line = out.slice(0, nl);
      if (expected(line)) resolve(ms);
      else reject(new Error(`unexpected first line: ${line.slice(0, 200)}`));
    });
    child.once('error', reject);
    child.once('exit', (code) => {
      if (!done) reject(new Error(`${args.join(' ').slice(0, 60)} exited (${code}) without a line`));
    });
    child.stdin.end(input);
  });
}

export const row = {
  id: 11,
  what: 'stdio cold start: spawn to the reply of one create_session, memory store',
  unit: 'ms',
  baselineWhat: 'bare `node -e` printing one line',
  target: { on: 'ratio', op: '<=', limit: 2.5 },

  async run(ctx) {
    const spawns = ctx.quick ? 7 : 20;
    const env = ctx.gatewayEnv();
    const bare = () => firstLine(['-e', 'console.log(0)'], '', {}, (l) => l === '0');
    const gateway = () => firstLine([ctx.cli, 'stdio'], CREATE, env, (l) => l.includes('"type":"session_created"'));
    // One of each first, so that neither pays for a cold file cache.
    await bare();
    await gateway();
    /** @type {number[]} */
    const bareMs = [];
    /** @type {number[]} */
    const gatewayMs = [];
    // Interleaved, so that both see the same load on the machine.
    for (let i = 0; i < spawns; i++) {
      bareMs.push(await bare());
      gatewayMs.push(await gateway());
    }
    const value = median(gatewayMs);
    const baseline = median(bareMs);
    ctx.log(`   bare ${bareMs.map((x) => x.toFixed(0)).join(' ')}; gateway ${gatewayMs.map((x) => x.toFixed(0)).join(' ')}`);
    return { value, baseline, runs: spawns, note: `median of ${spawns} spawns of each, interleaved` };
  },
};
