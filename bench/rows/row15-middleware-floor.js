import { middlewareApps } from './row14-middleware.js';

export const row = {
  id: 15,
  what: 'row 14 against the same app with no session check at all',
  unit: 'req/s',
  baselineWhat: 'the same Express app answering whoever its cookie names, unchecked',
  target: { on: 'ratio', op: '>=', limit: 0.8 },

  async run(ctx) {
    const m = await middlewareApps(ctx);
    return {
      value: m.middleware,
      baseline: m.bare,
      runs: m.runs,
      note: 'the same measurement as row 14 (interleaved runs of the three apps); the baseline is the ceiling of the app itself',
    };
  },
};
