import { median } from './stats.js';

/**
 * Runs the gateway and its baseline `runs` times each, alternating (baseline first), so
 * that a noisy neighbour hurts both alike; returns the medians and the raw figures.
 */
export async function paired(runs, gatewayRun, baselineRun, log) {
  const g = [];
  const b = [];
  for (let i = 0; i < runs; i++) {
    if (baselineRun) {
      const rb = await baselineRun(i);
      b.push(rb);
      log?.(`  baseline run ${i + 1}/${runs}: ${fmt(rb)}`);
    }
    const rg = await gatewayRun(i);
    g.push(rg);
    log?.(`  gateway  run ${i + 1}/${runs}: ${fmt(rg)}`);
  }
  return { gateway: median(g.map((r) => r.value)), baseline: baselineRun ? median(b.map((r) => r.value)) : null, g, b };
}

/**
 * Runs each of several set-ups `runs` times, one run of each in turn (in the order given),
 * so that a noisy neighbour hurts them all alike; returns, per name, the median `value`
 * and the raw figures.
 * @param {number} runs
 * @param {Record<string, (i: number) => Promise<any>>} runners
 * @param {(s: string) => void} [log]
 * @returns {Promise<Record<string, { median: number, runs: any[] }>>}
 */
export async function interleaved(runs, runners, log) {
  const names = Object.keys(runners);
  /** @type {Record<string, { median: number, runs: any[] }>} */
  const out = {};
  for (const name of names) out[name] = { median: NaN, runs: [] };
  const width = Math.max(...names.map((n) => n.length));
  for (let i = 0; i < runs; i++) {
    for (const name of names) {
      const r = await runners[name](i);
      out[name].runs.push(r);
      log?.(`  ${name.padEnd(width)} run ${i + 1}/${runs}: ${fmt(r)}`);
    }
  }
  for (const name of names) out[name].median = median(out[name].runs.map((r) => r.value));
  return out;
}

const fmt = (r) =>
  Object.entries(r)
    .map(([k, v]) => `${k}=${typeof v === 'number' ? +v.toPrecision(4) : v}`)
    .join(' ');
