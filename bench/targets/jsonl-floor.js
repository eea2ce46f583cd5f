// Row 2's floor: the work a validate_session over stdio cannot do without, and nothing else.
// The gateway's own decode (hot shape and schema check), SHA-256 of the id, a plain Map of
// the fixture sessions by store key, the expiry check and the gateway's own reply encoder;
// lines split and replies batched as the fastest echo does it (bench/lib/jsonl-stdin.js: one
// string per chunk read, one write per chunk). No pipeline, no ordering, no metrics: what the
// gateway spends beyond this is what its structure costs. Imported from dist/, as the rest of
// bench/. Argument: the fixture file the gateway is given.
import { readFileSync } from 'node:fs';
import { hashSecret } from '../../dist/crypto.js';
import { decode } from '../../dist/protocol/decode.js';
import { encode } from '../../dist/protocol/replies.js';
import { serveLines } from '../lib/jsonl-stdin.js';

const now0 = Date.now();
/** @type {Map<string, {u: string, e: number}>} */
const sessions = new Map();
for (const s of JSON.parse(readFileSync(process.argv[2], 'utf8')).sessions)
  sessions.set(`s:${hashSecret(s.session_id)}`, { u: s.user_id, e: now0 + s.ttl * 1000 });

serveLines((text) => {
  let start = 0;
  let nl;
  let batch = '';
  while ((nl = text.indexOf('\n', start)) !== -1) {
    const d = decode(text.slice(start, nl));
    start = nl + 1;
    if (!d.ok || d.body.type !== 'validate_session') throw new Error('the floor serves valid validate_session lines only');
    const r = sessions.get(`s:${hashSecret(d.body.session_id)}`);
    const now = Date.now();
    /** @type {import('../../dist/protocol/replies.js').Body} */
    const body =
      r !== undefined && r.e > now
        ? { type: 'session_valid', user_id: r.u, expires_in: Math.ceil((r.e - now) / 1000), in_reply_to: d.body.msg_id }
        : { type: 'session_invalid', error: 'Session not found or expired', in_reply_to: d.body.msg_id };
    batch += `${encode({ src: d.dest, dest: d.src, body })}\n`;
  }
  return batch;
});
