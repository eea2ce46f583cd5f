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
import { runnerArgs, TRANSPORTS } from './transports.mjs';

/**
 * The conformance cases (cases.json) over stdio, WebSocket and HTTP, as `make conformance` runs
 * them (transports.mjs): every case passes, and every message the gateway sends validates
 * against the schema of its `type` (src/protocol/reply-schemas.ts and push-schemas.ts): the
 * runner records each one (--record), and this file checks them all.
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

/** Runs the in-repo conformance runner over one transport with --record; resolves with its output and what it recorded. */
function conformance(t: (typeof TRANSPORTS)[number]): Promise<Run> {
  const file = join(dir, `${t.name}.jsonl`);
  const child = spawn(process.execPath, ['test/conformance/run.mjs', ...runnerArgs(t, ['--record', file])], {
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

/** The runner's own count, its last line: `conformance: N passed, N failed`. */
function summary(output: string): { passed: number; failed: number } | undefined {
  const m = /conformance: (\d+) passed, (\d+) failed\s*$/.exec(output);
  return m ? { passed: Number(m[1]), failed: Number(m[2]) } : undefined;
}

/**
 * How many cases and messages each run must at least make (fewer: the run did not happen as
 * meant), and whether its types count towards "every type seen" (HTTP has no pushes).
 */
const expected: Record<string, { minCases: number; minMessages: number; countsTypes: boolean }> = {
  stdio: { minCases: 40, minMessages: MIN_MESSAGES, countsTypes: true },
  WebSocket: { minCases: 40, minMessages: MIN_MESSAGES, countsTypes: true },
  // The reply bodies of POST /v1/rpc (the bridge writes the envelope around each).
  HTTP: { minCases: 35, minMessages: MIN_MESSAGES / 2, countsTypes: false },
};
const runs = new Map<string, Promise<Run>>();
const seenInCases = new Set<string>();
const seenBound = new Set<string>();

beforeAll(() => {
  ensureBuilt();
  // All runs at once: each mostly waits on its gateway processes.
  for (const t of TRANSPORTS) runs.set(t.name, conformance(t));
}, 120_000);

afterAll(async () => {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
});

describe('the conformance cases pass, and every message the gateway sends in them fits its schema', () => {
  for (const t of TRANSPORTS)
    it(
      `over ${t.name}`,
      async () => {
        const run = await runs.get(t.name)!;
        const want = expected[t.name]!;
        const counted = summary(run.output);
        // The runner's failures, and its output's tail to show them.
        expect(counted?.failed, run.output.slice(-3000)).toBe(0);
        expect(run.code).toBe(0);
        expect(counted!.passed).toBeGreaterThanOrEqual(want.minCases);
        console.log(`conformance over ${t.name}: ${counted!.passed} passed, 0 failed`);
        expect(run.recorded.length).toBeGreaterThanOrEqual(want.minMessages);
        expect(invalid(run.recorded)).toEqual([]);
        if (want.countsTypes) for (const r of run.recorded) seenInCases.add(r.message.body.type);
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
    // A second on: a browser's extend that would move the end by less changes nothing.
    clock.advance(1000);
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
