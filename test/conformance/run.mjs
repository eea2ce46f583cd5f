#!/usr/bin/env node
// @ts-check
// Conformance runner: starts CMD once per case, speaks JSON lines to it over stdin/stdout
// and checks what it prints against the case.
//
//   node test/conformance/run.mjs [--cases FILE]... [--skip NAME]... [--only NAME]
//                                 [--record FILE] [--start-ms MS] [--verbose] -- CMD ARGS...
//
// A superset of the shared sample runner (/work/shared/conformance/run): its case files run
// here unchanged. --only and --skip take a case name's substring, as there, or a regular
// expression (`^project:`): a name is picked when it contains the text or the expression
// matches it.
// Default cases: cases.json beside this file. Prints `FAIL name: reason` per failing case
// and ends with `conformance: N passed, N failed`; exits 1 if any case failed or none ran.
// --record FILE appends each message the gateway prints as {"case": NAME, "message": ENVELOPE}.
// --start-ms MS is time the command itself may take to start (a bridge that starts a server
// first): it is added to every wait that ends before the command has printed anything.
//
// A case file is a JSON array of cases:
//   {"name", "env": {...}, "args": [...], "timeout_ms": 10000, "mode": "batch", "input": [...], "expect": [...]}
//     Every input (an envelope, or a string sent as the raw line) is written, stdin is
//     closed, the process must exit 0, and no msg_id may be answered twice. Then each
//     expected pattern is matched against a printed message: one naming in_reply_to
//     against the reply to that msg_id, any other against the next message that answers
//     no msg_id (errors to unreadable lines, pushes).
//   {"name", "mode": "steps", "steps": [...]}, each step one of:
//     {"send": envelope, "expect": pattern, "capture": {"var": "body.path"}}  reply to its msg_id
//     {"send": envelope}                                    no wait: the next step is pipelined
//     {"expect_reply_to": msg_id, "expect": pattern, "capture": {...}}  reply to an earlier send
//     {"send_raw": "text" | ["parts"], "expect": pattern}   the next printed message
//     {"expect_push": pattern, "within_ms": 3000}           a message answering no msg_id
//     {"expect_push": pattern, "src": pattern, "dest": pattern}  and its envelope's ends: the
//                                                           node id and the subscriber's src
//     {"expect_silence_ms": 500}                            nothing unread after the wait
//     {"sleep_ms": 1200}
//     {"close_stdin": true, "exit_code": 0, "within_ms": 3000}
// "env" values may use {{cases_dir}}, the case file's folder. Patterns: lib/match.mjs.
// Sent values: {{var}} (a captured value) and the constructors of lib/values.mjs:
//   {"$now": offsetSeconds}  {"$repeat": {"text", "times"}}
//   {"$jwt": {"header", "payload", "secret", "signature"}}  {"$tamper": {"token", "set"}}
//   {"$malleate": token}
import { appendFileSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fillPattern, mismatch, valueAt } from './lib/match.mjs';
import { NodeProcess } from './lib/node-process.mjs';
import { build, isObject } from './lib/values.mjs';

/** @typedef {import('./lib/node-process.mjs').Envelope} Envelope */
/** @typedef {import('./lib/values.mjs').Vars} Vars */
/**
 * @typedef {{
 *   name: string, mode?: 'batch' | 'steps', env?: Record<string, string | number>, args?: string[],
 *   timeout_ms?: number, input?: unknown[], expect?: unknown[], steps?: Step[], casesDir: string
 * }} Case
 * @typedef {{
 *   send?: unknown, send_raw?: unknown, expect?: unknown, capture?: Record<string, string>, expect_reply_to?: unknown,
 *   expect_push?: unknown, src?: unknown, dest?: unknown, within_ms?: number, expect_silence_ms?: number, sleep_ms?: number,
 *   close_stdin?: boolean, exit_code?: number
 * }} Step
 */

// Generous: two busy cores may take seconds to start a server; a passing case never waits it out.
const DEFAULT_TIMEOUT_MS = 10_000;
const USAGE =
  'usage: node test/conformance/run.mjs [--cases FILE]... [--skip NAME]... [--only NAME] [--record FILE] [--start-ms MS] [--verbose] -- CMD ARGS...';

