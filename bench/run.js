#!/usr/bin/env node
// `make bench`: every row side by side with its baseline, medians of several runs, a
// markdown table on stdout and bench/results/latest.json (quick mode: quick.json).
import { cpus, totalmem, release, tmpdir } from 'node:os';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { killAll } from './lib/proc.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const USAGE = 'usage: node bench/run.js [--quick] [--only 1,3,...] [--runs N]';
/** @type {{ quick?: boolean, only?: string, runs?: string, help?: boolean }} */
let values;
try {
  ({ values } = parseArgs({
    options: { quick: { type: 'boolean' }, only: { type: 'string' }, runs: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  }));
} catch (err) {
  process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n${USAGE}\n`);
  process.exit(2);
}
if (values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const quick = values.quick === true;
const only = values.only ? new Set(values.only.split(',').map(Number)) : undefined;
if (only && [...only].some((id) => !Number.isInteger(id) || id < 1)) {
  process.stderr.write(`bench: --only takes row numbers separated by commas\n${USAGE}\n`);
  process.exit(2);
}
if (values.runs !== undefined && !(Number.isInteger(Number(values.runs)) && Number(values.runs) >= 1)) {
  process.stderr.write(`bench: --runs takes a whole number of at least 1\n${USAGE}\n`);
  process.exit(2);
}

const ROWS = [
  'row1-ws-validate.js',
  'row2-stdio-validate.js',
  'row3-stdio-verify.js',
  'row4-redis-validate.js',
  'row5-redis-peer.js',
  'row6-many-connections.js',
  'row7-push-lateness.js',
  'row8-session-memory.js',
  'row9-connections.js',
  'row10-churn.js',
  'row11-stdio-cold-start.js',
  'row12-postgres-validate.js',
  'row13-postgres-peer.js',
  'row14-middleware.js',
  'row15-middleware-floor.js',
];

const machine = `${cpus()[0]?.model.trim() ?? 'unknown CPU'}, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, Linux ${release()}, Node ${process.version}`;
const tmp = mkdtempSync(join(tmpdir(), 'gw-bench-'));
const started = Date.now();
const log = (s) => process.stderr.write(`${s}\n`);

const cleanup = () => {
  killAll();
  rmSync(tmp, { recursive: true, force: true });
};
process.on('SIGINT', () => (cleanup(), process.exit(130)));
process.on('SIGTERM', () => (cleanup(), process.exit(143)));

const ctx = {
  quick,
  runs: values.runs ? Number(values.runs) : quick ? 1 : 3,
  tmp,
  root,
  cli: join(root, 'dist/cli.js'),
  dist: (p) => join(root, 'dist', p),
  gen: (f) => join(here, 'gen', f),
  target: (f) => join(here, 'targets', f),
  log,
  shared: {},
  /** @type {string | undefined} */
  jwtSecret: undefined,
  /** The gateway's environment in every row: logs at warn (no per-session info lines). */
  gatewayEnv: (extra = {}) => ({ GATEWAY_LOG_LEVEL: 'warn', GATEWAY_JWT_SECRET: ctx.jwtSecret, ...extra }),
  /** @type {(() => Promise<unknown>)[]} */
  cleanups: [],
};
ctx.jwtSecret = (await import('./lib/workload.js')).jwtSecret();

/** `met` is computed here from the measured figures, never written by hand. */
function judge(target, value, ratio) {
  if (!target) return null;
  const x = target.on === 'ratio' ? ratio : value;
  if (x === null || x === undefined || !Number.isFinite(x)) return false;
  return target.op === '>=' ? x >= target.limit : x <= target.limit;
}

const results = [];
for (const file of ROWS) {
  const { row } = await import(join(here, 'rows', file)).catch(() => ({ row: undefined }));
  if (!row || (only && !only.has(row.id))) continue;
  log(`== row ${row.id}: ${row.what}`);
  const t0 = Date.now();
  let out;
  try {
    out = await row.run(ctx);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    log(`   row ${row.id} FAILED: ${message}`);
    out = { value: null, baseline: null, note: `failed: ${message.slice(0, 200)}` };
  }
  const value = out.value;
  const baseline = out.baseline ?? null;
  const ratio = out.ratio !== undefined ? out.ratio : value !== null && baseline ? value / baseline : null;
  // A row may hold further targets on figures of its `extra`: met only when every one is.
  const checks = Object.entries(row.checks ?? {}).map(([figure, t]) => ({
    figure,
    value: round(out.extra?.[figure]),
    target: `${t.op} ${t.limit}`,
    met: judge({ on: 'value', ...t }, out.extra?.[figure], null),
  }));
  const met = judge(row.target, value, ratio);
  const r = {
    id: row.id,
    what: row.what,
    value: round(value),
    unit: row.unit,
    baseline: round(baseline),
    baseline_what: row.baselineWhat ?? null,
    ratio: ratio === null ? null : round(ratio, 3),
    target: row.target ? `${row.target.on} ${row.target.op} ${row.target.limit}` : null,
    met: met === null ? met : met && checks.every((c) => c.met),
    ...(checks.length > 0 ? { checks } : {}),
    runs: out.runs ?? ctx.runs,
    note: out.note ?? null,
    seconds: Math.round((Date.now() - t0) / 1000),
    ...(out.extra ? { extra: out.extra } : {}),
  };
  results.push(r);
  log(`   -> ${JSON.stringify(r)} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
}

function round(x, digits = 4) {
  if (x === null || x === undefined || !Number.isFinite(x)) return null;
  if (Math.abs(x) >= 1000) return Math.round(x);
  return +x.toPrecision(digits);
}

const fmt = (x) => (x === null ? '–' : typeof x === 'number' ? x.toLocaleString('en') : String(x));
const lines = [
  `Machine: ${machine}${quick ? ' (quick mode: smaller loads, not the committed figures)' : ''}`,
  '',
  '| # | what | value | baseline | ratio | target | met |',
  '|---|---|---|---|---|---|---|',
  ...results.map(
    (r) =>
      `| ${r.id} | ${r.what} | ${fmt(r.value)} ${r.unit} | ${r.baseline === null ? '–' : `${fmt(r.baseline)}${r.baseline_what ? ` (${r.baseline_what})` : ''}`} | ${fmt(r.ratio)} | ${r.target ?? '–'} | ${r.met === null ? '–' : r.met ? 'yes' : '**no**'} |`,
  ),
  '',
  ...results
    .filter((r) => r.note || r.extra || r.checks)
    .map(
      (r) =>
        `- row ${r.id}: ${[
          r.checks ? `also targets: ${r.checks.map((c) => `${c.figure} ${fmt(c.value)} (${c.target}: ${c.met ? 'met' : 'NOT met'})`).join(', ')}` : '',
          r.note,
          r.extra
            ? Object.entries(r.extra)
                .map(([k, v]) => `${k} ${fmt(v)}`)
                .join(', ')
            : '',
        ]
          .filter(Boolean)
          .join('; ')}`,
    ),
];
process.stdout.write(`${lines.join('\n')}\n`);
const outFile = join(here, 'results', quick ? 'quick.json' : 'latest.json');
if (!only) {
  mkdirSync(dirname(outFile), { recursive: true });
  writeFileSync(
    outFile,
    `${JSON.stringify({ machine, mode: quick ? 'quick' : 'full', date: new Date().toISOString(), seconds: Math.round((Date.now() - started) / 1000), rows: results }, null, 2)}\n`,
  );
  log(`wrote ${outFile}`);
} else {
  log('(--only: results file not written)');
}
for (const c of ctx.cleanups) await c();
cleanup();
log(`bench took ${((Date.now() - started) / 1000).toFixed(0)} s`);
