import { describe, expect, it } from 'vitest';
import { decode, decodeBody, decodeValue, oversized } from '../../../src/protocol/decode.js';
import { requestSchemas } from '../../../src/protocol/messages.js';
import { jsonSchemas } from '../../../src/protocol/json-schema.js';
import { errorReply, reply } from '../../../src/protocol/replies.js';

import { SAMPLES, wrongValues } from './samples.js';

const env = (body: Record<string, unknown>) => ({ src: 'c9', dest: 'gw', body });

describe('decode', () => {
  it('has a sample for every request type, and each sample passes', () => {
    expect(Object.keys(SAMPLES).sort()).toEqual(Object.keys(requestSchemas).sort());
    for (const [type, s] of Object.entries(SAMPLES)) {
      for (const body of [
        { type, msg_id: 1, ...s.required },
        { type, msg_id: 1, ...s.required, ...s.optional },
      ]) {
        expect(decodeValue(env(body)), type).toMatchObject({ ok: true, src: 'c9', dest: 'gw' });
      }
    }
  });

  it('a missing field is error 12 naming it, with the readable msg_id and ends', () => {
    let n = 0;
    for (const [type, s] of Object.entries(SAMPLES)) {
      for (const field of Object.keys(s.required)) {
        const body: Record<string, unknown> = { type, msg_id: 7, ...s.required };
        delete body[field];
        const d = decodeValue(env(body));
        expect(d, `${type} without ${field}`).toEqual({ ok: false, code: 12, text: `Missing field "${field}"`, src: 'c9', dest: 'gw', msgId: 7 });
        n++;
      }
    }
    expect(n).toBe(19);
  });

  it('a mistyped field is error 12 naming it, required or optional', () => {
    let n = 0;
    for (const [type, s] of Object.entries(SAMPLES)) {
      for (const [field, good] of Object.entries({ ...s.required, ...s.optional })) {
        for (const bad of wrongValues(good)) {
          const d = decodeValue(env({ type, msg_id: 3, ...s.required, [field]: bad }));
          expect(d.ok, `${type}.${field} = ${JSON.stringify(bad)}`).toBe(false);
          if (d.ok) continue;
          expect(d.code).toBe(12);
          expect(d.msgId).toBe(3);
          expect(d.text, `${type}.${field} = ${JSON.stringify(bad)}`).toMatch(new RegExp(`^Field "${field}" must be .+`));
          n++;
        }
      }
    }
    expect(n).toBeGreaterThan(100);
  });

  it('out-of-range values are error 12 naming the field', () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ type: 'create_session', user_id: '' }, 'user_id'],
      [{ type: 'create_session', user_id: 'u'.repeat(257) }, 'user_id'],
      [{ type: 'create_session', user_id: 'u', ttl: 0 }, 'ttl'],
      [{ type: 'create_session', user_id: 'u', ttl: -5 }, 'ttl'],
      [{ type: 'create_session', user_id: 'u', ttl: 2.5 }, 'ttl'],
      [{ type: 'create_session', user_id: 'u', ttl: 31_536_001 }, 'ttl'],
      [{ type: 'init', node_id: '' }, 'node_id'],
      [{ type: 'init', node_id: 'has space' }, 'node_id'],
      [{ type: 'init', node_id: 'n1', node_ids: [1] }, 'node_ids'],
      [{ type: 'revoke_user_tokens', user_id: '' }, 'user_id'],
      [{ type: 'list_sessions', user_id: 5 }, 'user_id'],
    ];
    for (const [body, field] of cases) {
      const d = decodeValue(env({ msg_id: 1, ...body }));
      expect(d, JSON.stringify(body).slice(0, 80)).toMatchObject({ ok: false, code: 12, text: expect.stringContaining(`"${field}"`) });
    }
  });

  it('an unknown type is error 10; a missing or mistyped type is 12', () => {
    for (const type of ['launch_rockets', 'VALIDATE_SESSION', '', 'session_valid', 'error', '__proto__', 'constructor', 'toString']) {
      expect(decodeValue(env({ type, msg_id: 4 })), type).toMatchObject({ ok: false, code: 10, msgId: 4 });
    }
    expect(decodeValue(env({ msg_id: 4 }))).toMatchObject({ ok: false, code: 12, text: 'Missing field "type"', msgId: 4 });
    for (const type of [1, null, true, ['validate_session'], { t: 1 }]) {
      expect(decodeValue(env({ type, msg_id: 4 }))).toMatchObject({ ok: false, code: 12, text: 'Field "type" must be a string', msgId: 4 });
    }
  });

  it('the unknown type text is bounded', () => {
    const d = decodeValue(env({ type: 'x'.repeat(10_000), msg_id: 1 }));
    expect(!d.ok && d.text.length).toBeLessThan(120);
  });

  it('the unknown type text is cut between characters, never inside a surrogate pair', () => {
    // 63 letters and an emoji: cutting at 64 UTF-16 units would leave a lone surrogate in the reply.
    for (const type of [`${'a'.repeat(63)}\u{1F600}`, '\u{1F600}'.repeat(100)]) {
      const d = decodeValue(env({ type, msg_id: 1 }));
      expect(d).toMatchObject({ ok: false, code: 10, msgId: 1 });
      const text = d.ok ? '' : d.text;
      expect(text, JSON.stringify(text)).not.toMatch(/\p{Cs}/u);
      expect(text).toBe(`Unknown message type "${[...type].slice(0, 64).join('')}"`);
    }
  });

  it('msg_id: missing or unreadable means no in_reply_to', () => {
    expect(decodeValue(env({ type: 'validate_session', session_id: 'x' }))).toEqual({
      ok: false,
      code: 12,
      text: 'Missing field "msg_id"',
      src: 'c9',
      dest: 'gw',
      msgId: undefined,
    });
    for (const msg_id of ['1', -1, 1.5, null, true, [1], { n: 1 }, 2 ** 53]) {
      const d = decodeValue(env({ type: 'validate_session', session_id: 'x', msg_id }));
      expect(d, JSON.stringify(msg_id)).toMatchObject({ ok: false, code: 12, text: 'Field "msg_id" must be a non-negative integer', msgId: undefined });
    }
    expect(decodeValue(env({ type: 'validate_session', session_id: 'x', msg_id: 0 })).ok).toBe(true);
  });

  it('not an envelope: error 12, ends only when both are strings', () => {
    for (const v of [null, 1, 'text', [1, 2], true]) {
      expect(decodeValue(v)).toMatchObject({ ok: false, code: 12, text: expect.stringContaining('Not an envelope') });
    }
    expect(decodeValue({ dest: 'gw', body: { type: 'init', msg_id: 1 } })).toMatchObject({ code: 12, text: 'Missing field "src"', msgId: 1 });
    const noEnds = decodeValue({ src: 5, dest: 'gw', body: { msg_id: 1 } });
    expect(noEnds).toMatchObject({ code: 12, text: 'Field "src" must be a string', msgId: 1 });
    expect(noEnds).not.toHaveProperty('dest');
    expect(decodeValue({ src: 'c', body: { msg_id: 1 } })).toMatchObject({ code: 12, text: 'Missing field "dest"' });
    expect(decodeValue({ src: 'c', dest: [], body: {} })).toMatchObject({ code: 12, text: 'Field "dest" must be a string' });
    expect(decodeValue({ src: 'c', dest: 'd' })).toMatchObject({ code: 12, text: 'Missing field "body"', src: 'c', dest: 'd' });
    for (const body of [null, 1, 'b', [1]]) {
      expect(decodeValue({ src: 'c', dest: 'd', body })).toMatchObject({ code: 12, text: 'Field "body" must be a JSON object', msgId: undefined });
    }
  });

  it('non-JSON text whose head holds src, dest and msg_id whole is error 12 addressed to them', () => {
    for (const text of [
      '{"src":"c1","dest":"gw","body":{"msg_id":7,"type":"init"}} trailing',
      '{"src":"c1","dest":"gw","body":{"msg_id":7,"type":"create_session","user_id":"u",}}',
      '{"src":"c1","dest":"gw","body":{"type":"x","msg_id":7,"data":{"a":tru}}}',
    ]) {
      expect(decode(text), text).toEqual({ ok: false, code: 12, text: 'Malformed JSON', src: 'c1', dest: 'gw', msgId: 7 });
    }
    // A msg_id that is not one (not a whole number) addresses nothing; ends without a msg_id still do.
    expect(decode('{"src":"c1","dest":"gw","body":{"msg_id":1.5,}}')).toEqual({ ok: false, code: 12, text: 'Malformed JSON', src: 'c1', dest: 'gw' });
    // Over HTTP (a bare body), the same.
    expect(decodeBody('{"msg_id":9,"type":"init",}', 'client', 'gateway')).toEqual({
      ok: false,
      code: 12,
      text: 'Malformed JSON',
      src: 'client',
      dest: 'gateway',
      msgId: 9,
    });
  });

  it('non-JSON text is error 12 with nothing readable', () => {
    for (const text of ['{this is not json', '', ' ', 'nul', '\u0000', '[1,2', "{'a':1}"]) {
      expect(decode(text), JSON.stringify(text)).toEqual({ ok: false, code: 12, text: 'Malformed JSON' });
    }
    // A msg_id cut off by the end of the text is not read (nothing is guessed); the ends are.
    expect(decode('{"src":"a","dest":"b","body":{"msg_id":1')).toEqual({ ok: false, code: 12, text: 'Malformed JSON', src: 'a', dest: 'b' });
  });

  it('extra fields are allowed; __proto__ in JSON is inert', () => {
    const d = decode('{"src":"a","dest":"b","extra":1,"body":{"type":"validate_session","msg_id":1,"session_id":"x","more":[1],"__proto__":{"polluted":1}}}');
    expect(d.ok).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('a payload or data with a member named __proto__, at any depth, is error 12 naming the field', () => {
    const cases: [string, string][] = [
      ['payload', '"type":"generate_access_token","payload":{"sub":"u","__proto__":{"admin":true}}'],
      ['payload', '"type":"generate_access_token","payload":{"sub":"u","roles":[{"__proto__":{"admin":true}}]}'],
      ['data', '"type":"create_session","user_id":"u","data":{"__proto__":null}'],
      ['data', '"type":"create_session","user_id":"u","data":{"a":{"b":{"__proto__":1}}}'],
    ];
    for (const [field, body] of cases) {
      expect(decode(`{"src":"a","dest":"b","body":{"msg_id":4,${body}}}`), body).toEqual({
        ok: false,
        code: 12,
        text: `Field "${field}" must not have a member named "__proto__"`,
        src: 'a',
        dest: 'b',
        msgId: 4,
      });
    }
    // A member that merely mentions it, or a string value, is fine.
    expect(decode('{"src":"a","dest":"b","body":{"msg_id":4,"type":"generate_access_token","payload":{"x__proto__":"__proto__"}}}').ok).toBe(true);
  });

  it('a payload or data holding a number JSON cannot spell (1e400 parses as Infinity) is error 12 naming the field', () => {
    const cases: [string, string][] = [
      ['payload', '"type":"generate_access_token","payload":{"sub":"u","quota":1e400}'],
      ['payload', '"type":"generate_access_token","payload":{"sub":"u","q":[1,-1e999]}'],
      ['data', '"type":"create_session","user_id":"u","data":{"limit":1e400}'],
      ['data', '"type":"update_session","session_id":"s","data":{"a":{"b":[{"c":-2e308}]}}'],
    ];
    for (const [field, body] of cases) {
      expect(decode(`{"src":"a","dest":"b","body":{"msg_id":4,${body}}}`), body).toEqual({
        ok: false,
        code: 12,
        text: `Field "${field}" must not hold a number out of range`,
        src: 'a',
        dest: 'b',
        msgId: 4,
      });
      // The same over HTTP, where the body comes bare.
      expect(decodeBody(`{"msg_id":4,${body}}`, 'a', 'b')).toMatchObject({ ok: false, code: 12, text: `Field "${field}" must not hold a number out of range` });
    }
    // The largest finite numbers, and those that round to zero, are numbers JSON can spell.
    expect(
      decode('{"src":"a","dest":"b","body":{"msg_id":4,"type":"create_session","user_id":"u","data":{"a":1.7976931348623157e308,"b":1e-400,"c":-0}}}').ok,
    ).toBe(true);
  });

  it('oversized: error 12 with the limit; in_reply_to only from a parsed value', () => {
    expect(oversized(70_000, 65_536)).toEqual({ ok: false, code: 12, text: 'Message too large (70000 bytes): the limit is 65536 bytes' });
    expect(oversized(undefined, 10).text).toBe('Message too large: the limit is 10 bytes');
    expect(oversized(99, 10, { src: 'a', dest: 'b', body: { msg_id: 9 } })).toMatchObject({ src: 'a', dest: 'b', msgId: 9 });
  });
});

