import { constantTimeEqual } from '../crypto.js';

/** Who a request's bearer key says it comes from: a service, or a resource server that only checks tokens. */
export type Caller = 'service' | 'introspection';

/** The gateway's bearer keys: `GATEWAY_SERVICE_KEY` and `GATEWAY_INTROSPECTION_KEYS`. */
export interface BearerKeys {
  serviceKey?: string;
  introspectionKeys: readonly string[];
}

/**
 * The caller an `Authorization: Bearer <key>` header stands for, or undefined for a missing,
 * malformed or wrong key. The one decision of every transport (HTTP routes and WebSocket
 * upgrades), so that a key is the same caller wherever it is shown. Every configured key is
 * compared, in constant time, so the time says nothing of which one matched.
 */
export function callerOf(authorization: string | undefined, keys: BearerKeys): Caller | undefined {
  const m = /^Bearer[ \t]+(\S+)\s*$/i.exec(authorization ?? '');
  if (m === null) return undefined;
  const presented = m[1]!;
  let caller: Caller | undefined;
  if (keys.serviceKey !== undefined && constantTimeEqual(presented, keys.serviceKey)) caller = 'service';
  for (const key of keys.introspectionKeys) if (constantTimeEqual(presented, key)) caller ??= 'introspection';
  return caller;
}
