/**
 * `connect` when its output's reader goes away (`auth-gateway connect URL | head -1`) while
 * frames keep arriving: it stops, closes the socket and ends with 0, as `stdio` does, rather
 * than raise an unhandled EPIPE.
 */
import { PassThrough, Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { bridge } from '../../../src/transports/ws/connect.js';

let server: WebSocketServer | undefined;
afterEach(() => server?.close());

describe('connect with an output that fails with EPIPE', () => {
  it('ends with 0, closes the socket, writes nothing on its error stream', async () => {
    let closedByPeer: Promise<number> | undefined;
    server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    server.on('connection', (ws) => {
      closedByPeer = new Promise((resolve) => ws.once('close', (code) => resolve(code)));
      for (let i = 0; i < 1000; i++) ws.send(JSON.stringify({ src: 'gateway', dest: 'c1', body: { type: 'init_ok', in_reply_to: i } }));
    });
    await new Promise((resolve) => server!.once('listening', resolve));
    const { port } = server.address() as { port: number };
    let writes = 0;
    const output = new Writable({
      write(_chunk, _encoding, callback) {
        writes++;
        callback(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
      },
    });
    const errors = new PassThrough();
    let err = '';
    errors.on('data', (d) => (err += d));
    const input = new PassThrough();
    const code = await bridge(`ws://127.0.0.1:${port}/`, { input, output, errors });
    expect(code).toBe(0);
    expect(err).toBe('');
    expect(writes).toBe(1);
    expect(await closedByPeer).toBe(1000);
  });
});