describe('nesting depth of application JSON', () => {
  const nest = (n: number): unknown => (n === 0 ? 1 : [nest(n - 1)]);
  const env = (body: Record<string, unknown>) => JSON.stringify({ src: 'c', dest: 'g', body: { msg_id: 5, ...body } });

  it('accepts data and payload up to 32 levels, refuses deeper with error 12 naming the field', () => {
    expect(decode(env({ type: 'create_session', user_id: 'u', data: { x: nest(31) } })).ok).toBe(true);
    expect(decode(env({ type: 'create_session', user_id: 'u', data: { x: nest(32) } }))).toMatchObject({
      ok: false,
      code: 12,
      msgId: 5,
      text: 'Field "data" must not nest deeper than 32 levels',
    });
    expect(decode(env({ type: 'generate_access_token', payload: { x: nest(40) } }))).toMatchObject({
      ok: false,
      code: 12,
      text: expect.stringContaining('"payload"'),
    });
  });

  it('refuses 20,000 levels (well under the size limit) without overflowing the stack', () => {
    const text = `{"src":"c","dest":"g","body":{"type":"create_session","msg_id":1,"user_id":"u","data":{"x":${'['.repeat(20_000)}${']'.repeat(20_000)}}}}`;
    expect(text.length).toBeLessThan(65_536);
    expect(decode(text)).toMatchObject({ ok: false, code: 12, msgId: 1 });
  });
});

