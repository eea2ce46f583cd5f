/** Request bodies for loops over every message type. */

/** A valid body per request type: every required field set, plus the optional ones. */
export const SAMPLES: Record<string, { required: Record<string, unknown>; optional: Record<string, unknown> }> = {
  init: { required: { node_id: 'n1' }, optional: { node_ids: ['n1'] } },
  create_session: { required: { user_id: 'u1' }, optional: { data: { a: 1 }, ttl: 60, idp_sid: 'idp-s1', idp_sub: 'idp-u1' } },
  validate_session: { required: { session_id: 'x' }, optional: {} },
  regenerate_session: { required: { old_session_id: 'x' }, optional: {} },
  destroy_session: { required: { session_id: 'x' }, optional: {} },
  subscribe_session: { required: { session_id: 'x' }, optional: {} },
  unsubscribe_session: { required: { session_id: 'x' }, optional: {} },
  list_sessions: { required: { user_id: 'u1' }, optional: {} },
  destroy_session_handle: { required: { user_id: 'u1', handle: 'h' }, optional: {} },
  revoke_user_sessions: { required: { user_id: 'u1' }, optional: { except_session_id: 'x' } },
  generate_access_token: { required: { payload: { sub: 'u1' } }, optional: {} },
  verify_token: { required: { token: 'a.b.c' }, optional: {} },
  refresh_token: { required: { refresh_token: 'r' }, optional: {} },
  revoke_token: { required: { token: 'a.b.c' }, optional: {} },
  exchange_session: { required: { session_id: 'x' }, optional: {} },
  extend_session: { required: {}, optional: { session_id: 'x', ttl: 60 } },
  update_session: { required: { session_id: 'x', data: { a: 1 } }, optional: {} },
  revoke_user_tokens: { required: { user_id: 'u1' }, optional: { before: 1_700_000_000 } },
};

/** Values of the wrong JSON type for a field whose right type is that of `good`. */
export function wrongValues(good: unknown): unknown[] {
  const all: unknown[] = [42, 1.5, true, null, 'text', ['x'], { k: 'v' }];
  const kind = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);
  return all.filter((v) => kind(v) !== kind(good));
}
