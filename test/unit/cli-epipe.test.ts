/**
 * A reader that goes away before the output is written (`auth-gateway schema | head -1`):
 * the command ends with 0 and nothing on stderr, as `stdio` does, not with an unhandled
 * EPIPE and its stack.
 */
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';

/** Runs the CLI with its stdout closed at once; resolves its exit code and stderr. */
function withClosedOutput(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, ['dist/cli.js', ...args], { env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  // Our end of the pipe closed before the child writes: its first write fails with EPIPE.
  child.stdout.destroy();
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stderr })));
}

describe('the one-shot commands with a reader that went away', () => {
  it('schema, openapi, config, --help and --version end with 0 and nothing on stderr', async () => {
    for (const args of [['schema'], ['openapi'], ['config'], ['--help'], ['--version']]) {
      const r = await withClosedOutput(args);
      expect(r, args.join(' ')).toEqual({ code: 0, stderr: '' });
    }
  });
});
