// @ts-check
// The conformance cases' three runs: over stdio, over WebSocket (`serve`, then `connect` as a
// service: a server per case) and over HTTP (`serve`, then each line POSTed to /v1/rpc by
// test/transport-contract/http-bridge.mjs). `make conformance` (all.mjs) and
// test/conformance/conformance.test.ts both run exactly these.

/**
 * @typedef {{ pattern: string, why: string }} Skip
 * @typedef {{ name: string, skips: Skip[], cmd: string[], startMs: number }} TransportRun
 */

/**
 * The bridged runs start a server and then the bridge for every case: on two busy cores that
 * alone has taken 8 s, all of it before the case's own time starts (run.mjs --start-ms).
 */
const BRIDGE_START_MS = 20_000;

/** @type {readonly TransportRun[]} */
export const TRANSPORTS = [
  { name: 'stdio', skips: [], cmd: ['node', 'dist/cli.js', 'stdio'], startMs: 0 },
  {
    name: 'WebSocket',
    skips: [
      { pattern: 'an oversized line', why: 'ws closes a frame 200 times the size limit with 1009 (test/ws/limits.test.ts checks that)' },
      { pattern: 'stops the start', why: "the bridge script exits 1 when serve does not start (serve's own exit code is stdio's, 2)" },
    ],
    cmd: ['test/transport-contract/serve-and-connect.sh'],
    startMs: BRIDGE_START_MS,
  },
  {
    name: 'HTTP',
    // test/http/rpc.test.ts covers what each of these becomes over HTTP.
    skips: [
      { pattern: 'subscri', why: 'no connection to push to: subscribe and unsubscribe are error 1001 over HTTP' },
      { pattern: '^project: idle timeout', why: 'waits for a push' },
      { pattern: '^project: list_sessions: handles', why: 'subscribes' },
      { pattern: '^project: revoke_user_sessions: counts', why: 'subscribes' },
      { pattern: '^project: 400 mixed', why: 'subscribes' },
      { pattern: '^project: envelope errors', why: 'no envelope: the bridge writes the ends, so envelope errors cannot be sent' },
      { pattern: 'missing or unreadable msg_id', why: 'msg_id is optional over HTTP (read as 0)' },
      { pattern: 'stops the start', why: "the bridge script exits 1 when serve does not start (serve's own exit code is stdio's, 2)" },
      { pattern: 'an oversized line is error 12', why: 'an oversized body is refused unread with 413 (no msg_id from its head)' },
      {
        pattern: 'a number JSON cannot spell',
        why: 'the bridge parses each line to post its body, which reads 1e400 as infinity and posts null (test/http/rpc.test.ts sends it raw)',
      },
    ],
    cmd: ['test/transport-contract/serve-and-post.sh'],
    startMs: BRIDGE_START_MS,
  },
];

/**
 * The arguments of `node test/conformance/run.mjs` for one run; `extra` goes before the skips.
 * @param {TransportRun} t
 * @param {string[]} [extra]
 */
export function runnerArgs(t, extra = []) {
  return [...extra, '--start-ms', String(t.startMs), ...t.skips.flatMap((s) => ['--skip', s.pattern]), '--', ...t.cmd];
}
