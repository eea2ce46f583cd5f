/**
 * A server's text frame (RFC 6455 section 5.2: FIN, opcode 1, no mask) holding `text`, as one
 * buffer. ws's `send` writes the header and the payload as two, corking the socket around
 * them; Node's stream then replaces its buffered list after each uncork, and that list, kept
 * until the connection's next write, is promoted to the old generation on a connection that
 * writes a few times a second: old-space garbage on every message.
 */
export function textFrame(text: string): Buffer {
  const n = Buffer.byteLength(text);
  const head = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(head + n);
  frame[0] = 0x81;
  if (n < 126) frame[1] = n;
  else if (n < 65536) {
    frame[1] = 126;
    frame.writeUInt16BE(n, 2);
  } else {
    frame[1] = 127;
    frame.writeUInt32BE(Math.floor(n / 2 ** 32), 2);
    frame.writeUInt32BE(n >>> 0, 6);
  }
  frame.write(text, head, 'utf8');
  return frame;
}
