// Records every module a process loads, for tests of what a command needs:
// `node --import ./test/helpers/module-recorder.mjs ...` with MODULE_RECORD=<file> appends one
// URL or path a line: ES modules as they are resolved (a loader hook, on its own thread), and
// at exit every CommonJS module in require's cache (which an ES module hook does not see).
import { appendFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';
import { isMainThread } from 'node:worker_threads';

const out = process.env.MODULE_RECORD ?? '';
if (out === '') throw new Error('module-recorder: set MODULE_RECORD to the file to write');

if (isMainThread) {
  register(import.meta.url);
  const cache = createRequire(import.meta.url).cache;
  process.once('exit', () =>
    appendFileSync(
      out,
      Object.keys(cache)
        .map((p) => `${p}\n`)
        .join(''),
    ),
  );
}

/**
 * The loader hook: each resolved ES module, as it is resolved.
 * @param {string} specifier
 * @param {unknown} context
 * @param {(specifier: string, context: unknown) => Promise<{ url: string }>} next
 */
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  appendFileSync(out, `${resolved.url}\n`);
  return resolved;
}