/** @param {string} message @returns {never} */
function usage(message) {
  console.error(`run.mjs: ${message}\n${USAGE}`);
  process.exit(2);
}

/**
 * A test of case names: contains `text`, or matches it as a regular expression (text that is
 * not one, such as `session (fixture`, is a substring only).
 * @param {string} text @returns {(name: string) => boolean}
 */
function nameFilter(text) {
  /** @type {RegExp | null} */
  let re = null;
  try {
    re = new RegExp(text);
  } catch {
    re = null;
  }
  return (name) => name.includes(text) || (re !== null && re.test(name));
}

function parseArgs(argv = process.argv.slice(2)) {
  const opts = {
    /** @type {string[]} */ cases: [],
    /** @type {((name: string) => boolean)[]} */ skip: [],
    /** @type {((name: string) => boolean) | null} */ only: null,
    /** @type {string | null} */ record: null,
    startMs: 0,
    verbose: false,
    /** @type {string[]} */ command: [],
  };
  const rest = [...argv];
  /** @param {string} flag */
  const value = (flag) => rest.shift() ?? usage(`${flag} needs a value`);
  while (rest.length > 0) {
    const arg = /** @type {string} */ (rest.shift());
    if (arg === '--') {
      opts.command = rest;
      break;
    }
    if (arg === '--cases') opts.cases.push(value(arg));
    else if (arg === '--skip') opts.skip.push(nameFilter(value(arg)));
    else if (arg === '--only') opts.only = nameFilter(value(arg));
    else if (arg === '--record') opts.record = value(arg);
    else if (arg === '--start-ms') {
      const ms = Number(value(arg));
      if (!Number.isInteger(ms) || ms < 0) usage('--start-ms needs a whole number of milliseconds');
      opts.startMs = ms;
    } else if (arg === '--verbose') opts.verbose = true;
    else usage(`unknown option ${arg}`);
  }
  if (opts.command.length === 0) usage('missing -- CMD');
  if (opts.cases.length === 0) opts.cases.push(join(dirname(fileURLToPath(import.meta.url)), 'cases.json'));
  return opts;
}

/** @param {string} file @returns {Case[]} */
function loadCases(file) {
  const cases = JSON.parse(readFileSync(file, 'utf8'));
  if (!Array.isArray(cases)) throw new Error(`${file}: expected a JSON array of cases`);
  return cases.map((c) => ({ ...c, casesDir: resolve(dirname(file)) }));
}

/**
 * Replies name their request's ends swapped.
 * @param {unknown} request @param {Envelope} reply
 */
function envelopeMismatch(request, reply) {
  if (!isObject(request) || reply.body.in_reply_to === undefined) return null;
  if (request.src !== undefined && reply.dest !== request.src)
    return `reply dest ${JSON.stringify(reply.dest)} should be the request's src ${JSON.stringify(request.src)}`;
  if (request.dest !== undefined && reply.src !== request.dest)
    return `reply src ${JSON.stringify(reply.src)} should be the request's dest ${JSON.stringify(request.dest)}`;
  return null;
}

/** @param {unknown} message */
const msgIdOf = (message) => (isObject(message) && isObject(message.body) ? message.body.msg_id : undefined);

/** @param {Envelope} m */
const unsolicited = (m) => m.body.in_reply_to === undefined;

/**
 * A wait of `ms`, with the command's start-up allowance (--start-ms) while it has printed nothing.
 * @param {NodeProcess} node @param {number} ms
 */
const allowing = (node, ms) => ms + (node.heard === 0 ? opts.startMs : 0);

/** @param {number} ms */
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * @param {Case} c @param {NodeProcess} node
 * @returns {Promise<string | null>} why the case failed, or null
 */
