import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { paired } from '../lib/paired.js';
import { runJson } from '../lib/proc.js';
import { median } from '../lib/stats.js';
import { requestLines, sessionIds, validateBody, writeFixtures } from '../lib/workload.js';

export const row = {
  id: 2,
  what: 'validate_session over stdio, memory store, 1,000 sessions',
  unit: 'msgs/s',
  baselineWhat: 'bare Node JSON-lines echo (one JSON.parse per line, the lines written back, one write per chunk)',
  target: { on: 'ratio', op: '>=', limit: 0.5 },

  async run(ctx) {
    const lines = ctx.quick ? 100_000 : 500_000;
    const warm = ctx.quick ? 10_000 : 20_000;
    const ids = sessionIds(1000);
    const fixtures = writeFixtures(ctx.tmp, 'row2-fixtures.json', ids);
    const file = join(ctx.tmp, 'row2-lines.jsonl');
    writeFileSync(file, requestLines(warm + lines, validateBody, ids).join(''));
    const drive = (cmd, args, expect) => () =>
      runJson('node', [ctx.gen('stdio-drive.js'), JSON.stringify({ cmd, args, env: ctx.gatewayEnv(), file, lines: warm + lines, warm, expect })]).then((r) => {
        if (r.matched !== r.msgs) throw new Error(`row 2: ${r.msgs - r.matched} replies were not ${expect}`);
        return { value: r.rate, seconds: r.seconds, genCpu: r.genCpu };
      });
    const res = await paired(
      ctx.runs,
      drive('node', [ctx.cli, 'stdio', '--fixtures', fixtures], '"type":"session_valid"'),
      drive('node', [ctx.target('jsonl-echo.js')], '"type":"validate_session"'),
      ctx.log,
    );
    ctx.shared.row2 = res;
    ctx.log('  the echo that builds and stringifies each reply:');
    const built = [];
    for (let i = 0; i < Math.min(3, ctx.runs); i++)
      built.push((await drive('node', [ctx.target('jsonl-echo.js'), 'build'], '"type":"validate_session"')()).value);
    const echoBuilt = median(built);
    // What no gateway can do without (bench/targets/jsonl-floor.js): its ratio to the echo is
    // the most any structure could reach, the gateway's ratio to it what the structure costs.
    ctx.log('  the floor (decode, SHA-256, a Map, encode; no pipeline):');
    const floors = [];
    for (let i = 0; i < Math.min(3, ctx.runs); i++)
      floors.push((await drive('node', [ctx.target('jsonl-floor.js'), fixtures], '"type":"session_valid"')()).value);
    const floor = median(floors);
    return {
      value: res.gateway,
      baseline: res.baseline,
      note: `${lines.toLocaleString('en')} lines after ${warm.toLocaleString('en')} warm-up; built = the echo that parses each line and stringifies a reply with the ends swapped and in_reply_to set; floor = the gateway's own decode, SHA-256 and reply encoder over a plain Map, with the echo's line handling and nothing else`,
      extra: {
        built: Math.round(echoBuilt),
        ratio_to_built: +(res.gateway / echoBuilt).toFixed(3),
        floor: Math.round(floor),
        ratio_to_floor: +(res.gateway / floor).toFixed(3),
        floor_to_baseline: +(floor / res.baseline).toFixed(3),
      },
    };
  },
};
