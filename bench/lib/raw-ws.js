// A minimal WebSocket client for load generation: the handshake, prebuilt masked text
// frames written in batches, and a frame parser that only counts replies and checks a
// pattern in each. Several times cheaper per message than the `ws` client, so the load
// generator is not what limits the figures. Frames follow RFC 6455 (masked, FIN set).
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';

/** A client-to-server text frame, masked with `mask` (4 bytes). */
export function maskedFrame(text, mask) {
  const payload = Buffer.from(text);
  const n = payload.length;
  const head = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(head + 4 + n);
  frame[0] = 0x81;
  if (n < 126) frame[1] = 0x80 | n;
  else if (n < 65536) {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(n, 2);
  } else {
    frame[1] = 0x80 | 127;
    frame.writeBigUInt64BE(BigInt(n), 2);
  }
  mask.copy(frame, head);
  for (let i = 0; i < n; i++) frame[head + 4 + i] = payload[i] ^ mask[i & 3];
  return frame;
}

/** A client close frame with `code` and no reason, masked with `mask`. */
export function maskedClose(code, mask) {
  const frame = Buffer.from([0x88, 0x82, mask[0], mask[1], mask[2], mask[3], code >> 8, code & 0xff]);
  frame[6] ^= mask[0];
  frame[7] ^= mask[1];
  return frame;
}

/**
 * Opens a connection; resolves with {socket, send(frames[]), close()} once the server
 * answered 101. `onFrame(buf, start, end)` is called for each text frame's payload.
 * Options: `onPing()`, called for each ping (answered with its pong either way);
 * `localAddress` (the source address, e.g. 127.0.0.2: each loopback address has its own
 * ephemeral ports); `onClose(code)`, called when the server's close frame arrives (the close
 * is answered with a close frame, as a browser does).
 * @param {string} url
 * @param {Record<string, string> | undefined} headers
 * @param {(buf: Buffer, start: number, end: number) => void} onFrame
 * @param {{ onPing?: () => void, localAddress?: string, onClose?: (code: number) => void }} [options]
 */
export function openRaw(url, headers, onFrame, { onPing, localAddress, onClose } = {}) {
  const { hostname, port, pathname } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ port: Number(port), host: hostname, localAddress });
    socket.setNoDelay(true);
    const key = randomBytes(16).toString('base64');
    const extra = Object.entries(headers ?? {})
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('');
    socket.once('connect', () =>
      socket.write(
        `GET ${pathname} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`,
      ),
    );
    socket.once('error', reject);
    let pending = Buffer.alloc(0);
    let upgraded = false;
    const pongMask = randomBytes(4);
    let sentClose = false;
    const api = {
      socket,
      /** Writes many prebuilt frames in one go. */
      send(frames) {
        socket.cork();
        for (const f of frames) socket.write(f);
        socket.uncork();
      },
      close() {
        socket.destroy();
      },
      /** Starts the close handshake as a browser does (a close frame, then waits for the server's). */
      closeFrame(code = 1000) {
        sentClose = true;
        socket.write(maskedClose(code, pongMask));
      },
    };
    const parse = (buf) => {
      let at = 0;
      for (;;) {
        if (buf.length - at < 2) break;
        const op = buf[at] & 0x0f;
        let len = buf[at + 1] & 0x7f;
        let head = 2;
        if (len === 126) {
          if (buf.length - at < 4) break;
          len = buf.readUInt16BE(at + 2);
          head = 4;
        } else if (len === 127) {
          if (buf.length - at < 10) break;
          len = Number(buf.readBigUInt64BE(at + 2));
          head = 10;
        }
        if (buf.length - at < head + len) break;
        const start = at + head;
        if (op === 0x1) onFrame(buf, start, start + len);
        else if (op === 0x9) {
          socket.write(
            Buffer.concat([Buffer.from([0x8a, 0x80 | len]), pongMask, Buffer.from(buf.subarray(start, start + len).map((b, i) => b ^ pongMask[i & 3]))]),
          );
          onPing?.();
        } else if (op === 0x8) {
          const code = len >= 2 ? buf.readUInt16BE(start) : 1005;
          onClose?.(code);
          if (sentClose) socket.end();
          else socket.end(maskedClose(code === 1005 ? 1000 : code, pongMask));
        }
        at = start + len;
      }
      return at;
    };
    socket.on('data', (chunk) => {
      let buf = pending.length > 0 ? Buffer.concat([pending, chunk]) : chunk;
      if (!upgraded) {
        const end = buf.indexOf('\r\n\r\n');
        if (end === -1) {
          pending = buf;
          return;
        }
        const status = buf.toString('latin1', 0, end).split('\r\n')[0];
        if (!/^HTTP\/1\.1 101/.test(status)) {
          socket.destroy();
          reject(new Error(`upgrade refused: ${status}`));
          return;
        }
        upgraded = true;
        buf = buf.subarray(end + 4);
        resolve(api);
      }
      const used = parse(buf);
      pending = used === buf.length ? Buffer.alloc(0) : Buffer.from(buf.subarray(used));
    });
  });
}
