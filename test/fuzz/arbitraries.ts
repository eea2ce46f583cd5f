/**
 * fast-check arbitraries for fuzzing the wire protocol, and the oracle that says which
 * replies a stream of input must get. Messages are a mix of near-valid envelopes (every
 * request type, real and fake ids and tokens, wrong types in every field), arbitrary JSON,
 * arbitrary text and arbitrary bytes (newlines included, so one item may be many lines).
 */
import fc from 'fast-check';

export const KNOWN_SESSIONS = ['fz-session-1', 'fz-session-2', 'fz-session-3', 'fz-session-4'];
const USERS = ['alice', 'bob', 'fz-user'];
export const TYPES = [
  'init',
  'create_session',
  'validate_session',
  'regenerate_session',
  'destroy_session',
  'subscribe_session',
  'unsubscribe_session',
  'list_sessions',
  'destroy_session_handle',
  'revoke_user_sessions',
  'generate_access_token',
  'verify_token',
  'refresh_token',
  'revoke_token',
  'exchange_session',
];

/** One fuzz item: an envelope whose msg_id the runner assigns, or raw text/bytes. */
export type Item = { kind: 'env'; env: Record<string, unknown>; junkId?: unknown } | { kind: 'text'; text: string } | { kind: 'bytes'; bytes: Uint8Array };

const NO_JUNK = Symbol('no junk msg_id');
const smallJson = fc.jsonValue({ maxDepth: 2 });
const str = fc.string({ maxLength: 40 });

function mutate(token: string): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.constant(token) },
    { weight: 1, arbitrary: fc.nat(token.length).map((i) => token.slice(0, i)) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.nat(token.length), fc.constantFrom('A', '.', '=', '_', '+', '%', ' '))
        .map(([i, ch]) => token.slice(0, i) + ch + token.slice(i + 1)),
    },
    { weight: 1, arbitrary: fc.constant(`${token}.${token}`) },
  );
}

/**
 * Placeholders for credentials that exist only at run time (refresh and access tokens the
 * node under test issued): `serialize` replaces them with the real values.
 */
export const PLACEHOLDERS = ['@RT0@', '@RT1@', '@RT2@', '@RT3@', '@AT0@', '@AT1@'];

/** Which fields each request type needs (the rest are optional or extra). */
const REQUIRED: Record<string, string[]> = {
  init: ['node_id'],
  create_session: ['user_id'],
  validate_session: ['session_id'],
  regenerate_session: ['old_session_id'],
  destroy_session: ['session_id'],
  subscribe_session: ['session_id'],
  unsubscribe_session: ['session_id'],
  list_sessions: ['user_id'],
  destroy_session_handle: ['user_id', 'handle'],
  revoke_user_sessions: ['user_id'],
  generate_access_token: ['payload'],
  verify_token: ['token'],
  refresh_token: ['refresh_token'],
  revoke_token: ['token'],
  exchange_session: ['session_id'],
};

