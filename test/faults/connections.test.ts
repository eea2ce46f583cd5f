/**
 * Fault: connections opened and dropped in every way (clean close, terminate after a reply,
 * terminate before reading, bound browser sockets, half-sent upgrades), thousands of them,
 * at a real `serve` process. Afterwards the server holds no connection, no extra file
 * descriptor and no extra memory to speak of, still answers, and every session it
 * acknowledged is there.
 * `make test`: 1,000 connections; `make soak` (SOAK=1): 10,000.
 */
import { readdir, readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { limit, mb, report, SOAK } from '../fuzz/report.js';
import { SECRET } from '../security/harness.js';
import { spawnServe, type ServeNode } from '../security/spawn.js';
import { Client, sleep } from './client.js';

const SERVICE_KEY = 'oYbSjbiRYxFxmpeJQcYLbeBrz467CmS4ARkJti/GQxQ=';
let server: ServeNode;

beforeAll(async () => {
  server = await spawnServe({ GATEWAY_JWT_SECRET: SECRET, GATEWAY_SERVICE_KEY: SERVICE_KEY, GATEWAY_LOG_LEVEL: 'warn' });
});
afterAll(async () => {
  await server?.stop();
});

async function fds(pid: number): Promise<number> {
  return (await readdir(`/proc/${pid}/fd`)).length;
}
async function rss(pid: number): Promise<number> {
  const m = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}
async function openConnections(): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text();
  let n = 0;
  for (const m of text.matchAll(/^gateway_connections\{[^}]*\} (\d+)/gm)) n += Number(m[1]);
  return n;
}

function open(headers: Record<string, string>): Promise<WebSocket> {
  const ws = new WebSocket(server.url, { headers });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
  });
}

const request = (id: number, body: Record<string, unknown>) => JSON.stringify({ src: 'drop', dest: 'gateway', body: { ...body, msg_id: id } });

describe('connections opened and dropped', () => {
  it(
    'thousands of connections dropped in every way leave nothing behind and lose nothing acknowledged',
    async () => {
      const total = SOAK ? 10_000 : 1_000;
      const wave = 100;
      const pid = server.proc.pid!;
      const service = await Client.open(server.url, SERVICE_KEY);
      const bound = (await service.call({ type: 'create_session', user_id: 'bound-user' }))!.session_id as string;
      service.close();
      await sleep(100);
      const before = { fds: await fds(pid), rss: await rss(pid), open: await openConnections() };

      const acked: string[] = [];
      const counts = { clean_close: 0, terminate_after_reply: 0, terminate_unread: 0, bound_browser_terminate: 0, half_upgrade: 0, failed_to_open: 0 };
      const started = Date.now();
      let peakFds = before.fds;
      for (let base = 0; base < total; base += wave) {
        await Promise.all(
          Array.from({ length: Math.min(wave, total - base) }, async (_, j) => {
            const i = base + j;
            try {
              switch (i % 5) {
                case 0: {
                  const ws = await open({ Authorization: `Bearer ${SERVICE_KEY}` });
                  ws.close();
                  await new Promise((r) => ws.once('close', r));
                  counts.clean_close++;
                  break;
                }
                case 1: {
                  const ws = await open({ Authorization: `Bearer ${SERVICE_KEY}` });
                  const reply = await new Promise<Record<string, unknown>>((resolve) => {
                    ws.once('message', (d) => resolve(JSON.parse(d.toString()).body));
                    ws.send(request(1, { type: 'create_session', user_id: `drop${i}` }));
                  });
                  if (reply.type === 'session_created') acked.push(reply.session_id as string);
                  ws.terminate();
                  counts.terminate_after_reply++;
                  break;
                }
                case 2: {
                  const ws = await open({ Authorization: `Bearer ${SERVICE_KEY}` });
                  for (let k = 0; k < 5; k++) ws.send(request(k, { type: 'create_session', user_id: `unread${i}` }));
                  ws.terminate();
                  counts.terminate_unread++;
                  break;
                }
                case 3: {
                  const ws = await open({ Cookie: `sid=${bound}` });
                  ws.send(request(1, { type: 'validate_session', session_id: bound }));
                  ws.terminate();
                  counts.bound_browser_terminate++;
                  break;
                }
                case 4: {
                  await new Promise<void>((resolve) => {
                    const sock = connect(server.port, '127.0.0.1', () => {
                      sock.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-`);
                      setImmediate(() => {
                        sock.destroy();
                        resolve();
                      });
                    });
                    sock.once('error', () => resolve());
                  });
                  counts.half_upgrade++;
                  break;
                }
              }
            } catch {
              counts.failed_to_open++;
            }
          }),
        );
        if ((base / wave) % 10 === 0) peakFds = Math.max(peakFds, await fds(pid));
      }
      const seconds = (Date.now() - started) / 1000;

      // Give the server a moment to notice the last drops, then look at what it holds.
      let after: { fds: number; rss: number; open: number };
      const deadline = Date.now() + 15_000;
      do {
        await sleep(200);
        after = { fds: await fds(pid), rss: await rss(pid), open: await openConnections() };
      } while ((after.open !== 0 || after.fds > before.fds + 5) && Date.now() < deadline);

      // Still serving, and nothing acknowledged was lost.
      const check = await Client.open(server.url, SERVICE_KEY);
      let lost = 0;
      for (const id of acked) if ((await check.call({ type: 'validate_session', session_id: id }))?.type !== 'session_valid') lost++;
      expect((await check.call({ type: 'validate_session', session_id: bound }))?.type).toBe('session_valid');
      check.close();

      report('fault: connections opened and dropped', {
        connections_offered: total,
        ...counts,
        seconds: Math.round(seconds * 10) / 10,
        per_second: Math.round(total / seconds),
        acknowledged_sessions: acked.length,
        acknowledged_lost: lost,
        open_connections_after: after.open,
        fds_before: before.fds,
        fds_peak: peakFds,
        fds_after: after.fds,
        rss_mb_before: mb(before.rss),
        rss_mb_after: mb(after.rss),
      });
      expect(counts.failed_to_open).toBe(0);
      // Every fifth connection asked for a session and read its reply: that many were acknowledged, and audited.
      expect(counts.terminate_after_reply).toBe(total / 5);
      expect(acked).toHaveLength(total / 5);
      expect(lost).toBe(0);
      expect(after.open).toBe(0);
      expect(after.fds).toBeLessThanOrEqual(before.fds + 5);
      expect(after.rss - before.rss).toBeLessThan(100 * 1048576);
      expect(server.proc.exitCode).toBeNull();
    },
    limit(60_000),
  );
});
