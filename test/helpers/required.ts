/**
 * The real components some tests need. A missing one never makes a test skip silently: the
 * test file fails, naming what to install. Only a run that says so skips them (printed):
 * GATEWAY_TEST_SKIP=redis-server,chromium (or `all`) on a machine without them. `make test`
 * never sets it; `make system-deps` installs redis-server, chromium, openssl and PyYAML, `make build` the build.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export type Component = 'redis-server' | 'chromium' | 'openssl' | 'pyyaml' | 'build';

/** Where the e2e tests find Chromium (scripts/system-deps.sh installs Debian's package there). */
export const CHROMIUM = '/usr/bin/chromium';
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

const HINTS: Record<Component, string> = {
  'redis-server': 'no redis-server on PATH (make system-deps installs it)',
  chromium: `no Chromium at ${CHROMIUM} (make system-deps installs it)`,
  openssl: 'no openssl on PATH (make system-deps installs it)',
  pyyaml: 'no PyYAML for python3 (make system-deps installs python3-yaml)',
  build: 'no dist/cli.js (make build, or npm run build)',
};

/** True when `cmd args` runs and exits 0. */
function runs(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function present(what: Component): boolean {
  switch (what) {
    case 'redis-server':
      return runs('redis-server', ['--version']);
    case 'chromium':
      return existsSync(CHROMIUM);
    case 'openssl':
      return runs('openssl', ['version']);
    case 'pyyaml':
      return runs('python3', ['-c', 'import yaml']);
    case 'build':
      return existsSync(join(ROOT, 'dist', 'cli.js'));
  }
}

const checked = new Map<Component, boolean>();

/** True when the components the run has skip permission for are exactly these (for tests of this module). */
export function skipAllowed(what: Component, env: NodeJS.ProcessEnv = process.env): boolean {
  const list = (env.GATEWAY_TEST_SKIP ?? '').split(',').map((s) => s.trim());
  return list.includes(what) || list.includes('all');
}

/**
 * True when `what` is there. When it is missing: throws (the test file fails, loudly), unless
 * GATEWAY_TEST_SKIP names it; then prints that the tests are skipped and returns false
 * (for `describe.skipIf(!required(...))`).
 */
export function required(what: Component): boolean {
  let ok = checked.get(what);
  if (ok === undefined) checked.set(what, (ok = present(what)));
  if (ok) return true;
  if (!skipAllowed(what)) throw new Error(`${HINTS[what]}; to skip the tests that need it, run with GATEWAY_TEST_SKIP=${what}`);
  console.warn(`SKIPPED (GATEWAY_TEST_SKIP=${process.env.GATEWAY_TEST_SKIP}): ${HINTS[what]}`);
  return false;
}
