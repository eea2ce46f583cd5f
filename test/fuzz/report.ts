/**
 * Figures of the fuzz and fault tests: printed as one `FIGURES name {...}` line and appended
 * to test/artifacts/figures.jsonl, which `make soak` prints as a table at the end.
 * SOAK=1 selects the long versions.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const SOAK = process.env.SOAK === '1';

/**
 * A time limit sized by mode: `normalMs` under `make test`, where a hang should cost little (the
 * normal runs take seconds; the limit leaves room for a busy 2-core machine), `soakMs` under
 * `make soak`, whose runs are ten to a hundred times longer.
 */
export const limit = (normalMs: number, soakMs = 900_000): number => (SOAK ? soakMs : normalMs);

const ARTIFACTS = fileURLToPath(new URL('../artifacts/', import.meta.url));

/** Records what a test offered, what was answered and what it measured. */
export function report(name: string, figures: Record<string, unknown>): void {
  const line = JSON.stringify({ name, soak: SOAK, ...figures });
  console.log(`FIGURES ${line}`);
  try {
    mkdirSync(ARTIFACTS, { recursive: true });
    appendFileSync(`${ARTIFACTS}figures.jsonl`, `${line}\n`);
  } catch {
    // figures are a courtesy; the assertions are the test
  }
}

export { heapAfterGc } from '../helpers/heap.js';

export const mb = (bytes: number): number => Math.round((bytes / 1048576) * 10) / 10;
