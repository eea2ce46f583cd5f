import { isUtf8 } from 'node:buffer';
import { createReadStream } from 'node:fs';
import { Type, type Static } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { ConfigError } from './errors.js';
import type { Gateway } from './gateway.js';
import { codePointCount } from './protocol/code-points.js';
import { depthExceeds, hasLoneSurrogate, hasNonFinite, hasProtoMember, MAX_DEPTH } from './protocol/decode.js';
import { countMembers, scanJson } from './protocol/json-shape.js';
import { MAX_ID } from './protocol/messages.js';

/**
 * The most a fixture file is read of: far above any test's or demo's (some 400,000 sessions),
 * and a bound on what a device named by mistake (`/dev/urandom`) can pour into the process.
 */
export const MAX_FIXTURE_FILE_BYTES = 64 * 1024 * 1024;

/**
 * The file's text; undefined when it holds more than `limit` bytes (read no further), null
 * when it is not UTF-8 (never read with replacement characters: two spellings would seed one
 * user, as a request's bytes never do).
 */
async function readAtMost(path: string, limit: number): Promise<string | undefined | null> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    n += chunk.length;
    if (n > limit) return undefined;
    chunks.push(chunk);
  }
  const bytes = Buffer.concat(chunks);
  return isUtf8(bytes) ? bytes.toString('utf8') : null;
}

/** The longest fixture session id, in characters (code points). */
const MAX_FIXTURE_SESSION_ID = 1024;

const fixtureType = Type.Object({
  sessions: Type.Array(
    Type.Object({
      // Their lengths in characters are checked below: TypeBox counts UTF-16 units.
      session_id: Type.String({ minLength: 1 }),
      user_id: Type.String({ minLength: 1 }),
      ttl: Type.Optional(Type.Integer({ minimum: 1, maximum: 31_536_000 })),
      data: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    }),
  ),
});
const fixtureSchema = TypeCompiler.Compile(fixtureType);

/**
 * Seeds sessions from a fixture file (docs/protocol.md, Fixtures): for tests and demos only,
 * and said so on stderr. A bad file stops start-up with one line. `read`: the file's sessions,
 * when `readFixtures` has read them already.
 */
export async function loadFixtures(gateway: Gateway, path: string, read?: Static<typeof fixtureType>['sessions']): Promise<number> {
  const sessions = read ?? (await readFixtures(path));
  for (const s of sessions) await gateway.sessions.seed(s.session_id, s.user_id, s.data, s.ttl ?? gateway.options.sessionTtl);
  gateway.log.warn({ event: 'fixtures loaded', file: path, sessions: sessions.length }, 'FIXTURES LOADED: seeded sessions are for tests and demos only');
  return sessions.length;
}

/** Reads and checks a fixture file (`auth-gateway config` checks it too); a bad file is one ConfigError line. */
export async function readFixtures(path: string): Promise<Static<typeof fixtureType>['sessions']> {
  let read: string | undefined | null;
  try {
    read = await readAtMost(path, MAX_FIXTURE_FILE_BYTES);
  } catch (err) {
    throw new ConfigError(`GATEWAY_FIXTURES: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'read error'})`);
  }
  if (read === undefined) throw new ConfigError(`GATEWAY_FIXTURES: ${path} holds more than ${MAX_FIXTURE_FILE_BYTES} bytes: not a fixture file`);
  if (read === null) throw new ConfigError(`GATEWAY_FIXTURES: ${path} is not UTF-8`);
  const text = read;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    // V8's message quotes a piece of the input, which may be a session id: say only where.
    const at = /position (\d+)/.exec((err as Error).message)?.[1];
    throw new ConfigError(`GATEWAY_FIXTURES: ${path} is not valid JSON${at === undefined ? '' : ` (at character ${at})`}`);
  }
  // The file's own three levels (the object, `sessions`, a session) above each session's data.
  const shape = scanJson(text, MAX_DEPTH + 3);
  if (shape.tooDeep) throw new ConfigError(`GATEWAY_FIXTURES: ${path}: session data must not nest deeper than ${MAX_DEPTH} levels`);
  // As for requests: JSON.parse keeps the last of two members of one name, silently.
  if (countMembers(value) !== shape.members) throw new ConfigError(`GATEWAY_FIXTURES: ${path} has a duplicate member name in a JSON object`);
  if (!fixtureSchema.Check(value)) {
    const e = fixtureSchema.Errors(value).First();
    throw new ConfigError(`GATEWAY_FIXTURES: ${path} is not a fixture file (${e ? `${e.path || '/'}: ${e.message}` : 'bad shape'})`);
  }
  const ids = new Set<string>();
  for (const s of value.sessions) {
    // A second entry would replace the first: one of the two is not what the file says.
    if (ids.has(s.session_id)) throw new ConfigError(`GATEWAY_FIXTURES: ${path}: two sessions have the same session_id (entry ${ids.size + 1})`);
    ids.add(s.session_id);
    if (depthExceeds(s.data, MAX_DEPTH)) throw new ConfigError(`GATEWAY_FIXTURES: ${path}: session data must not nest deeper than ${MAX_DEPTH} levels`);
    // As for requests: Redis would spell a lone surrogate as U+FFFD, merging two users' indexes.
    if (s.session_id.length > MAX_FIXTURE_SESSION_ID && codePointCount(s.session_id) > MAX_FIXTURE_SESSION_ID)
      throw new ConfigError(`GATEWAY_FIXTURES: ${path}: a session_id is longer than ${MAX_FIXTURE_SESSION_ID} characters`);
    if (codePointCount(s.user_id) > MAX_ID) throw new ConfigError(`GATEWAY_FIXTURES: ${path}: a user_id is longer than ${MAX_ID} characters`);
    if (hasLoneSurrogate(s)) throw new ConfigError(`GATEWAY_FIXTURES: ${path}: a session holds ill-formed UTF-16 (a lone surrogate)`);
    // What create_session refuses is not served from a file either.
    if (hasProtoMember(s.data)) throw new ConfigError(`GATEWAY_FIXTURES: ${path}: session data must not have a member named "__proto__"`);
    if (hasNonFinite(s.data)) throw new ConfigError(`GATEWAY_FIXTURES: ${path}: session data must not hold a number out of range`);
  }
  return value.sessions;
}
