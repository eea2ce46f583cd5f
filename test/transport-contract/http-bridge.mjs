#!/usr/bin/env node
// @ts-check
// Bridges JSON lines on stdin to POST /v1/rpc, for the conformance runner's HTTP run:
//   node test/transport-contract/http-bridge.mjs http://127.0.0.1:PORT   (key in GATEWAY_SERVICE_KEY)
// Each line's body is POSTed (a line that is not an envelope is POSTed as it is, for the
// gateway to refuse), one request at a time over one keep-alive connection, so replies keep
// the order of the lines; each reply body is printed in an envelope with the request's ends
// swapped (HTTP carries no envelope: the ends are this bridge's). Exits 0 once stdin ends and
// every line is answered.
import { Agent, request } from 'node:http';
import { createInterface } from 'node:readline';

const base = process.argv[2]?.replace(/\/+$/, '');
const key = process.env.GATEWAY_SERVICE_KEY;
if (!base || !key) {
  process.stderr.write('usage: GATEWAY_SERVICE_KEY=KEY node http-bridge.mjs http://host:port\n');
  process.exit(2);
}
const agent = new Agent({ keepAlive: true, maxSockets: 1 });
/** The node's id: replies to unreadable lines come from it (an `init` renames it). */
let nodeId = 'gateway';

/** @param {string} body @returns {Promise<unknown>} */
function post(body) {
  return new Promise((resolve, reject) => {
    const req = request(`${base}/v1/rpc`, { method: 'POST', agent, headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve(JSON.parse(text)));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  /** @type {{ src?: unknown, dest?: unknown, body?: unknown }} */
  let env = {};
  try {
    env = JSON.parse(line);
  } catch {
    // sent as it is
  }
  const isEnvelope = env !== null && typeof env === 'object' && !Array.isArray(env);
  const body = isEnvelope && env.body !== undefined ? JSON.stringify(env.body) : line;
  const reply = /** @type {Record<string, unknown>} */ (await post(body));
  const ends = isEnvelope && typeof env.src === 'string' && typeof env.dest === 'string' ? { src: env.dest, dest: env.src } : { src: nodeId };
  if (reply.type === 'init_ok' && isEnvelope && typeof env.body === 'object' && env.body !== null)
    nodeId = String(/** @type {Record<string, unknown>} */ (env.body).node_id);
  process.stdout.write(`${JSON.stringify({ ...ends, body: reply })}\n`);
}
agent.destroy();
