// The files dist/ is built from. Make (BUILD_INPUTS) and the tests' ensureBuilt
// (test/ws/process.ts) both compare them with the stamp scripts/touch-built.mjs writes, so
// a change to any of them, compiler settings included, rebuilds before a test runs the CLI.
// Run as a script, it prints them one per line, relative to the repository.
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SOURCE_DIRS = ['src', 'client/src', 'client/demo', 'middleware/src'];
const SETTINGS = ['package.json', 'tsconfig.json', 'client/tsconfig.json', 'middleware/tsconfig.json'];

/**
 * Absolute paths of every TypeScript source and compiler setting of the build.
 * @returns {string[]}
 */
export function buildInputs() {
  /** @type {string[]} */
  const out = SETTINGS.map((f) => join(ROOT, f));
  /** @param {string} dir */
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) out.push(p);
    }
  };
  for (const d of SOURCE_DIRS) walk(join(ROOT, d));
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url))
  process.stdout.write(
    `${buildInputs()
      .map((p) => relative(ROOT, p))
      .join('\n')}\n`,
  );
