/**
 * The line handling of row 2's bare targets (the echo and the floor): stdin read in chunks,
 * each chunk's complete lines decoded to one string, one write per chunk, reading paused
 * while stdout is full. `onLines` gets that string (every line ending in `\n`) and the same
 * bytes, and returns what to write. Exits when stdin ends.
 * @param {(text: string, bytes: Buffer) => string | Buffer} onLines
 */
export function serveLines(onLines) {
  const out = process.stdout;
  let rest = Buffer.alloc(0);
  process.stdin.on('data', (chunk) => {
    const buf = rest.length > 0 ? Buffer.concat([rest, chunk]) : chunk;
    const last = buf.lastIndexOf(0x0a);
    if (last === -1) {
      rest = buf;
      return;
    }
    const bytes = buf.subarray(0, last + 1);
    rest = buf.subarray(last + 1);
    if (!out.write(onLines(bytes.toString('utf8'), bytes))) {
      process.stdin.pause();
      out.once('drain', () => process.stdin.resume());
    }
  });
  process.stdin.on('end', () => process.exit(0));
}
