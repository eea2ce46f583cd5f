import { median } from '../lib/stats.js';
import { runJson } from '../lib/proc.js';

export const row = {
  id: 8,
  what: '1,000,000 stored sessions in memory (one user each, no data): heap per session',
  unit: 'bytes',
  baselineWhat: 'heapUsed of the same process with no session',
  target: { on: 'value', op: '<=', limit: 500 },

  async run(ctx) {
    const n = ctx.quick ? 100_000 : 1_000_000;
    const runs = ctx.quick ? 1 : 2;
    const one = (count) =>
      runJson('node', ['--expose-gc', ctx.gen('session-memory.js'), JSON.stringify({ n: count, perUser: 1, secret: ctx.jwtSecret })], {
        env: ctx.gatewayEnv(),
      });
    const empty = [];
    const full = [];
    for (let i = 0; i < runs; i++) {
      const e = await one(0);
      const f = await one(n);
      if (f.storeKeys !== 2 * n) throw new Error(`row 8: store holds ${f.storeKeys} keys, expected ${2 * n}`);
      empty.push(e.heapUsed);
      full.push(f.heapUsed);
      ctx.log(
        `  run ${i + 1}/${runs}: empty ${e.heapUsed} B, ${n} sessions ${f.heapUsed} B -> ${((f.heapUsed - e.heapUsed) / n).toFixed(1)} B/session (created in ${f.createSeconds.toFixed(1)} s)`,
      );
    }
    const base = median(empty);
    return {
      runs,
      value: (median(full) - base) / n,
      baseline: base,
      ratio: null,
      note: `heapUsed after forced GCs (--expose-gc) in a child process, ${n.toLocaleString('en')} sessions through the session service (record, user index, SHA-256 key), median of ${runs}`,
    };
  },
};