describe('duplicate member names and deep nesting, found without a full parse (issue 14)', () => {
  it('refuses a duplicate name at any level with error 12, keeping what is readable', () => {
    const dup = [
      '{"src":"a","dest":"b","body":{"type":"validate_session","msg_id":4,"session_id":"x","session_id":"y"}}',
      '{"src":"a","dest":"b","src":"c","body":{"type":"validate_session","msg_id":4,"session_id":"x"}}',
      '{"src":"a","dest":"b","body":{"type":"create_session","msg_id":4,"user_id":"u","data":{"k":[{"r":1,"r":2}]}}}',
      '{"src":"a","dest":"b","body":{"type":"generate_access_token","msg_id":4,"payload":{"sub":"u","\\u0073ub":"v"}}}',
    ];
    for (const text of dup) expect(decode(text), text).toMatchObject({ ok: false, code: 12, msgId: 4, text: 'Duplicate member name in a JSON object' });
    // Colons and quotes inside strings are not members.
    const ok = '{"src":"a:b","dest":"\\"b:\\"","body":{"type":"validate_session","msg_id":4,"session_id":"x:y:\\\\"}}';
    expect(decode(ok).ok).toBe(true);
  });

  it('refuses nesting beyond 70 levels from the text, with the msg_id of its head', () => {
    const text = `{"src":"c","dest":"g","body":{"type":"validate_session","msg_id":8,"session_id":"s","x":${'{"a":'.repeat(100)}1${'}'.repeat(100)}}}`;
    expect(decode(text)).toEqual({ ok: false, src: 'c', dest: 'g', msgId: 8, code: 12, text: 'Message nests deeper than 70 levels' });
    // Brackets inside strings do not count.
    expect(decode(JSON.stringify({ src: 'c', dest: 'g', body: { type: 'validate_session', msg_id: 1, session_id: '['.repeat(500) } })).ok).toBe(true);
  });
});

