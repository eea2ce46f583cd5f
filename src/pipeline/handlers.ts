import { GatewayError } from '../errors.js';
import { andThen } from '../maybe-promise.js';
import { codePointCount } from '../protocol/code-points.js';
import type { DecodedRequest } from '../protocol/decode.js';
import type { RequestOf, RequestType } from '../protocol/messages.js';
import type { ReplyDraft, repliesTo } from '../protocol/reply-schemas.js';
import { unixSeconds } from '../sessions/records.js';
import { INVALID } from '../sessions/session-service.js';
import { SessionEndedError } from '../tokens/refresh-families.js';
import { DEFAULT_SUBSCRIBERS_PER_SESSION, type FollowOptions, type HandlerContext } from './services.js';

/** The drafts a request of type `T` may be answered with (repliesTo): the compiler holds each handler to them. */
type DraftTo<T extends RequestType> = ReplyDraft<(typeof repliesTo)[T][number]>;
type Handler<T extends RequestType> = (c: HandlerContext, req: DecodedRequest, body: RequestOf<T>) => Promise<DraftTo<T>> | DraftTo<T>;

/** The least a browser's extend_session must move its session's end by to change anything. */
const BROWSER_EXTEND_MIN_MOVE_MS = 1000;

/** The longest `src` a browser may subscribe under (as `init`'s `node_id`): the subscription keeps it. */
const MAX_BROWSER_SRC = 128;

const invalidSession = (error: string): ReplyDraft<'session_invalid'> => ({ type: 'session_invalid', error });
const invalidToken = (error: string): ReplyDraft<'token_invalid'> => ({ type: 'token_invalid', error });

