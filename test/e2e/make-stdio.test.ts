import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

// README: `make stdio` is the stdio node seeded with the sample fixture session; docs/protocol.md:
// on stdio, stdout carries protocol messages only, so make's own lines must not reach it.
describe('make stdio', () => {
  it('writes protocol messages only on stdout', () => {
    const line = JSON.stringify({ src: 'a', dest: 'g', body: { type: 'validate_session', msg_id: 1, session_id: 'abc123' } });
    // Run as a user runs it, not as a sub-make of `make test` (which would announce its directory).
    const env = { ...process.env };
    for (const name of ['MAKELEVEL', 'MAKEFLAGS', 'MFLAGS', 'MAKEOVERRIDES']) delete env[name];
    const r = spawnSync('make', ['stdio'], { input: `${line}\n`, encoding: 'utf8', timeout: 120_000, env });
    expect(r.status).toBe(0);
    const lines = r.stdout.split('\n').filter((l) => l !== '');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ body: { type: 'session_valid', user_id: 'user123', in_reply_to: 1 } });
  });
});
