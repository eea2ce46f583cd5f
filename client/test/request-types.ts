/**
 * Compile-time checks of the client's types (run by `npm run typecheck`, not by vitest):
 * `request()` takes the fields and gives the replies of the gateway's own schemas.
 */
import type { GatewayClient, SessionInvalid, SessionValid } from '../src/index.js';

export async function requestTypes(c: GatewayClient): Promise<void> {
  const v: SessionValid | SessionInvalid = await c.request('validate_session', { session_id: 's' });
  void v;
  // @ts-expect-error: a known type's reply is what its schema says (no session_created here)
  const wrong: { type: 'session_created' } = await c.request('validate_session', { session_id: 's' });
  void wrong;
  // @ts-expect-error: create_session has no field user_idd (and needs user_id)
  await c.request('create_session', { user_idd: 'u' });
  // @ts-expect-error: ttl is a number
  await c.request('create_session', { user_id: 'u', ttl: '60' });
  // A type this client does not know (a newer gateway's) is sent as given.
  await c.request('some_future_request', { anything: 1 });
}
