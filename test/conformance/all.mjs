#!/usr/bin/env node
// @ts-check
// `make conformance`: the conformance cases over stdio, WebSocket and HTTP (transports.mjs),
// the three runs at once (each mostly waits on its own gateway processes). Each run's output
// is printed whole, in that order, once it ends; exits 1 if any run failed. Needs dist/.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runnerArgs, TRANSPORTS } from './transports.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');

/** @param {import('./transports.mjs').TransportRun} t @returns {Promise<{ code: number | null, output: string }>} */
function run(t) {
  const child = spawn(process.execPath, [join(here, 'run.mjs'), ...runnerArgs(t)], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, output })));
}

const runs = TRANSPORTS.map((t) => ({ name: t.name, done: run(t) }));
let failed = 0;
for (const r of runs) {
  const { code, output } = await r.done;
  process.stdout.write(`== over ${r.name}\n${output}`);
  if (code !== 0) failed++;
}
process.exit(failed === 0 ? 0 : 1);
