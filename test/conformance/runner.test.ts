// The conformance runner judges the gateway; this checks that it can say no. Each case
// below is run by run.mjs against the real gateway (dist/cli.js stdio); all but one must
// fail, each for its own reason.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { required } from '../helpers/required.js';
import { CLI } from '../security/spawn.js';

const RUN = fileURLToPath(new URL('./run.mjs', import.meta.url));
const KEY = 'Xj0ZBhGk1Fq3cQm8bV0o7s7oQ3yqvPgkS9cZ1o6Fh2E=';
const env = { GATEWAY_JWT_SECRET: KEY };
const m = (type: string, msg_id: number, fields: Record<string, unknown> = {}) => ({ src: 'c1', dest: 'gateway', body: { type, msg_id, ...fields } });

const CASES = [
  {
    name: 'passes: pipelined create and list, captures, $jwt, $absent',
    env,
    mode: 'steps',
    steps: [
      { send: m('create_session', 1, { user_id: 'u' }) },
      { send: m('list_sessions', 2, { user_id: 'u' }), expect: { type: 'sessions', sessions: [{ handle: '.+' }] } },
      { expect_reply_to: 1, expect: { type: 'session_created' }, capture: { sid: 'body.session_id' } },
      { send: m('validate_session', 3, { session_id: '{{sid}}' }), expect: { type: 'session_valid', user_id: 'u', $absent: ['error'] } },
      { send: m('subscribe_session', 5, { session_id: '{{sid}}' }), expect: { type: 'subscribed' } },
      { send: m('destroy_session', 6, { session_id: '{{sid}}' }), expect: { type: 'session_destroyed' } },
      { expect_push: { type: 'session_expired', reason: 'destroyed' }, src: 'gateway', dest: 'c1' },
      {
        send: m('verify_token', 4, {
          token: { $jwt: { secret: KEY, payload: { sub: 'u', iat: { $now: -2000 }, exp: { $now: -1000 }, jti: 'runner-test-1' } } },
        }),
        expect: { type: 'token_invalid', error: 'Token expired' },
      },
    ],
  },
  {
    name: 'fails: a regex that does not match',
    env,
    mode: 'batch',
    input: [m('create_session', 1, { user_id: 'u' })],
    expect: [{ in_reply_to: 1, session_id: 'x+' }],
  },
  {
    name: 'fails: a field that must be absent',
    env,
    mode: 'batch',
    input: [m('create_session', 1, { user_id: 'u' })],
    expect: [{ in_reply_to: 1, $absent: ['session_id'] }],
  },
  {
    name: 'fails: a number that differs',
    env,
    mode: 'batch',
    input: [m('create_session', 1, { user_id: 'u', ttl: 60 })],
    expect: [{ in_reply_to: 1, expires_in: 61 }],
  },
  { name: 'fails: a reply never sent', env, mode: 'batch', input: [], expect: [{ in_reply_to: 1 }] },
  { name: 'fails: a push that never comes', env, mode: 'steps', steps: [{ expect_push: { type: 'session_expired' }, within_ms: 300 }] },
  {
    name: 'fails: a push to another destination',
    env,
    mode: 'steps',
    steps: [
      { send: m('create_session', 1, { user_id: 'u' }), expect: { type: 'session_created' }, capture: { sid: 'body.session_id' } },
      { send: m('subscribe_session', 2, { session_id: '{{sid}}' }), expect: { type: 'subscribed' } },
      { send: m('destroy_session', 3, { session_id: '{{sid}}' }), expect: { type: 'session_destroyed' } },
      { expect_push: { type: 'session_expired' }, src: 'gateway', dest: 'someone-else' },
    ],
  },
  {
    name: 'fails: output where silence was expected',
    env,
    mode: 'steps',
    steps: [
      { send: m('create_session', 1, { user_id: 'u' }), expect: { type: 'session_created' } },
      { send: m('create_session', 2, { user_id: 'u' }) },
      { expect_silence_ms: 1000 },
    ],
  },
  { name: 'fails: an exit code other than expected', env, mode: 'steps', steps: [{ close_stdin: true, exit_code: 3 }] },
  { name: 'skipped: never run', env, mode: 'batch', input: [], expect: [{ in_reply_to: 1 }] },
];

const dir = mkdtempSync(join(tmpdir(), 'runner-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(args: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [RUN, ...args], { timeout: 120_000 }, (err, stdout) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout });
    });
  });
}

