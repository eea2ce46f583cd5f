// Baseline of row 2: the bare Node JSON-lines echo over stdio. Splits stdin into lines and
// parses each; writes one batch per chunk read. By default a reply is the line itself
// (the fastest echo: its bytes go back unchanged, one JSON.parse per line); with `build` as
// argument, each reply is built and stringified with the ends swapped and in_reply_to set.
const out = process.stdout;
const build = process.argv[2] === 'build';
let rest = Buffer.alloc(0);
process.stdin.on('data', (chunk) => {
  const buf = rest.length > 0 ? Buffer.concat([rest, chunk]) : chunk;
  const last = buf.lastIndexOf(0x0a);
  if (last === -1) {
    rest = buf;
    return;
  }
  const text = buf.toString('utf8', 0, last + 1);
  rest = buf.subarray(last + 1);
  let start = 0;
  let nl;
  let batch = '';
  while ((nl = text.indexOf('\n', start)) !== -1) {
    const m = JSON.parse(text.slice(start, nl));
    start = nl + 1;
    if (!build) continue;
    m.body.in_reply_to = m.body.msg_id;
    batch += `${JSON.stringify({ src: m.dest, dest: m.src, body: m.body })}\n`;
  }
  if (!out.write(build ? batch : buf.subarray(0, last + 1))) {
    process.stdin.pause();
    out.once('drain', () => process.stdin.resume());
  }
});
process.stdin.on('end', () => process.exit(0));