/** A near-valid envelope: the right shape most of the time, wrong in one place some of the time. */
export function envelopeItem(tokens: string[]): fc.Arbitrary<Item> {
  const sessionish = fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...KNOWN_SESSIONS) }, { weight: 2, arbitrary: str }, { weight: 1, arbitrary: smallJson });
  const pool = [...tokens, ...PLACEHOLDERS.filter((p) => p.startsWith('@AT'))];
  const tokenish = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...pool).chain(mutate) },
    { weight: 2, arbitrary: fc.constantFrom(...PLACEHOLDERS.filter((p) => p.startsWith('@RT'))) },
    { weight: 1, arbitrary: str },
    { weight: 1, arbitrary: smallJson },
  );
  const values: Record<string, fc.Arbitrary<unknown>> = {
    session_id: sessionish,
    old_session_id: sessionish,
    except_session_id: sessionish,
    user_id: fc.oneof({ weight: 8, arbitrary: fc.constantFrom(...USERS) }, { weight: 1, arbitrary: smallJson }),
    token: tokenish,
    refresh_token: tokenish,
    payload: fc.oneof({ weight: 8, arbitrary: fc.dictionary(fc.string({ maxLength: 8 }), smallJson, { maxKeys: 4 }) }, { weight: 1, arbitrary: smallJson }),
    data: fc.oneof({ weight: 4, arbitrary: fc.dictionary(fc.string({ maxLength: 8 }), smallJson, { maxKeys: 3 }) }, { weight: 1, arbitrary: smallJson }),
    ttl: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 1, max: 600 }) }, { weight: 1, arbitrary: smallJson }),
    handle: fc.oneof(str, smallJson),
    node_id: fc.oneof({ weight: 4, arbitrary: fc.constant('n1') }, { weight: 1, arbitrary: str }),
  };
  const typeArb = fc.oneof({ weight: 20, arbitrary: fc.constantFrom(...TYPES) }, { weight: 1, arbitrary: str }, { weight: 1, arbitrary: smallJson });
  return typeArb.chain((type) => {
    const required = typeof type === 'string' && Object.hasOwn(REQUIRED, type) ? REQUIRED[type]! : [];
    const fieldArbs: Record<string, fc.Arbitrary<unknown>> = {};
    for (const k of required) fieldArbs[k] = values[k]!;
    // One optional or unrelated field now and then.
    const other = fc.option(
      fc.constantFrom(...Object.keys(values)).chain((k) => values[k]!.map((v) => [k, v] as const)),
      { freq: 3 },
    );
    return fc
      .record({
        src: fc.oneof({ weight: 12, arbitrary: fc.constantFrom('c1', 'c2', 'watcher') }, { weight: 1, arbitrary: smallJson }),
        dest: fc.oneof({ weight: 12, arbitrary: fc.constant('gateway') }, { weight: 1, arbitrary: smallJson }),
        fields: fc.record(fieldArbs),
        drop: fc.nat(15).map((n) => (n === 0 && required.length > 0 ? required[0] : undefined)),
        other,
        // One envelope in twelve has a msg_id that is not a readable one.
        junkId: fc.oneof(
          { weight: 11, arbitrary: fc.constant(NO_JUNK) },
          { weight: 1, arbitrary: fc.oneof(fc.integer({ min: -5, max: -1 }), fc.double(), str, fc.constant(null), fc.constant(2 ** 60)) },
        ),
        bodyless: fc.nat(29).map((n) => n === 0),
      })
      .map(({ src, dest, fields, drop, other, junkId, bodyless }): Item => {
        const body: Record<string, unknown> = { type, ...fields };
        if (other) body[other[0]] = other[1];
        if (drop !== undefined) delete body[drop];
        const env: Record<string, unknown> = { src, dest, body: bodyless ? [body] : body };
        return junkId === NO_JUNK ? { kind: 'env', env } : { kind: 'env', env, junkId };
      });
  });
}

/** Anything: near-valid envelopes, arbitrary JSON, arbitrary text, arbitrary bytes. */
export function anyItem(tokens: string[]): fc.Arbitrary<Item> {
  return fc.oneof(
    { weight: 6, arbitrary: envelopeItem(tokens) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v): Item => ({ kind: 'text', text: JSON.stringify(v) ?? 'null' })) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }).map((text): Item => ({ kind: 'text', text })) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map((bytes): Item => ({ kind: 'bytes', bytes })) },
  );
}