describe('a message nesting too deep: its error is addressed from anywhere in it', () => {
  const deep = (levels: number) => `${'['.repeat(levels)}${']'.repeat(levels)}`;
  const refusal = { ok: false, src: 'c', dest: 'g', code: 12, text: 'Message nests deeper than 70 levels' };

  it('finds a top-level msg_id and the ends past the first 1024 characters', () => {
    const text = `{"body":{"type":"verify_token","token":"x","extra":${deep(600)},"msg_id":5},"src":"c","dest":"g"}`;
    expect(text.length).toBeGreaterThan(1024);
    expect(JSON.parse(text)).toMatchObject({ body: { msg_id: 5 } }); // valid JSON: the msg_id is readable
    expect(decode(text)).toEqual({ ...refusal, msgId: 5 });
  });

  it('reads past 200,000 levels in one pass (no recursion to overflow), and never takes a msg_id nested below the body', () => {
    expect(decode(`{"src":"c","dest":"g","body":{"x":${deep(200_000)},"msg_id":6}}`)).toEqual({ ...refusal, msgId: 6 });
    expect(decode(`{"src":"c","dest":"g","body":{"type":"verify_token","x":[{"msg_id":9},${deep(100)}]}}`)).toEqual({ ...refusal, msgId: undefined });
  });
});

