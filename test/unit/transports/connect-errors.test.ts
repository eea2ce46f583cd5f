/**
 * `connect` that cannot connect, or whose connection ends abnormally: one line on its error
 * stream saying what happened, exit 1 (2 for a URL it cannot use), never the key.
 */
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { bridge } from '../../../src/transports/ws/connect.js';
import { SERVICE_KEY, start, stopAll } from '../../ws/helpers.js';

const WRONG_KEY = 'mC0dV6S8oW+T1L3o0J0n9dQxJxSxS1Zb2rGqW8c1m2k=';
const servers: Server[] = [];
afterEach(async () => {
  await stopAll();
  for (const s of servers.splice(0)) s.close();
});

/** The bridge with no input; its exit code and what it wrote on its error stream. */
async function run(url: string, serviceKey?: string, lines: string[] = [], handshakeTimeoutMs?: number): Promise<{ code: number; err: string }> {
  const input = new PassThrough();
  const output = new PassThrough().resume();
  const errors = new PassThrough();
  let err = '';
  errors.on('data', (d) => (err += d));
  const done = bridge(url, { serviceKey, input, output, errors, handshakeTimeoutMs });
  for (const l of lines) input.write(`${l}\n`);
  if (lines.length === 0) input.end();
  return { code: await done, err };
}

/** An HTTP server that answers every upgrade with `status`; its port. */
async function refusing(status: number): Promise<number> {
  const server = createServer();
  server.on('upgrade', (_req, socket) => socket.end(`HTTP/1.1 ${status} Refused\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

describe('connect that cannot connect: one line, exit 1', () => {
  it('a wrong service key', async () => {
    const { server } = await start();
    const r = await run(server.url, WRONG_KEY);
    expect(r).toEqual({ code: 1, err: 'connect: the gateway refused the service key (HTTP 401)\n' });
  });

  it('nothing listening', async () => {
    const { server } = await start();
    const port = server.port;
    await stopAll();
    const r = await run(`ws://127.0.0.1:${port}/`, SERVICE_KEY);
    expect(r).toEqual({ code: 1, err: `connect: nothing is listening at 127.0.0.1:${port} (connection refused)\n` });
  });

  it('a host name that does not resolve', async () => {
    const r = await run('ws://no-such-host.invalid:8080/', SERVICE_KEY);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^connect: the host name no-such-host\.invalid does not resolve \((ENOTFOUND|EAI_AGAIN)\)\n$/);
  });

  it('the other refusals of the upgrade, each said as what it is', async () => {
    const cases: [number, string | undefined, string][] = [
      [401, undefined, 'connect: the gateway refused the connection without a service key (HTTP 401)'],
      [403, SERVICE_KEY, 'connect: the gateway refused the connection (HTTP 403)'],
      [404, SERVICE_KEY, 'connect: the gateway has no WebSocket at this URL (HTTP 404)'],
      [429, SERVICE_KEY, 'connect: the gateway refused the connection: too many from this address, or too many wrong keys (HTTP 429)'],
      [503, SERVICE_KEY, 'connect: the gateway is not taking connections now (HTTP 503: draining)'],
      [502, SERVICE_KEY, 'connect: the gateway refused the connection (HTTP 502)'],
    ];
    for (const [status, key, line] of cases) {
      const port = await refusing(status);
      const r = await run(`ws://127.0.0.1:${port}/`, key);
      expect(r, String(status)).toEqual({ code: 1, err: `${line}\n` });
    }
  });

  it('a URL it cannot use: exit 2, the URL not repeated (it may hold a user and password)', async () => {
    for (const url of ['not a url', 'ftp://admin:hunter2@gw/']) {
      const r = await run(url, SERVICE_KEY);
      expect(r, url).toEqual({ code: 2, err: 'connect: the URL must be ws://host:port/ or wss://host:port/\n' });
    }
  });

  it('a server that takes the connection but never answers the upgrade: given up after the handshake timeout', async () => {
    const sockets: Socket[] = [];
    const silent = createTcpServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as AddressInfo).port;
    try {
      const started = Date.now();
      const r = await run(`ws://127.0.0.1:${port}/`, SERVICE_KEY, [], 300);
      expect(r).toEqual({ code: 1, err: `connect: 127.0.0.1:${port} did not answer the WebSocket upgrade within 0.3 s\n` });
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      for (const s of sockets) s.destroy();
      silent.close();
    }
  });

  it('the key is never written', async () => {
    const port = await refusing(401);
    const r = await run(`ws://127.0.0.1:${port}/`, WRONG_KEY);
    expect(r.err).not.toContain(WRONG_KEY);
  });
});

describe('connect whose connection ends abnormally', () => {
  it('one line with the close code (and the reason, when the server gave one), exit 1', async () => {
    // A server that does not say its frame limit (the gateway does, and the bridge answers such a line itself).
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', maxPayload: 4096 });
    // The server's side of the socket reports the oversized frame as an error event before it closes with 1009.
    const serverErrors: string[] = [];
    wss.on('connection', (socket) => socket.on('error', (e: Error & { code?: string }) => serverErrors.push(e.code ?? e.message)));
    await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
    try {
      const r = await run(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`, SERVICE_KEY, ['x'.repeat(5000)]);
      expect(r.code).toBe(1);
      expect(r.err).toBe('connect: connection closed with code 1009\n');
      expect(serverErrors).toEqual(['WS_ERR_UNSUPPORTED_MESSAGE_LENGTH']);
    } finally {
      await new Promise((resolve) => wss.close(resolve));
    }
  });
});