/** Serializes items to the bytes of a JSON-lines stream, assigning msg_ids from `nextId`. */
export function serialize(items: Item[], nextId: () => number, subst: Map<string, string> = new Map()): Buffer {
  const parts: Buffer[] = [];
  for (const it of items) {
    if (it.kind === 'env') {
      const env = it.env;
      const body = env.body;
      if (body !== null && typeof body === 'object' && !Array.isArray(body)) {
        (body as Record<string, unknown>).msg_id = 'junkId' in it ? it.junkId : nextId();
      }
      let text = JSON.stringify(env);
      for (const [ph, real] of subst) if (text.includes(ph)) text = text.split(ph).join(real);
      parts.push(Buffer.from(`${text}\n`));
    } else if (it.kind === 'text') {
      parts.push(Buffer.from(`${it.text}\n`));
    } else {
      parts.push(Buffer.from(it.bytes), Buffer.from('\n'));
    }
  }
  return Buffer.concat(parts);
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The msg_id a reply must answer, read the way docs/protocol.md defines it; undefined when unreadable. */
export function readableMsgId(line: string): number | undefined {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (!isObject(v) || !isObject(v.body)) return undefined;
  const id = v.body.msg_id;
  return typeof id === 'number' && Number.isSafeInteger(id) && id >= 0 ? id : undefined;
}

export interface Expectation {
  /** msg_id -> how many lines carry it readably (each must get exactly one reply). */
  exact: Map<number, number>;
  /** msg_id -> lines over the size limit carrying it (each answered at most once; stdio does not parse them). */
  oversized: Map<number, number>;
  /** lines with no readable msg_id (each may get one error without in_reply_to). */
  unreadable: number;
  lines: number;
}

/** Splits bytes into lines as the stdio transport does and says what must be answered. */
export function expectations(input: Buffer, maxBytes: number, into?: Expectation): Expectation {
  const e = into ?? { exact: new Map(), oversized: new Map(), unreadable: 0, lines: 0 };
  let start = 0;
  while (start < input.length) {
    let nl = input.indexOf(0x0a, start);
    if (nl === -1) nl = input.length;
    let line = input.subarray(start, nl);
    start = nl + 1;
    if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
    if (line.length === 0) continue;
    e.lines++;
    const id = readableMsgId(line.toString('utf8'));
    if (line.length > maxBytes) {
      if (id !== undefined) e.oversized.set(id, (e.oversized.get(id) ?? 0) + 1);
      else e.unreadable++;
    } else if (id === undefined) e.unreadable++;
    else e.exact.set(id, (e.exact.get(id) ?? 0) + 1);
  }
  return e;
}

export interface Outcome {
  /** Replies and pushes by body type: shows which paths the fuzz reached. */
  types: Record<string, number>;
  replies: number;
  pushes: number;
  unaddressed: number;
  problems: string[];
}

const PUSH_TYPES = new Set(['session_expired', 'session_expiring']);

/** Checks the output lines against the expectation: every readable msg_id answered exactly once. */
export function check(e: Expectation, outputLines: string[]): Outcome {
  const got = new Map<number, number>();
  const out: Outcome = { types: {}, replies: 0, pushes: 0, unaddressed: 0, problems: [] };
  for (const line of outputLines) {
    let m: { src?: unknown; body?: Record<string, unknown> };
    try {
      m = JSON.parse(line) as typeof m;
    } catch {
      out.problems.push(`output line is not JSON: ${line.slice(0, 80)}`);
      continue;
    }
    if (!isObject(m.body) || typeof m.body.type !== 'string' || typeof m.src !== 'string') {
      out.problems.push(`output line is not a message: ${line.slice(0, 80)}`);
      continue;
    }
    const r = m.body.in_reply_to;
    const t = m.body.type === 'error' ? `error ${String(m.body.code)}` : m.body.type;
    out.types[t] = (out.types[t] ?? 0) + 1;
    if (typeof r === 'number') {
      out.replies++;
      got.set(r, (got.get(r) ?? 0) + 1);
    } else if (PUSH_TYPES.has(m.body.type) && typeof m.body.msg_id === 'number') out.pushes++;
    else if (m.body.type === 'error') out.unaddressed++;
    else out.problems.push(`unexpected unaddressed message: ${line.slice(0, 80)}`);
  }
  // Each readable line: exactly one reply. An oversized line may carry a readable id too (a
  // junk msg_id such as 0 can repeat): stdio answers it unparsed, without in_reply_to; a
  // transport that parses it may answer with one, at most once.
  for (const id of new Set([...e.exact.keys(), ...got.keys()])) {
    const g = got.get(id) ?? 0;
    const n = e.exact.get(id) ?? 0;
    const extra = e.oversized.get(id) ?? 0;
    if (g < n || g > n + extra) out.problems.push(`msg_id ${id}: ${g} replies for ${n} readable and ${extra} oversized lines`);
  }
  const oversizedLines = [...e.oversized.values()].reduce((a, n) => a + n, 0);
  if (out.unaddressed > e.unreadable + oversizedLines)
    out.problems.push(`${out.unaddressed} unaddressed errors for ${e.unreadable} unreadable and ${oversizedLines} oversized lines`);
  return out;
}
