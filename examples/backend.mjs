import { WebSocket } from 'ws';
import { GatewayClient } from 'auth-gateway/client';

const gw = new GatewayClient({ url: process.env.GATEWAY_URL ?? 'ws://127.0.0.1:8080', WebSocket, serviceKey: process.env.GATEWAY_SERVICE_KEY });
await gw.connect({ timeoutMs: 10_000 }); // without a limit it waits (retrying) until the gateway answers
const { session_id, expires_in } = await gw.createSession('user-42', { data: { role: 'admin' } });
// The login response sets it: `sid=${session_id}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=${expires_in}`
const v = await gw.validateSession(session_id); // { type: 'session_valid', user_id, expires_in, data } | { type: 'session_invalid', error }
console.log(v.type === 'session_valid' ? `valid: ${v.user_id}, ${v.expires_in} s left` : `invalid: ${v.error}`);
const { count } = await gw.revokeUserSessions('user-42'); // every open page of that user is told and closed
console.log(`revoked ${count}`);
gw.close();
