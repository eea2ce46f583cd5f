import { sharedPostgres } from '../lib/postgres.js';
import { wsValidate } from './row1-ws-validate.js';

export const row = {
  id: 12,
  what: 'validate_session over one WebSocket, 1,000 in flight, PostgreSQL store, 1,000 sessions',
  unit: 'msgs/s',
  baselineWhat: 'row 1 (the same on the memory store)',
  target: { on: 'ratio', op: '>=', limit: 0.3 },

  async run(ctx) {
    const postgres = await sharedPostgres(ctx);
    let row1 = ctx.shared.row1;
    if (!row1) {
      ctx.log('  (row 1 not run: measuring its gateway figure first)');
      row1 = await wsValidate(ctx, { name: 'row12-mem', baseline: false });
    }
    const res = await wsValidate(ctx, { name: 'row12', storeEnv: { GATEWAY_STORE: `${postgres.url}?schema=bench_row12` }, baseline: false });
    return { value: res.gateway, baseline: row1.gateway, note: `own PostgreSQL ${await version(postgres)} on port ${postgres.port}, fsync off` };
  },
};

async function version(postgres) {
  const [row] = await postgres.query('SHOW server_version');
  return String(row.server_version).split(' ')[0];
}
