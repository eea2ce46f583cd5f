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

const fmt = (r) =>
  Object.entries(r)
    .map(([k, v]) => `${k}=${typeof v === 'number' ? +v.toPrecision(4) : v}`)
    .join(' ');
