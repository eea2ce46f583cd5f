import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisServer } from '../helpers/redis-server.js';
import { freshNamespace, redisStore } from '../store/redis-harness.js';
import { Driver, makeGateway } from '../unit/harness.js';

/**
 * Redis sees keys as UTF-8, which turns every lone surrogate into U+FFFD: `"alice\ud800"` and
 * `"alice\ufffd"` then name one user index. Ill-formed text that would be stored or signed is
 * refused at the door (error 12); a name only looked up names nothing, and every user-wide
 * operation checks the owner of each record it acts on.
 */
describe('ill-formed UTF-16: refused with error 12 where it would be stored or signed; a name looked up names nothing', () => {
  const lone = ['alice\ud800', 'x\udc00y', '\ud83d', 'ok\ud83d\ude00but\udfff'];
  /** Fields whose text is stored or signed: error 12 naming the field. */
  const stored = (v: string): Record<string, unknown>[] => [
    { type: 'create_session', user_id: v },
    { type: 'revoke_user_tokens', user_id: v },
    { type: 'generate_access_token', payload: { sub: v } },
    { type: 'generate_access_token', payload: { [v]: 1 } },
    { type: 'create_session', user_id: 'alice', data: { nested: [{ k: v }] } },
  ];
  /** Fields that only name what is looked up: the typed reply of "nothing by that name". */
  const named = (v: string): [Record<string, unknown>, Record<string, unknown>][] => [
    [{ type: 'validate_session', session_id: v }, { type: 'session_invalid' }],
    [{ type: 'regenerate_session', old_session_id: v }, { type: 'session_invalid' }],
    [{ type: 'destroy_session', session_id: v }, { type: 'session_destroyed' }],
    [{ type: 'subscribe_session', session_id: v }, { type: 'session_invalid' }],
    [{ type: 'unsubscribe_session', session_id: v }, { type: 'unsubscribed' }],
    [
      { type: 'list_sessions', user_id: v },
      { type: 'sessions', sessions: [] },
    ],
    [{ type: 'destroy_session_handle', user_id: 'alice', handle: v }, { type: 'session_destroyed' }],
    [{ type: 'destroy_session_handle', user_id: v, handle: 'h' }, { type: 'session_destroyed' }],
    [
      { type: 'revoke_user_sessions', user_id: v },
      { type: 'sessions_revoked', count: 0 },
    ],
    [
      { type: 'revoke_user_sessions', user_id: 'nobody', except_session_id: v },
      { type: 'sessions_revoked', count: 0 },
    ],
    [{ type: 'verify_token', token: v }, { type: 'token_invalid' }],
    [{ type: 'refresh_token', refresh_token: v }, { type: 'token_invalid' }],
    [{ type: 'exchange_session', session_id: v }, { type: 'session_invalid' }],
    // Fields a request does not define are ignored (docs/protocol.md, Envelope), and `node_ids` is neither stored nor signed.
    [{ type: 'validate_session', session_id: 'x', note: v }, { type: 'session_invalid' }],
    [{ type: 'create_session', user_id: 'bob', comment: { [v]: [v] } }, { type: 'session_created' }],
    [{ type: 'generate_access_token', payload: { sub: 'bob' }, label: v }, { type: 'token_generated' }],
    [{ type: 'init', node_id: 'n', node_ids: [v] }, { type: 'init_ok' }],
  ];

  it('every field, every request type', async () => {
    const { gateway } = makeGateway();
    const d = new Driver(gateway);
    // A live session of a user whose id differs from the looked-up ones only by the surrogate.
    const alice = (await d.call({ type: 'create_session', user_id: 'alice\ufffd' })).session_id as string;
    let n = 0;
    for (const v of lone) {
      for (const body of stored(v)) {
        const field = Object.keys(body).find((k) => k !== 'type' && JSON.stringify(body[k]).includes(JSON.stringify(v).slice(1, -1)));
        const reply = await d.call(body as { type: string });
        expect(reply, `${body.type} ${JSON.stringify(body)}`).toMatchObject({
          type: 'error',
          code: 12,
          text: `Field "${field}" must be well-formed UTF-16 text (no lone surrogate)`,
        });
        n++;
      }
      for (const [body, answer] of named(v)) {
        expect(await d.call(body as { type: string }), `${body.type} ${JSON.stringify(body)}`).toMatchObject(answer);
        n++;
      }
    }
    expect(n).toBe(lone.length * (stored('').length + named('').length));
    expect((await d.call({ type: 'validate_session', session_id: alice })).type).toBe('session_valid');
    // Well-formed text, astral characters included, is served as before.
    expect(await d.call({ type: 'create_session', user_id: 'ok\ud83d\ude00\ufffd' })).toMatchObject({ type: 'session_created' });
  });
});

describe('user-wide operations on Redis never touch another user whose id the store spells the same', () => {
  let redis: RedisServer;

  beforeAll(async () => {
    redis = await RedisServer.start();
  });

  afterAll(async () => {
    await redis?.stop();
  });

  it('"alice\\ufffd" cannot revoke, list or destroy the sessions of "alice\\ud800" (created below the protocol)', async () => {
    const namespace = freshNamespace();
    const store = await redisStore(redis.url, namespace);
    // The Redis side prunes index members on real time: start the manual clock now.
    const { gateway } = makeGateway({ store, start: Date.now() });
    try {
      const sessions = gateway.sessions;
      // The protocol refuses this id now; fixtures or an older node could still have stored one.
      const victim = await sessions.create('alice\ud800', { who: 'victim' });
      const own = await sessions.create('alice\ufffd', undefined);
      expect(await sessions.revokeUser('alice\ufffd')).toBe(1);
      expect((await sessions.validate(own.sessionId)).valid).toBe(false);
      expect((await sessions.validate(victim.sessionId)).valid).toBe(true);
      expect(await sessions.list('alice\ufffd')).toEqual([]);
      expect(await sessions.destroyHandle('alice\ufffd', victim.hash)).toBe(false);
      expect((await sessions.validate(victim.sessionId)).valid).toBe(true);
      // The owner still can.
      expect((await sessions.list('alice\ud800')).map((s) => s.handle)).toEqual([victim.hash]);
      expect(await sessions.revokeUser('alice\ud800')).toBe(1);
      expect((await sessions.validate(victim.sessionId)).valid).toBe(false);
    } finally {
      await gateway.close();
    }
  });
});
