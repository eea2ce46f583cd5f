import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushSchemas } from '../../src/protocol/push-schemas.js';
import { replySchemas } from '../../src/protocol/reply-schemas.js';
import { browser, createSession, service, start, stopAll, type Msg } from '../ws/helpers.js';
import { ensureBuilt, ROOT } from '../ws/process.js';

/**
 * Every message the gateway sends in the conformance runs, over stdio, WebSocket and HTTP,
 * validates against the schema of its `type` (src/protocol/reply-schemas.ts and
 * push-schemas.ts): the runner records each one (--record), and this file checks them all.
 */

const compile = (schemas: Record<string, unknown>) =>
  new Map<string, TypeCheck<TSchema>>(Object.entries(schemas).map(([type, schema]) => [type, TypeCompiler.Compile(schema as TSchema)]));
/** A reply and a push may share a type (session_extended, session_updated): `in_reply_to` tells them apart. */
const replyChecks = compile(replySchemas);
const pushChecks = compile(pushSchemas);
const allTypes = new Set([...replyChecks.keys(), ...pushChecks.keys()]);
/** Pushes only a bound connection (a browser with the session cookie) gets: no case makes one, so a bound run below does. */
const BOUND_ONLY = ['session_expiring'];
/** Each run records several hundred messages today; far fewer means the runs did not happen as meant. */
const MIN_MESSAGES = 300;
/** The runner starts a process (two, over ws) per case; on two busy cores a run takes minutes. */
const RUN_TIMEOUT_MS = 420_000;

type Recorded = { case: string; message: Msg };
interface Run {
  code: number | null;
  output: string;
  recorded: Recorded[];
}

const dir = mkdtempSync(join(tmpdir(), 'reply-schemas-'));

/** Runs the in-repo conformance runner against `cmd` with --record; resolves with what it recorded. */
function conformance(name: string, extra: string[], cmd: string[]): Promise<Run> {
  const file = join(dir, `${name}.jsonl`);
  const child = spawn(process.execPath, ['test/conformance/run.mjs', '--record', file, ...extra, '--', ...cmd], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS - 10_000);
  return new Promise((resolve) =>
    child.once('exit', (code) => {
      clearTimeout(timer);
      let text = '';
      try {
        text = readFileSync(file, 'utf8');
      } catch {
        // Nothing recorded: the assertions below say so.
      }
      const recorded = text
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Recorded);
      resolve({ code, output, recorded });
    }),
  );
}

/** The messages that fail their schema (or have none), described for the failure message. */
function invalid(recorded: Recorded[]): string[] {
  const out: string[] = [];
  for (const { case: name, message } of recorded) {
    const type = String(message.body.type);
    const check = ('in_reply_to' in message.body || type === 'error' ? replyChecks : pushChecks).get(type);
    if (check === undefined) out.push(`${name}: no schema for type "${type}"`);
    else if (!check.Check(message.body)) {
      const e = check.Errors(message.body).First();
      out.push(`${name}: ${type}${e ? ` at "${e.path}": ${e.message}` : ''}: ${JSON.stringify(message.body).slice(0, 300)}`);
    }
    if (typeof message.src !== 'string' || (message.dest !== undefined && typeof message.dest !== 'string'))
      out.push(`${name}: bad envelope ${JSON.stringify(message).slice(0, 200)}`);
  }
  return out;
}

/** How many cases the runner says it ran (passed or failed): its last line. */
function casesRun(output: string): number {
  const m = /conformance: (\d+) passed, (\d+) failed/.exec(output);
  return m ? Number(m[1]) + Number(m[2]) : 0;
}

/** As `make conformance` runs it over HTTP (HTTP_SKIPS in the Makefile says why each is skipped). */
const HTTP_SKIPS = [
  'subscri',
  '^project: idle timeout',
  '^project: list_sessions: handles',
  '^project: revoke_user_sessions: counts',
  '^project: 400 mixed',
  '^project: envelope errors',
  'missing or unreadable msg_id',
  'an oversized line is error 12',
].flatMap((re) => ['--skip', re]);

