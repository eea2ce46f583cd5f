import { envelopeSchema, requestSchemas } from './messages.js';
import { pushSchemas } from './push-schemas.js';
import { replySchemas } from './reply-schemas.js';

/** Every message schema (envelope, requests, replies, pushes) as plain JSON Schema documents keyed by type. */
export function jsonSchemas(): { envelope: unknown; requests: Record<string, unknown>; replies: Record<string, unknown>; pushes: Record<string, unknown> } {
  // The round trip drops TypeBox's symbol keys, leaving standard JSON Schema.
  return JSON.parse(JSON.stringify({ envelope: envelopeSchema, requests: requestSchemas, replies: replySchemas, pushes: pushSchemas }));
}