async function runBatch(c, node) {
  /** @type {Vars} */
  const vars = {};
  const input = /** @type {unknown[]} */ (build(c.input ?? [], vars));
  for (const m of input) node.write(typeof m === 'string' ? m : JSON.stringify(m));
  node.closeStdin();
  const ms = c.timeout_ms ?? DEFAULT_TIMEOUT_MS;
  const exit = await node.exited(allowing(node, ms));
  if (!exit) return `did not exit within ${ms} ms of stdin closing`;
  if (exit.code !== 0) return `exited with ${exit.code ?? exit.signal}`;
  const answered = new Set();
  for (const m of node.queue) {
    const id = m.body.in_reply_to;
    if (id === undefined) continue;
    if (answered.has(id)) return `msg_id ${JSON.stringify(id)} answered more than once`;
    answered.add(id);
  }
  for (const [i, raw] of (c.expect ?? []).entries()) {
    const pattern = fillPattern(raw, vars);
    const wanted = isObject(pattern) ? pattern.in_reply_to : undefined;
    const accept =
      wanted === undefined ? unsolicited : (/** @type {Envelope} */ m) => m.body.in_reply_to !== undefined && mismatch(wanted, m.body.in_reply_to) === null;
    const at = node.queue.findIndex(accept);
    if (at < 0) return `expect ${i + 1}: nothing printed for ${JSON.stringify(pattern).slice(0, 120)}`;
    const [reply] = /** @type {[Envelope]} */ (node.queue.splice(at, 1));
    const request = input.find((m) => reply.body.in_reply_to !== undefined && msgIdOf(m) === reply.body.in_reply_to);
    const why = mismatch(pattern, reply.body) ?? envelopeMismatch(request, reply);
    if (why) return `expect ${i + 1}: ${why}`;
  }
  return null;
}

/**
 * @param {Case} c @param {NodeProcess} node
 * @returns {Promise<string | null>}
 */
async function runSteps(c, node) {
  /** @type {Vars} */
  const vars = {};
  /** @type {Map<unknown, unknown>} msg_id -> message sent, for replies taken by a later step */
  const sent = new Map();
  const caseMs = c.timeout_ms ?? DEFAULT_TIMEOUT_MS;
  for (const [i, step] of (c.steps ?? []).entries()) {
    const why = await runStep(step, node, vars, sent, caseMs);
    if (why) return `step ${i + 1}: ${why}`;
  }
  return null;
}

/**
 * Checks a reply against a step's pattern, then captures from it.
 * @param {Step} step @param {Envelope} reply @param {unknown} request @param {Vars} vars
 * @returns {string | null}
 */
function checkReply(step, reply, request, vars) {
  const why = mismatch(fillPattern(step.expect ?? {}, vars), reply.body) ?? envelopeMismatch(request, reply);
  if (why) return why;
  for (const [name, path] of Object.entries(step.capture ?? {})) {
    const v = valueAt(reply, path);
    if (v === undefined) return `nothing at ${path} to capture as ${name}`;
    vars[name] = v;
  }
  return null;
}

/**
 * A push's envelope against the step's `src` (the node id) and `dest` (the subscriber's src)
 * patterns, when it names them.
 * @param {Step} step @param {Envelope} push @param {Vars} vars
 * @returns {string | null}
 */
function pushEndsMismatch(step, push, vars) {
  for (const end of /** @type {const} */ (['src', 'dest'])) {
    if (step[end] === undefined) continue;
    const why = mismatch(fillPattern(step[end], vars), push[end], `push ${end}`);
    if (why) return `${why} (${JSON.stringify(push.body).slice(0, 100)})`;
  }
  return null;
}

/**
 * @param {Step} step @param {NodeProcess} node @param {Vars} vars
 * @param {Map<unknown, unknown>} sent @param {number} caseMs
 * @returns {Promise<string | null>}
 */