/**
 * The three runs: the runner's skips and command, how many cases and messages each must at
 * least make, and whether its types count towards "every type seen" (HTTP has no pushes).
 */
const transports = [
  { name: 'stdio', skips: [], cmd: ['node', 'dist/cli.js', 'stdio'], minCases: 40, minMessages: MIN_MESSAGES, countsTypes: true },
  // As `make conformance` runs it over ws: a line 200 times the limit closes a socket with 1009 (test/ws/limits.test.ts).
  {
    name: 'WebSocket',
    skips: ['--skip', 'an oversized line'],
    cmd: ['test/transport-contract/serve-and-connect.sh'],
    minCases: 40,
    minMessages: MIN_MESSAGES,
    countsTypes: true,
  },
  // The reply bodies of POST /v1/rpc (the bridge writes the envelope around each).
  { name: 'HTTP', skips: HTTP_SKIPS, cmd: ['test/transport-contract/serve-and-post.sh'], minCases: 35, minMessages: MIN_MESSAGES / 2, countsTypes: false },
];
const runs = new Map<string, Promise<Run>>();
const seenInCases = new Set<string>();
const seenBound = new Set<string>();

beforeAll(() => {
  ensureBuilt();
  // All runs at once: each mostly waits on its gateway processes.
  for (const t of transports) runs.set(t.name, conformance(t.name, t.skips, t.cmd));
}, 120_000);

afterAll(async () => {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
});

describe('every message the gateway sends in the conformance runs fits its schema', () => {
  for (const t of transports)
    it(
      `over ${t.name}`,
      async () => {
        const run = await runs.get(t.name)!;
        expect(casesRun(run.output), run.output.slice(-2000)).toBeGreaterThanOrEqual(t.minCases);
        expect(run.recorded.length).toBeGreaterThanOrEqual(t.minMessages);
        expect(invalid(run.recorded)).toEqual([]);
        if (t.countsTypes) for (const r of run.recorded) seenInCases.add(r.message.body.type);
      },
      RUN_TIMEOUT_MS,
    );

  it('and the pushes of a bound connection, which no case makes, fit theirs', async () => {
    const { server, clock } = await start({ GATEWAY_EXPIRY_WARNING: '60' });
    const sid = await createSession(server.url, 10);
    const b = browser(server.url, { cookie: `sid=${sid}` });
    await b.opened;
    clock.advance(1);
    const warned = await b.next();
    clock.advance(10_000);
    const ended = await b.next();
    expect((await b.closed).code).toBe(4001);
    expect([warned.body.type, ended.body.type]).toEqual(['session_expiring', 'session_expired']);
    expect(invalid([warned, ended].map((message) => ({ case: 'bound', message })))).toEqual([]);
    for (const m of [warned, ended]) seenBound.add(m.body.type);
    // A bound connection's own extend, and the update it is told of without the data.
    const sid2 = await createSession(server.url, 3600);
    const b2 = browser(server.url, { cookie: `sid=${sid2}` });
    await b2.opened;
    const id = b2.post('extend_session');
    const s = service(server.url);
    await s.opened;
    expect((await s.call('update_session', { session_id: sid2, data: { role: 'admin' } })).type).toBe('session_updated');
    const got = await b2.count(3);
    expect(got.map((m) => m.body.type).sort()).toEqual(['session_extended', 'session_extended', 'session_updated']);
    expect(got.filter((m) => m.body.in_reply_to === id)).toHaveLength(1);
    expect(invalid(got.map((message) => ({ case: 'bound', message })))).toEqual([]);
  });

  it('between them, every reply and push type was seen at least once', () => {
    // The cases make every type but the bound-only pushes, which the bound run made.
    expect([...allTypes].filter((t) => !seenInCases.has(t))).toEqual(BOUND_ONLY);
    expect(BOUND_ONLY.filter((t) => !seenBound.has(t))).toEqual([]);
  });
});