/** One handler per request type: reads the request, calls the services, builds the reply body (a fresh object each time: `reply` completes it in place). */
export const handlers: { [T in RequestType]: Handler<T> } = {
  init(c, _req, b) {
    c.nodeId = b.node_id;
    // A page cannot read its HttpOnly cookie: after each open its client asks here whether the
    // socket is bound, and so learns of a session that ended with no socket to push it to.
    return c.untrusted ? { type: 'init_ok', bound: c.boundSession !== undefined } : { type: 'init_ok' };
  },

  async create_session(c, _req, b) {
    const s = await c.gateway.sessions.create(b.user_id, b.data, b.ttl, { sid: b.idp_sid, sub: b.idp_sub }, c);
    return { type: 'session_created', session_id: s.sessionId, expires_at: s.expiresAt, expires_in: s.expiresIn };
  },

  // Not async: on the memory store the whole request is served without a Promise.
  validate_session(c, _req, b) {
    return andThen(c.gateway.sessions.validate(b.session_id), (v) => {
      if (!v.valid) return invalidSession(v.error);
      if (c.gateway.options.sessionIdleTimeout > 0) c.gateway.hub.moved(v.hash, v.end, v.endReason);
      const body: ReplyDraft<'session_valid'> = { type: 'session_valid', user_id: v.record.u, expires_in: v.expiresIn };
      if (v.record.d !== undefined) body.data = v.record.d;
      return body;
    });
  },

  async regenerate_session(c, _req, b) {
    const s = await c.gateway.sessions.regenerate(b.old_session_id, c);
    if ('error' in s) return invalidSession(s.error);
    return { type: 'session_regenerated', new_session_id: s.sessionId, expires_at: s.expiresAt, expires_in: s.expiresIn };
  },

  async destroy_session(c, _req, b) {
    await c.gateway.sessions.destroy(b.session_id, 'destroyed', c);
    return { type: 'session_destroyed', message: 'Session destroyed' };
  },

  async subscribe_session(c, req, b) {
    // A subscription keeps its `src` (the pushes' `dest`) for its life: a browser's is bounded.
    const src = req.src;
    // Characters are code points (an emoji is one); only a src long in UTF-16 units is counted.
    if (c.untrusted && src.length > MAX_BROWSER_SRC && codePointCount(src) > MAX_BROWSER_SRC)
      throw new GatewayError('MALFORMED', `Field "src" must be at most ${MAX_BROWSER_SRC} characters on a browser connection`);
    const sessions = c.gateway.sessions;
    const v = await sessions.peek(sessions.hashOf(b.session_id));
    if (!v.valid) return invalidSession(v.error);
    const sessionId = b.session_id;
    const key = c.subscriptionKey(src);
    // Subscribed before (told `subscribed`): that subscription goes on covering every end while
    // this repeat is answered, and is replaced (a browser's new `src`) only once it succeeds; a
    // repeat that fails leaves it as it was.
    const already = c.follows(key, v.hash);
    // A new subscriber is one once answered `subscribed`: an end heard before that (between the
    // follow and the second look below) is not pushed, and the answer is `session_invalid`.
    let confirmed = false;
    let endedMeanwhile = false;
    const how: FollowOptions = {
      onEnded: (reason) => {
        if (confirmed) c.push(src, { type: 'session_expired', session_id: sessionId, reason });
        else endedMeanwhile = true;
      },
      onExtended: (expiresIn) => c.push(src, { type: 'session_extended', session_id: sessionId, expires_in: expiresIn }),
      // It named the id, so it could read the data with validate_session anyway.
      onUpdated: (data) => c.push(src, { type: 'session_updated', session_id: sessionId, data }),
    };
    const refused = already ? undefined : c.follow(key, v.hash, sessionId, v.end, v.endReason, how);
    if (refused === 'connection_full')
      throw new GatewayError('RATE_LIMITED', `Too many subscriptions on this connection (limit ${c.gateway.options.maxSubscriptions})`);
    if (refused === 'session_full')
      throw new GatewayError(
        'RATE_LIMITED',
        `Too many subscribers of this session (limit ${c.gateway.options.maxSubscribersPerSession ?? DEFAULT_SUBSCRIBERS_PER_SESSION})`,
      );
    // An end between the check above and the follow would reach no one, and the follow would
    // wait for the ttl: look again now that any later end is sure to be pushed.
    let again: Awaited<ReturnType<typeof sessions.peek>>;
    try {
      again = await sessions.peek(v.hash);
    } catch (err) {
      // Answered error 11: a new subscriber was not told `subscribed`, so it follows nothing.
      if (!already) c.unfollow(key, v.hash);
      throw err;
    }
    // A repeat whose earlier subscription was told the end meanwhile: it follows nothing now.
    if (already && !c.follows(key, v.hash)) return invalidSession(INVALID.error);
    if (!again.valid || endedMeanwhile) {
      // A subscriber told `subscribed` earlier is owed its session_expired: the hub looks at
      // the store now and pushes it. A new one was never told, so it simply follows nothing.
      if (already) c.gateway.hub.recheck(v.hash, true);
      else c.unfollow(key, v.hash);
      return invalidSession(again.valid ? INVALID.error : again.error);
    }
    confirmed = true;
    // The repeat takes over from the subscription it found, with no moment between them.
    if (already) c.follow(key, v.hash, sessionId, again.end, again.endReason, how);
    return { type: 'subscribed', session_id: sessionId, expires_in: again.expiresIn };
  },

  unsubscribe_session(c, req, b) {
    c.unfollow(c.subscriptionKey(req.src), c.gateway.sessions.hashOf(b.session_id));
    return { type: 'unsubscribed', session_id: b.session_id };
  },

  async list_sessions(c, _req, b) {
    return { type: 'sessions', sessions: await c.gateway.sessions.list(b.user_id) };
  },

  async destroy_session_handle(c, _req, b) {
    await c.gateway.sessions.destroyHandle(b.user_id, b.handle, c);
    return { type: 'session_destroyed', message: 'Session destroyed' };
  },

  async revoke_user_sessions(c, _req, b) {
    const count = await c.gateway.sessions.revokeUser(b.user_id, b.except_session_id, c);
    return { type: 'sessions_revoked', count };
  },

  async generate_access_token(c, _req, b) {
    return { type: 'token_generated', ...(await c.gateway.tokens.generate(b.payload, undefined, c)) };
  },

  verify_token(c, _req, b) {
    // verify() accepts only tokens whose exp, iat and jti are well typed.
    return andThen(c.gateway.tokens.verify(b.token, c), (v) =>
      v.valid ? { type: 'token_valid', payload: v.payload as ReplyDraft<'token_valid'>['payload'] } : invalidToken(v.error),
    );
  },

  async refresh_token(c, _req, b) {
    const r = await c.gateway.tokens.refresh(b.refresh_token, c);
    return 'error' in r ? invalidToken(r.error) : { type: 'token_refreshed', ...r };
  },

  async revoke_token(c, _req, b) {
    const r = await c.gateway.tokens.revoke(b.token, c);
    return 'error' in r ? invalidToken(r.error) : { type: 'token_revoked' };
  },

  async extend_session(c, _req, b) {
    let hash: string;
    if (c.untrusted) {
      // A browser extends the session of its cookie, never one it names.
      if (b.session_id !== undefined) throw new GatewayError('FORBIDDEN', 'A browser connection may extend only its own session: send no session_id');
      if (c.boundSession === undefined) return invalidSession('No session: this connection is not bound to one');
      hash = c.boundSession;
    } else {
      if (b.session_id === undefined) throw new GatewayError('MALFORMED', 'Field "session_id" is required on a service connection');
      hash = c.gateway.sessions.hashOf(b.session_id);
    }
    // A browser's extend that would move the end by less than a second (sent again within the
    // second, or at the maximum lifetime) changes nothing: its followers are told once a second at most.
    const v = await c.gateway.sessions.extend(hash, b.ttl, c, c.untrusted ? BROWSER_EXTEND_MIN_MOVE_MS : 0);
    if (!v.valid) return invalidSession(v.error);
    return { type: 'session_extended', expires_at: unixSeconds(v.end), expires_in: v.expiresIn };
  },

  async update_session(c, _req, b) {
    const v = await c.gateway.sessions.update(c.gateway.sessions.hashOf(b.session_id), b.data, c);
    if (!v.valid) return invalidSession(v.error);
    return { type: 'session_updated', expires_in: v.expiresIn };
  },

  async revoke_user_tokens(c, _req, b) {
    const now = Math.floor(c.gateway.clock.now() / 1000);
    if (b.before !== undefined && b.before > now) throw new GatewayError('MALFORMED', 'Field "before" must not be in the future');
    // The mark in force: a `before` earlier than a mark already applied is answered with that mark.
    const before = await c.gateway.revokeUserTokens(b.user_id, b.before ?? now, c);
    return { type: 'tokens_revoked', before };
  },

  async exchange_session(c, _req, b) {
    const v = await c.gateway.sessions.validate(b.session_id);
    if (!v.valid) return invalidSession(v.error);
    // Bound until the absolute end (a later one an extend wrote meanwhile stays); idle expiry is
    // checked on each use of the tokens.
    const claim = await c.gateway.tokens.bind(v.hash, v.record.e);
    try {
      return { type: 'token_generated', ...(await c.gateway.tokens.generate({ sub: v.record.u }, claim, c)) };
    } catch (err) {
      // The session ended while its tokens were issued: they are revoked, and never answered.
      if (err instanceof SessionEndedError) return invalidSession(INVALID.error);
      throw err;
    }
  },
};
