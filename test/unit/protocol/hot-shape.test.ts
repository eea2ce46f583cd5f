import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decode, decodeFull } from '../../../src/protocol/decode.js';
import { freezeWithJson, jsonOf } from '../../../src/protocol/frozen-json.js';
import { readHotShape } from '../../../src/protocol/hot-shape.js';
import { requestSchemas } from '../../../src/protocol/messages.js';
import { encode, reply } from '../../../src/protocol/replies.js';

const TYPES = [...Object.keys(requestSchemas), 'launch_rockets', 'constructor', '__proto__', 'VALIDATE'];
const KEYS = ['session_id', 'token', 'user_id', 'type', 'msg_id', '__proto__', 'constructor', 'data', 'node_id', 'handle', 'refresh_token', 'old_session_id'];
/** Strings the hot shape takes, and the characters that must send a message to the full decode. */
const text = fc.oneof(
  fc.string({ maxLength: 50 }),
  fc.stringMatching(/^[A-Za-z0-9_.:-]{0,60}$/),
  fc.constantFrom('', ' ', '"', '\\', '\\"', '\\u0041', '\ud800', '\u00e9', '😀', ':', '\t', '\u007f', 'a"b', 'x\\ny'),
);
const msgId = fc.oneof(
  fc.constantFrom('0', '1', '007', '-1', '1.0', '1e3', '9007199254740991', '9007199254740992', '99999999999999999', '"1"', 'null'),
  fc.nat().map(String),
);

describe('the hot shape', () => {
  it('reads the canonical validate_session and verify_token messages', () => {
    expect(readHotShape('{"src":"c1","dest":"gw","body":{"type":"validate_session","msg_id":7,"session_id":"abc-_"}}')).toEqual({
      src: 'c1',
      dest: 'gw',
      type: 'validate_session',
      msgId: 7,
      key: 'session_id',
      value: 'abc-_',
    });
    expect(readHotShape('{"src":"c1","dest":"gw","body":{"type":"verify_token","msg_id":0,"token":"a.b.c"}}')).toMatchObject({ key: 'token', value: 'a.b.c' });
  });

  it('leaves every other spelling to the full decode', () => {
    for (const t of [
      '{"src":"c1","dest":"gw","body":{"type":"validate_session","msg_id":7,"session_id":"a\\u0041"}}',
      '{"src":"c1","dest":"gw","body":{"type":"validate_session","msg_id":7,"session_id":"a\\"b"}}',
      '{"src":"c1","dest":"gw","body":{"type":"validate_session","msg_id":07,"session_id":"a"}}',
      '{"src":"c1","dest":"gw","body":{"type":"validate_session","msg_id":1.0,"session_id":"a"}}',
      '{"src":"c1","dest":"gw","body":{"type":"validate_session","msg_id":99999999999999999,"session_id":"a"}}',
      '{"src":"c1", "dest":"gw","body":{"type":"validate_session","msg_id":7,"session_id":"a"}}',
      '{"dest":"gw","src":"c1","body":{"type":"validate_session","msg_id":7,"session_id":"a"}}',
      '{"src":"c1","dest":"gw","body":{"type":"validate_session","msg_id":7,"msg_id":8}}',
      '{"src":"c1","dest":"gw","body":{"type":"validate_session","msg_id":7,"session_id":"é"}}',
      '{"src":"c1","dest":"gw","body":{"type":"validate_session","msg_id":7,"session_id":"a"}} ',
      '{"src":"c1","dest":"gw","body":{"type":"validate_session","msg_id":7,"session_id":"a"},"traceparent":"x"}',
    ]) {
      expect(readHotShape(t), t).toBeUndefined();
    }
  });

  it('decode answers exactly what the full decode answers, whichever path reads the message', () => {
    let hot = 0;
    fc.assert(
      fc.property(text, text, fc.constantFrom(...TYPES), msgId, fc.constantFrom(...KEYS), text, fc.boolean(), (src, dest, type, id, key, value, raw) => {
        // Raw: the strings spliced in as they are (often not JSON at all); else JSON-escaped.
        const q = (s: string) => (raw ? `"${s}"` : JSON.stringify(s));
        const line = `{"src":${q(src)},"dest":${q(dest)},"body":{"type":${q(type)},"msg_id":${id},${q(key)}:${q(value)}}}`;
        if (readHotShape(line) !== undefined) hot++;
        expect(decode(line)).toEqual(decodeFull(line));
      }),
      { numRuns: 5000 },
    );
    // The property is only worth something if both paths were taken often.
    expect(hot).toBeGreaterThan(500);
  });
});

describe('the hot replies', () => {
  it('a payload whose JSON text is remembered can no longer change, however deep', () => {
    const payload = freezeWithJson({ sub: 'u1', roles: ['a'], profile: { name: 'x', tags: [{ k: 1 }] } });
    // Modules are strict: a write to a frozen object throws rather than leave the text stale.
    expect(() => ((payload as Record<string, unknown>).sub = 'u2')).toThrow(TypeError);
    expect(() => payload.roles.push('b')).toThrow(TypeError);
    expect(() => ((payload.profile.tags[0] as Record<string, unknown>).k = 2)).toThrow(TypeError);
    expect(() => delete (payload.profile as Record<string, unknown>).name).toThrow(TypeError);
    expect(jsonOf(payload)).toBe('{"sub":"u1","roles":["a"],"profile":{"name":"x","tags":[{"k":1}]}}');
    // Anything else is serialized as it is now.
    const open = { a: 1 };
    expect(jsonOf(open)).toBe('{"a":1}');
    open.a = 2;
    expect(jsonOf(open)).toBe('{"a":2}');
  });

  it('session_valid and token_valid are encoded to the very text JSON.stringify makes', () => {
    const any = fc.oneof(fc.string({ maxLength: 30 }), fc.constantFrom('"', '\\', '\ud800', '\u2028', '😀', '</script>', '\u0000'));
    const int = fc.oneof(fc.nat(), fc.constantFrom(0, 1, Number.MAX_SAFE_INTEGER));
    fc.assert(
      fc.property(
        any,
        any,
        any,
        int,
        int,
        fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 })),
        (src, dest, user, expiresIn, msgId, payload) => {
          const valid = reply({ src: dest, dest: src }, msgId, { type: 'session_valid', user_id: user, expires_in: expiresIn });
          expect(encode(valid)).toBe(JSON.stringify(valid));
          const token = reply({ src: dest, dest: src }, msgId, { type: 'token_valid', payload: payload as never });
          expect(encode(token)).toBe(JSON.stringify(token));
          // A verified token's payload, frozen with its text remembered (the verify cache's).
          const frozen = reply({ src: dest, dest: src }, msgId, { type: 'token_valid', payload: freezeWithJson(structuredClone(payload)) as never });
          expect(encode(frozen)).toBe(JSON.stringify(frozen));
          const withData = reply({ src: dest, dest: src }, msgId, { type: 'session_valid', user_id: user, expires_in: expiresIn, data: payload });
          expect(encode(withData)).toBe(JSON.stringify(withData));
        },
      ),
      { numRuns: 2000 },
    );
  });
});
