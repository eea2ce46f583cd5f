import { sharedRedis } from '../lib/redis.js';
import { wsValidate } from './row1-ws-validate.js';

export const row = {
  id: 4,
  what: 'validate_session over one WebSocket, 1,000 in flight, Redis store, 1,000 sessions',
  unit: 'msgs/s',
  baselineWhat: 'row 1 (the same on the memory store)',
  target: { on: 'ratio', op: '>=', limit: 0.5 },

  async run(ctx) {
    const redis = await sharedRedis(ctx);
    let row1 = ctx.shared.row1;
    if (!row1) {
      ctx.log('  (row 1 not run: measuring its gateway figure first)');
      row1 = await wsValidate(ctx, { name: 'row4-mem', baseline: false });
    }
    await redis.flush();
    const res = await wsValidate(ctx, { name: 'row4', storeEnv: { GATEWAY_STORE: redis.url }, baseline: false });
    return { value: res.gateway, baseline: row1.gateway, note: `own redis-server on port ${redis.port}, nothing persisted` };
  },
};
