/**
 * A request refused before its body was read, while its client is still sending: the answer
 * must reach the client. Closed at once, the gateway's kernel answers the bytes still coming
 * with a reset, and the reset makes the client's kernel drop the answer it had not read yet
 * (RFC 9112 section 9.6). The gateway ends its half, reads and drops what still comes (at most
 * LINGER_BYTES, for at most LINGER_MS), and closes once the client has closed its half.
 */
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { LINGER_BYTES, LINGER_MS } from '../../src/transports/http/lingering-close.js';
import { waitForCount } from '../helpers/wait-for.js';
import { eventually, JWT_SECRET, SERVICE_KEY, start, stopAll } from '../ws/helpers.js';
import { ensureBuilt, killAll, spawnServer } from '../ws/process.js';

afterEach(stopAll);
afterAll(killAll);

/**
 * Sends `head`, then goes on sending the body in small pieces, reading nothing meanwhile (a
 * client busy uploading); then reads, and closes its half once the answer is in. Pieces that
 * come after a plain close get a reset, and the answer is lost unread.
 */
async function sendWhileRefused(port: number, head: string): Promise<{ answer: string; error: string | undefined; ms: number }> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  let error: string | undefined;
  socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
  socket.pause();
  socket.write(head);
  const piece = Buffer.alloc(8 * 1024, 0x20);
  // 30 pieces over about 300 ms, 240 KB in all: well within LINGER_BYTES and LINGER_MS.
  for (let i = 0; i < 30 && error === undefined; i++) {
    socket.write(piece);
    await sleep(10);
  }
  let answer = '';
  const started = Date.now();
  socket.setEncoding('latin1');
  socket.on('data', (d: string) => {
    answer += d;
    if (answer.includes('\r\n\r\n{')) socket.end();
  });
  socket.resume();
  if (!socket.destroyed) await once(socket, 'close');
  return { answer, error, ms: Date.now() - started };
}

