#!/usr/bin/env node
// `node bench/spread.js`: how each judged figure has spread over the full runs recorded in
// this repository (bench/results/latest.json at every commit that changed it, and the
// bench/results/host-*.json kept beside it), counted only where the row is defined as in the
// newest run (same baseline and target). Prints the markdown table of docs/benchmarks.md.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const RESULTS = 'bench/results';

/** @typedef {{ id: number, value?: number, ratio?: number, target?: string, baseline_what?: string, extra?: Record<string, number> }} Row */
/** @typedef {{ date?: string, mode?: string, rows?: Row[] }} Run */

/** @param {string} text @returns {Run | undefined} */
function parse(text) {
  try {
    return /** @type {Run} */ (JSON.parse(text));
  } catch {
    return undefined;
  }
}

/** Every full run, newest first, each once (a results file committed twice is one run). */
function fullRuns() {
  /** @type {Run[]} */
  const runs = [];
  const current = parse(readFileSync(join(root, RESULTS, 'latest.json'), 'utf8'));
  if (current) runs.push(current);
  const git = (/** @type {string[]} */ ...args) => execFileSync('git', ['-C', root, ...args], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  for (const rev of git('log', '--format=%H', '--', `${RESULTS}/latest.json`).split('\n').filter(Boolean)) {
    const run = parse(git('show', `${rev}:${RESULTS}/latest.json`));
    if (run) runs.push(run);
  }
  for (const name of readdirSync(join(root, RESULTS)).filter((n) => n.startsWith('host-') && n.endsWith('.json'))) {
    const run = parse(readFileSync(join(root, RESULTS, name), 'utf8'));
    if (run) runs.push(run);
  }
  const seen = new Set();
  return runs
    .filter((r) => r.mode === 'full' && r.date !== undefined && !seen.has(r.date) && seen.add(r.date))
    .sort((a, b) => String(b.date).localeCompare(String(a.date)));
}

/** @param {Run} run @param {number} id */
const rowOf = (run, id) => run.rows?.find((r) => r.id === id);

/** @type {{ figure: string, id: number, pick: (r: Row) => number | undefined, unit: string }[]} */
const FIGURES = [
  { figure: 'row 1: ratio to the corked `ws` echo', id: 1, pick: (r) => r.ratio, unit: '' },
  { figure: 'row 2: ratio to the JSON-lines echo', id: 2, pick: (r) => r.ratio, unit: '' },
  { figure: "row 3: ratio to fast-jwt's hot loop", id: 3, pick: (r) => r.ratio, unit: '' },
  { figure: 'row 4: Redis, ratio to row 1', id: 4, pick: (r) => r.ratio, unit: '' },
  { figure: 'row 6: p99 at 20,000 msgs/s over 5,000 connections', id: 6, pick: (r) => r.value, unit: ' ms' },
  { figure: 'row 7: p99 push lateness', id: 7, pick: (r) => r.value, unit: ' ms' },
  { figure: 'row 9: ends p99, one process', id: 9, pick: (r) => r.extra?.ends_p99_ms, unit: ' ms' },
  { figure: 'row 9: ends p99, five processes', id: 9, pick: (r) => r.extra?.cluster_ends_p99_ms, unit: ' ms' },
  { figure: 'row 10: p99 upgrade under churn', id: 10, pick: (r) => r.value, unit: ' ms' },
  { figure: 'row 12: PostgreSQL, ratio to row 1', id: 12, pick: (r) => r.ratio, unit: '' },
];
/** Row 9's ends are judged by a check of their own. */
const TARGETS = { 'row 9: ends p99, one process': '<= 1000', 'row 9: ends p99, five processes': '<= 1000' };

/** @param {string} target e.g. 'ratio >= 0.5', 'value <= 5', '<= 1000' @returns {(v: number) => boolean} */
function judge(target) {
  const m = /(>=|<=)\s*([\d.]+)/.exec(target);
  if (!m) throw new Error(`unreadable target: ${target}`);
  const bound = Number(m[2]);
  return m[1] === '>=' ? (v) => v >= bound : (v) => v <= bound;
}

/** @param {number} v */
const show = (v) => (v >= 1000 ? Math.round(v).toLocaleString('en-US') : v >= 10 ? String(Math.round(v * 10) / 10) : String(Math.round(v * 1000) / 1000));

const runs = fullRuns();
const newest = runs[0];
if (newest === undefined) throw new Error(`no full run in ${RESULTS}`);
const lines = ['| figure | target | last run | lowest | median | highest | full runs meeting it |', '|---|---|---|---|---|---|---|'];
for (const f of FIGURES) {
  const now = rowOf(newest, f.id);
  if (now === undefined) continue;
  const target = /** @type {Record<string, string>} */ (TARGETS)[f.figure] ?? String(now.target);
  const values = runs
    .map((run) => rowOf(run, f.id))
    .filter((r) => r !== undefined && r.baseline_what === now.baseline_what && r.target === now.target)
    .map((r) => f.pick(/** @type {Row} */ (r)))
    .filter((v) => typeof v === 'number');
  const sorted = [...values].sort((a, b) => a - b);
  const median = sorted.length % 2 ? sorted[(sorted.length - 1) / 2] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
  const met = values.filter(judge(target)).length;
  const last = f.pick(now);
  const cell = (/** @type {number | undefined} */ v) => (v === undefined ? '–' : `${show(v)}${f.unit}`);
  lines.push(
    `| ${f.figure} | ${target.replace('ratio ', '').replace('value ', '').replace('>=', '≥').replace('<=', '≤')}${f.unit} | ${cell(last)} | ${cell(sorted[0])} | ${cell(median)} | ${cell(sorted.at(-1))} | ${met} of ${values.length} |`,
  );
}
process.stdout.write(`${lines.join('\n')}\n\n${runs.length} full runs, ${runs.at(-1)?.date?.slice(0, 10)} to ${newest.date?.slice(0, 10)}.\n`);
