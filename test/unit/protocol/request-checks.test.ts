/**
 * The request checks compiled ahead of time (src/protocol/request-checks.ts) are those of the
 * schemas in messages.ts, and decode's texts for a violation are the ones TypeBox's own error
 * walk gives: the file is regenerated and compared, and random bodies of every type are
 * checked by both.
 */
import { Type, type TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { ValueErrorType, type ValueError } from '@sinclair/typebox/errors';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { OUTPUT, requestChecksSource } from '../../../scripts/request-checks.mjs';
import { decodeValue } from '../../../src/protocol/decode.js';
import { requestSchemas } from '../../../src/protocol/messages.js';
import { SAMPLES } from './samples.js';

/** decode's text for a body TypeBox refuses, read from TypeBox's first error (the walk decode mirrors). */
function typeboxText(error: ValueError, schema: TSchema): string {
  const field = error.path.replace(/^\//, '').replace(/\//g, '.') || 'body';
  if (error.type === ValueErrorType.ObjectRequiredProperty) return `Missing field "${field}"`;
  const top = field.split('.')[0]!;
  const own = error.path.split('/').length === 2 ? (error.schema as { description?: string }).description : undefined;
  // Inside a field's value (an item of an array): the field's own description, which says what its items must be.
  const property = (schema as { properties?: Record<string, { description?: string }> }).properties?.[top];
  const inner = top === 'data' || top === 'payload' ? 'a JSON object' : property?.description;
  return `Field "${top}" must be ${(error.path.split('/').length === 2 ? own : inner) ?? 'well-formed'}`;
}

const compiled = new Map(Object.entries(requestSchemas).map(([type, schema]) => [type, TypeCompiler.Compile(schema as TSchema)]));

/** Values near and past every limit of the schemas, and of every JSON type. */
const fieldValue = fc.oneof(
  fc.constantFrom(
    '',
    'x',
    'n1',
    'a b',
    'u'.repeat(256),
    'u'.repeat(257),
    'n'.repeat(129),
    0,
    -1,
    1,
    60,
    1.5,
    31_536_000,
    31_536_001,
    253_402_300_800,
    true,
    null,
  ),
  fc.array(fc.constantFrom('n1', 'x'.repeat(129), 3 as unknown), { maxLength: 4 }),
  fc.constant(Array.from({ length: 1025 }, () => 'n')),
  fc.constant(Array.from({ length: 1025 }, () => 7)),
  fc.dictionary(fc.string({ maxLength: 3 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }),
  fc.jsonValue({ maxDepth: 2 }),
);

/** A body of `type`: each of its fields (and one stranger) left out, kept valid or replaced. */
function bodyOf(type: string): fc.Arbitrary<Record<string, unknown>> {
  const s = SAMPLES[type]!;
  const good: Record<string, unknown> = { ...s.required, ...s.optional, extra: 1 };
  const choices = Object.fromEntries(Object.entries(good).map(([k, v]) => [k, fc.oneof(fc.constant<unknown>(undefined), fc.constant(v), fieldValue)] as const));
  return fc.record(choices).map((fields) => {
    const body: Record<string, unknown> = { type, msg_id: 5 };
    for (const [k, v] of Object.entries(fields)) if (v !== undefined) body[k] = v;
    return body;
  });
}

describe('request checks compiled ahead of time', () => {
  it('the committed file is what the generator makes of messages.ts', async () => {
    expect(readFileSync(OUTPUT, 'utf8')).toBe(await requestChecksSource(requestSchemas));
  });

  // The values are plain text of the Basic Multilingual Plane, where TypeBox's lengths (UTF-16
  // units) and the schema's (characters) agree; characters beyond it are the next case's.
  it('accepts and refuses what TypeBox does, with the text of its first error', () => {
    let refused = 0;
    let accepted = 0;
    fc.assert(
      fc.property(
        fc.constantFrom(...Object.keys(SAMPLES)).chain((type) => bodyOf(type)),
        (body) => {
          const check = compiled.get(body.type as string)!;
          const d = decodeValue({ src: 'c', dest: 'gw', body });
          const first = check.Errors(body).First();
          const expected = first === undefined ? undefined : typeboxText(first, requestSchemas[body.type as keyof typeof requestSchemas] as TSchema);
          const got = d.ok ? undefined : d.text;
          // Depth, surrogates and __proto__ are decode's own checks, after the schema's.
          const schemaOnly = got !== undefined && !/nest deeper|UTF-16|__proto__/.test(got) ? got : undefined;
          expect(check.Check(body) ? undefined : schemaOnly).toBe(expected);
          if (expected === undefined) accepted++;
          else refused++;
        },
      ),
      { numRuns: 3000 },
    );
    expect(refused).toBeGreaterThan(500);
    expect(accepted).toBeGreaterThan(100);
  });

  it('counts string lengths in characters (code points), as JSON Schema does, where TypeBox counts UTF-16 units', () => {
    const smile = '\u{1F600}'; // one character, two UTF-16 code units
    const create = (user_id: string) => decodeValue({ src: 'c', dest: 'gw', body: { type: 'create_session', msg_id: 1, user_id } });
    expect(create(smile.repeat(256)).ok).toBe(true);
    expect(create(`${smile.repeat(255)}ab`).ok).toBe(false);
    expect(create(smile.repeat(257))).toMatchObject({ ok: false, text: 'Field "user_id" must be a non-empty string of at most 256 characters' });
    expect(compiled.get('create_session')!.Check({ type: 'create_session', msg_id: 1, user_id: smile.repeat(200) })).toBe(false); // TypeBox's own count
    const login = (idp_sid: string) => decodeValue({ src: 'c', dest: 'gw', body: { type: 'create_session', msg_id: 1, user_id: 'u', idp_sid } });
    expect(login(smile.repeat(256)).ok).toBe(true);
    expect(login(smile.repeat(257)).ok).toBe(false);
    const revoke = (user_id: string) => decodeValue({ src: 'c', dest: 'gw', body: { type: 'revoke_user_tokens', msg_id: 1, user_id } });
    expect(revoke(`${'x'.repeat(100)}${smile.repeat(156)}`).ok).toBe(true);
    expect(revoke(`${'x'.repeat(101)}${smile.repeat(156)}`).ok).toBe(false);
  });

  it('a schema of a kind the generator does not know stops the generation', async () => {
    const odd = { odd: Type.Object({ type: Type.Literal('odd'), when: Type.Date() }) };
    await expect(requestChecksSource(odd)).rejects.toThrow(/property when is a Date/);
  });
});