describe('an answer that closes the connection while the client still sends', () => {
  it('a drain closes connections still lingering at once, those no HTTP answer owns (CONNECT) too', async () => {
    const { server } = await start();
    const sockets = await Promise.all(
      [0, 1, 2].map(async () => {
        // Half-open: the client does not close its half when the gateway ends its own.
        const socket = connect({ port: server.port, host: '127.0.0.1', allowHalfOpen: true });
        await once(socket, 'connect');
        socket.on('error', () => undefined);
        let answer = '';
        socket.setEncoding('latin1');
        socket.on('data', (d: string) => (answer += d));
        socket.write('CONNECT a:1 HTTP/1.1\r\nHost: a:1\r\n\r\n');
        await waitForCount(() => (answer.includes('\r\n\r\n{') ? 1 : 0), 1, 10_000, 'answers');
        return socket;
      }),
    );
    const started = Date.now();
    // It resolves once the server has closed every connection, these included.
    await server.drain({ delayMs: 0, windowMs: 0 });
    // Not LINGER_MS after their answers (a few ms before the drain began): it does not wait for them.
    expect(Date.now() - started).toBeLessThan(LINGER_MS / 2);
    for (const socket of sockets) socket.destroy();
  });

  it('a body refused from its declared length (413 on /v1/rpc) is answered, then the connection closes cleanly', async () => {
    const { server } = await start();
    const head = `POST /v1/rpc HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${SERVICE_KEY}\r\nContent-Type: application/json\r\nContent-Length: ${64 * 1024 * 1024}\r\n\r\n`;
    const r = await sendWhileRefused(server.port, head);
    expect(r.error).toBeUndefined();
    expect(r.answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(r.answer).toContain('Connection: close');
    // Closed as soon as the client closed its half, not at the end of the linger.
    expect(r.ms).toBeLessThan(LINGER_MS);
  });

  it('a head Node cannot read (two Content-Length) is answered 400, then the connection closes cleanly', async () => {
    const { server } = await start();
    const head = 'POST /v1/rpc HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nContent-Length: 20\r\n\r\n';
    const r = await sendWhileRefused(server.port, head);
    expect(r.error).toBeUndefined();
    expect(r.answer).toMatch(/^HTTP\/1\.1 400 /);
  });

  it('a client that sends on and never closes is cut off after LINGER_BYTES more or LINGER_MS', async () => {
    const { server } = await start();
    const socket = connect(server.port, '127.0.0.1');
    await once(socket, 'connect');
    socket.on('error', () => undefined);
    let answer = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (answer += d));
    let closed = false;
    socket.once('close', () => (closed = true));
    socket.write(
      `POST /v1/rpc HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${SERVICE_KEY}\r\nContent-Type: application/json\r\nContent-Length: ${64 * 1024 * 1024}\r\n\r\n`,
    );
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    let sent = 0;
    // Written as fast as the connection takes it, until the gateway closes it.
    while (!closed && sent < 64 * LINGER_BYTES) {
      // once() rejects on the socket's error (EPIPE once the gateway has closed): the loop then ends.
      if (!socket.write(chunk)) await Promise.race([once(socket, 'drain'), once(socket, 'close')]).catch(() => undefined);
      sent += chunk.length;
    }
    if (!closed) await once(socket, 'close').catch(() => undefined);
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    // What the client had in flight when it was cut off (the kernels' buffers) comes on top.
    expect(sent).toBeLessThan(16 * LINGER_BYTES);
  });

  it('lingering connections count against GATEWAY_MAX_CONNECTIONS_PER_ADDRESS: a new one at the cap closes the longest lingering, so they never pile up past it', async () => {
    const { server } = await start({ GATEWAY_MAX_CONNECTIONS_PER_ADDRESS: '4' });
    const sockets: Socket[] = [];
    const answers: string[] = [];
    const closed: boolean[] = [];
    // Each is answered and closed (a body to a route that reads none), then keeps sending and
    // never closes its half: it lingers until it is cut. One at a time, within LINGER_MS.
    for (let i = 0; i < 12; i++) {
      const socket = connect({ port: server.port, host: '127.0.0.1', allowHalfOpen: true });
      sockets.push(socket);
      socket.on('error', () => undefined);
      socket.once('close', () => (closed[i] = true));
      await once(socket, 'connect');
      answers[i] = '';
      socket.setEncoding('latin1');
      socket.on('data', (d: string) => (answers[i] += d));
      socket.write(`GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: ${64 * 1024 * 1024}\r\n\r\nx`);
      await once(socket, 'end');
    }
    // A byte now and then: a socket the gateway has closed answers it with a reset.
    const keep = setInterval(() => {
      for (const s of sockets) if (!s.destroyed) s.write('x');
    }, 20);
    try {
      expect(answers.map((a) => a.split('\r\n', 1)[0])).toEqual(Array(12).fill('HTTP/1.1 200 OK'));
      // Every connection past the fourth made room by closing the longest lingering one.
      expect([server.pendingHeads.evicted, server.pendingHeads.refused]).toEqual([8, 0]);
      await eventually(() => expect(closed.slice(0, 8)).toEqual(Array(8).fill(true)));
    } finally {
      clearInterval(keep);
      for (const s of sockets) s.destroy();
    }
  });

  it('a client that resets the connection while it lingers (no head owner: CONNECT, an upgrade without Host) does not crash the gateway', async () => {
    ensureBuilt();
    const gw = await spawnServer({ GATEWAY_JWT_SECRET: JWT_SECRET, GATEWAY_SERVICE_KEY: SERVICE_KEY });
    const port = Number(new URL(gw.http).port);
    const heads = ['CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n', 'GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'];
    for (const head of heads) {
      // Its own half kept open: the gateway lingers, reading, until the reset.
      const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
      await once(socket, 'connect');
      socket.on('error', () => undefined);
      let answer = '';
      socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
      const ended = new Promise((resolve) => {
        socket.once('end', resolve);
        socket.once('close', resolve);
      });
      socket.write(head);
      await ended;
      expect(answer).toMatch(/^HTTP\/1\.1 (501|400) /);
      const closed = new Promise((resolve) => socket.once('close', resolve));
      socket.resetAndDestroy();
      await closed;
    }
    const answered = await fetch(`${gw.http}/healthz`);
    expect(answered.status).toBe(200);
    expect(gw.stderr()).not.toContain('ECONNRESET');
  });
});