async function runStep(step, node, vars, sent, caseMs) {
  const ms = step.within_ms ?? caseMs;
  if (step.sleep_ms !== undefined) {
    await sleep(step.sleep_ms);
    return null;
  }
  if (step.send !== undefined || step.send_raw !== undefined) {
    const message = step.send === undefined ? undefined : build(step.send, vars);
    node.write(message === undefined ? [build(step.send_raw, vars)].flat().join('') : JSON.stringify(message));
    const id = msgIdOf(message);
    if (id !== undefined) sent.set(id, message);
    if (step.expect === undefined) return null;
    // A raw line may be unreadable, so its answer is whatever comes next.
    const reply = await node.take(id === undefined ? () => true : (m) => m.body.in_reply_to === id, allowing(node, ms));
    if (!reply) return node.exit ? `exited (${node.exit.code ?? node.exit.signal}) without a reply` : `no reply within ${ms} ms`;
    return checkReply(step, reply, message, vars);
  }
  if (step.expect_reply_to !== undefined) {
    const id = step.expect_reply_to;
    if (!sent.has(id)) return `no earlier send with msg_id ${JSON.stringify(id)}`;
    const reply = await node.take((m) => m.body.in_reply_to === id, allowing(node, ms));
    if (!reply) return `no reply to msg_id ${JSON.stringify(id)} within ${ms} ms`;
    return checkReply(step, reply, sent.get(id), vars);
  }
  if (step.expect_push !== undefined) {
    const pattern = fillPattern(step.expect_push, vars);
    const push = await node.take((m) => unsolicited(m) && mismatch(pattern, m.body) === null, allowing(node, ms));
    if (push) return pushEndsMismatch(step, push, vars);
    const others = node.queue.filter(unsolicited).map((m) => JSON.stringify(m.body).slice(0, 100));
    return `no message matching ${JSON.stringify(pattern).slice(0, 120)} within ${ms} ms${others.length ? ` (got ${others.join(', ')})` : ''}`;
  }
  if (step.expect_silence_ms !== undefined) {
    await sleep(step.expect_silence_ms);
    return node.queue.length ? `unexpected ${JSON.stringify(node.queue[0]).slice(0, 160)}` : null;
  }
  if (step.close_stdin) {
    node.closeStdin();
    const exit = await node.exited(allowing(node, ms));
    if (!exit) return `did not exit within ${ms} ms of stdin closing`;
    if (step.exit_code !== undefined && exit.code !== step.exit_code) return `exited with ${exit.code ?? exit.signal}, expected ${step.exit_code}`;
    return null;
  }
  return `unknown step ${JSON.stringify(step).slice(0, 120)}`;
}

/**
 * @param {Case} c @param {string[]} command @param {string | null} record
 * @returns {Promise<{why: string | null, stderr: string}>}
 */
async function runCase(c, command, record) {
  const env = Object.fromEntries(Object.entries(c.env ?? {}).map(([k, v]) => [k, String(v).replaceAll('{{cases_dir}}', c.casesDir)]));
  const [cmd = '', ...args] = command;
  /** @param {Envelope} message */
  const onMessage = (message) => {
    if (record) appendFileSync(record, `${JSON.stringify({ case: c.name, message })}\n`);
  };
  const node = new NodeProcess(cmd, [...args, ...(c.args ?? [])], env, onMessage);
  /** @type {string | null} */
  let why;
  try {
    why = c.mode === 'steps' ? await runSteps(c, node) : await runBatch(c, node);
  } catch (err) {
    why = `runner error: ${err instanceof Error ? err.message : String(err)}`;
  }
  await node.stop();
  // A command that could not start explains more than the silence it left.
  const notStarted = node.problems.find((p) => p.startsWith('could not start'));
  return { why: notStarted ?? why ?? node.problems[0] ?? null, stderr: node.stderr };
}

const opts = parseArgs();
const cases = opts.cases.flatMap(loadCases).filter((c) => (!opts.only || opts.only(c.name)) && !opts.skip.some((skip) => skip(c.name)));
let passed = 0;
let failed = 0;
for (const c of cases) {
  const { why, stderr } = await runCase(c, opts.command, opts.record);
  if (why) {
    failed++;
    console.log(`FAIL ${c.name}: ${why}`);
    if (opts.verbose && stderr.trim())
      console.log(
        stderr
          .trim()
          .split('\n')
          .slice(-5)
          .map((l) => `  stderr: ${l}`)
          .join('\n'),
      );
  } else {
    passed++;
    if (opts.verbose) console.log(`ok   ${c.name}`);
  }
}
console.log(`conformance: ${passed} passed, ${failed} failed`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