describe.skipIf(!required('build'))('conformance runner', () => {
  it('fails each broken expectation by name, passes the good case, records every message, exits 1', async () => {
    const cases = join(dir, 'cases.json');
    const record = join(dir, 'record.jsonl');
    writeFileSync(cases, JSON.stringify(CASES));
    const { code, stdout } = await run(['--cases', cases, '--skip', '^skipped:', '--record', record, '--', process.execPath, CLI, 'stdio']);
    const lines = stdout.trim().split('\n');
    expect(lines.at(-1)).toBe('conformance: 1 passed, 8 failed');
    expect(code).toBe(1);
    const failing = CASES.filter((c) => c.name.startsWith('fails:')).map((c) => c.name);
    expect(lines.filter((l) => l.startsWith('FAIL '))).toHaveLength(failing.length);
    for (const name of failing)
      expect(
        lines.some((l) => l.startsWith(`FAIL ${name}: `)),
        name,
      ).toBe(true);
    const recorded = readFileSync(record, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { case: string; message: { body: { type: string } } });
    expect(
      recorded
        .filter((r) => r.case.startsWith('passes:'))
        .map((r) => r.message.body.type)
        .sort(),
    ).toEqual(['session_created', 'session_destroyed', 'session_expired', 'session_valid', 'sessions', 'subscribed', 'token_invalid']);
    expect(lines.find((l) => l.startsWith('FAIL fails: a push to another destination: '))).toMatch(/push dest = "c1" does not match \/someone-else\//);
    expect(recorded.some((r) => r.case.startsWith('skipped:'))).toBe(false);
  });

  it('exits 1 when no case ran, and 2 on a bad option', async () => {
    const cases = join(dir, 'one.json');
    writeFileSync(cases, JSON.stringify(CASES.slice(0, 1)));
    expect(await run(['--cases', cases, '--skip', '.', '--', process.execPath, CLI, 'stdio'])).toEqual({
      code: 1,
      stdout: 'conformance: 0 passed, 0 failed\n',
    });
    expect((await run(['--bogus'])).code).toBe(2);
  });

  it('--start-ms allows a slow start before the command prints, and no longer once it has', async () => {
    const cases = join(dir, 'slow.json');
    writeFileSync(
      cases,
      JSON.stringify([
        { name: 'batch', env, mode: 'batch', timeout_ms: 500, input: [m('init', 1, { node_id: 'n1' })], expect: [{ in_reply_to: 1, type: 'init_ok' }] },
        {
          name: 'steps',
          env,
          mode: 'steps',
          timeout_ms: 500,
          steps: [{ send: m('init', 1, { node_id: 'n1' }), expect: { type: 'init_ok' } }, { expect_push: { type: 'session_expired' } }],
        },
      ]),
    );
    // A bridge that takes 2 s to start its server before it passes anything on.
    const slow = ['sh', '-c', `sleep 2; exec "${process.execPath}" "${CLI}" stdio`];
    const without = await run(['--cases', cases, '--', ...slow]);
    expect(without.stdout).toMatch(/^FAIL batch: did not exit within 500 ms of stdin closing$/m);
    expect(without.stdout).toMatch(/^FAIL steps: step 1: no reply within 500 ms$/m);
    const started = Date.now();
    const allowed = await run(['--verbose', '--start-ms', '60000', '--cases', cases, '--', ...slow]);
    expect(allowed.stdout).toMatch(/^ok {3}batch$/m);
    // The push step comes after the first reply: its own 500 ms, not the start-up's 60 s.
    expect(allowed.stdout).toMatch(/^FAIL steps: step 2: no message matching .* within 500 ms$/m);
    expect(Date.now() - started).toBeLessThan(40_000);
    expect((await run(['--start-ms', '-1', '--', 'true'])).code).toBe(2);
  }, 90_000);

  it('--only and --skip take a substring of the name, as the shared runner does, or a regular expression', async () => {
    const cases = join(dir, 'names.json');
    const named = (name: string) => ({ name, env, mode: 'batch', input: [m('init', 1, { node_id: 'n1' })], expect: [{ in_reply_to: 1, type: 'init_ok' }] });
    writeFileSync(cases, JSON.stringify([named('seed: validate (fixture abc123)'), named('seed: other'), named('project: third')]));
    const picked = async (args: string[]) => (await run(['--verbose', '--cases', cases, ...args, '--', process.execPath, CLI, 'stdio'])).stdout;
    // Parentheses that are no regular expression of the name: a substring.
    expect(await picked(['--only', '(fixture abc123)'])).toBe('ok   seed: validate (fixture abc123)\nconformance: 1 passed, 0 failed\n');
    expect(await picked(['--only', 'seed: validate (fixture'])).toBe('ok   seed: validate (fixture abc123)\nconformance: 1 passed, 0 failed\n');
    expect(await picked(['--skip', '^seed:'])).toBe('ok   project: third\nconformance: 1 passed, 0 failed\n');
  });
});