describe('replies', () => {
  it('a reply swaps src and dest and carries in_reply_to', () => {
    expect(reply({ src: 'client', dest: 'gw' }, 5, { type: 'init_ok' })).toEqual({ src: 'gw', dest: 'client', body: { type: 'init_ok', in_reply_to: 5 } });
  });

  it('an error reply without readable ends comes from the node; without msg_id has no in_reply_to', () => {
    expect(errorReply({}, 'node1', 12, 'Malformed JSON')).toEqual({ src: 'node1', body: { type: 'error', code: 12, text: 'Malformed JSON' } });
    expect(errorReply({ src: 'a', dest: 'b', msgId: 0 }, 'n', 10, 't')).toEqual({
      src: 'b',
      dest: 'a',
      body: { type: 'error', in_reply_to: 0, code: 10, text: 't' },
    });
  });
});

describe('messages', () => {
  it('exports every request as JSON Schema', () => {
    const s = jsonSchemas() as { requests: Record<string, { required: string[] }> };
    expect(Object.keys(s.requests).sort()).toEqual(Object.keys(SAMPLES).sort());
    for (const [type, sample] of Object.entries(SAMPLES)) {
      expect(s.requests[type]!.required.sort()).toEqual(['msg_id', 'type', ...Object.keys(sample.required)].sort());
    }
  });
});

describe('encode', () => {
  it('turns a reply that cannot be serialized into error 13 to the same request', async () => {
    const { encode } = await import('../../../src/protocol/replies.js');
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const text = encode({ src: 'g', dest: 'c', body: { type: 'session_valid', in_reply_to: 9, user_id: 'u', expires_in: 1, data: cyclic } });
    expect(JSON.parse(text)).toEqual({
      src: 'g',
      dest: 'c',
      body: { type: 'error', in_reply_to: 9, code: 13, text: 'Internal error: the reply could not be serialized' },
    });
    expect(encode({ src: 'g', dest: 'c', body: { type: 'init_ok', in_reply_to: 1 } })).toBe('{"src":"g","dest":"c","body":{"type":"init_ok","in_reply_to":1}}');
  });
});

describe('a field whose items break its limits', () => {
  it('is refused with a text that says what the items must be, not "well-formed"', () => {
    const env = (body: Record<string, unknown>) => ({ src: 'c', dest: 'gw', body: { msg_id: 1, ...body } });
    const text = 'Field "node_ids" must be an array of at most 1024 strings of at most 128 characters';
    for (const node_ids of [['n'.repeat(129)], [1], Array.from({ length: 1025 }, (_, i) => `n${i}`)])
      expect(decodeValue(env({ type: 'init', node_id: 'n1', node_ids })), JSON.stringify(node_ids).slice(0, 40)).toMatchObject({ ok: false, code: 12, text });
  });
});
