import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { describe, expect, it } from 'vitest';
import { CloseCodes, END_REASONS, ErrorCodes } from '../../../src/protocol/codes.js';
import { requestSchemas } from '../../../src/protocol/messages.js';
import { pushSchemas } from '../../../src/protocol/push-schemas.js';
import { repliesTo, replySchemas } from '../../../src/protocol/reply-schemas.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

describe('reply and push schemas', () => {
  it('give every request its replies, and every reply but error a request', () => {
    expect(Object.keys(repliesTo).sort()).toEqual(Object.keys(requestSchemas).sort());
    const answered = new Set(Object.values(repliesTo).flat());
    expect([...Object.keys(replySchemas)].filter((t) => !answered.has(t as never))).toEqual(['error']);
  });

  it('are closed: an unnamed field, a wrong code or a wrong reason fails', () => {
    const created = TypeCompiler.Compile(replySchemas.session_created);
    const ok = { type: 'session_created', in_reply_to: 1, session_id: 'x'.repeat(43), expires_at: 1_900_000_000, expires_in: 60 };
    expect(created.Check(ok)).toBe(true);
    expect(created.Check({ ...ok, extra: 1 })).toBe(false);
    expect(created.Check({ ...ok, in_reply_to: undefined })).toBe(false);
    const error = TypeCompiler.Compile(replySchemas.error);
    for (const code of Object.values(ErrorCodes)) expect(error.Check({ type: 'error', code, text: 't' })).toBe(true);
    expect(error.Check({ type: 'error', in_reply_to: 3, code: 14, text: 't' })).toBe(false);
    const expired = TypeCompiler.Compile(pushSchemas.session_expired);
    for (const reason of END_REASONS) expect(expired.Check({ type: 'session_expired', msg_id: 1, session_id: 's', reason })).toBe(true);
    expect(expired.Check({ type: 'session_expired', msg_id: 1, session_id: 's', reason: 'bored' })).toBe(false);
    expect(expired.Check({ type: 'session_expired', msg_id: 1, session_id: 's', reason: 'ttl', in_reply_to: 1 })).toBe(false);
  });

  it('are what `auth-gateway schema` prints, as plain JSON Schema', () => {
    const out = JSON.parse(execFileSync(process.execPath, ['dist/cli.js', 'schema'], { cwd: ROOT, encoding: 'utf8' })) as Record<
      string,
      Record<string, { properties: Record<string, unknown>; additionalProperties?: boolean }>
    >;
    expect(Object.keys(out).sort()).toEqual(['envelope', 'pushes', 'replies', 'requests']);
    expect(Object.keys(out.requests!).sort()).toEqual(Object.keys(requestSchemas).sort());
    expect(Object.keys(out.replies!).sort()).toEqual(Object.keys(replySchemas).sort());
    expect(Object.keys(out.pushes!).sort()).toEqual(Object.keys(pushSchemas).sort());
    expect(out.replies!.session_created).toMatchObject({
      type: 'object',
      additionalProperties: false,
      required: expect.arrayContaining(['in_reply_to', 'session_id']),
    });
    expect(out.pushes!.session_expired!.properties.reason).toMatchObject({ anyOf: END_REASONS.map((r) => ({ const: r })) });
    expect(JSON.stringify(out)).not.toContain('Symbol');
    // The close codes the client acts on are the ones the server sends.
    expect(CloseCodes).toMatchObject({ SESSION_ENDED: 4001, SESSION_REGENERATED: 4002 });
  });
});
