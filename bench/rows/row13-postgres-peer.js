import { sharedPostgres } from '../lib/postgres.js';
import { sessionCheckRow } from './row5-redis-peer.js';

export const row = {
  id: 13,
  what: 'session check per request, 100 clients one in flight each, PostgreSQL store',
  unit: 'req/s',
  baselineWhat: 'express 5 + express-session + connect-pg-simple 10, HTTP with the cookie, autocannon',
  target: { on: 'ratio', op: '>=', limit: 5 },

  async run(ctx) {
    const postgres = await sharedPostgres(ctx);
    const res = await sessionCheckRow(ctx, {
      name: 'row13',
      gatewayStore: `${postgres.url}?schema=bench_row13`,
      peer: 'express-peer.js',
      peerStore: postgres.url,
      loadStore: { postgres: postgres.url },
    });
    return {
      ...res,
      note: 'as row 5 on PostgreSQL: the gateway in its own schema, the peer in public.session (connect-pg-simple), on the same server',
    };
  },
};
