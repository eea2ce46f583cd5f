// Baseline of row 2: the bare Node JSON-lines echo over stdio. Splits stdin into lines and
// parses each; writes one batch per chunk read (bench/lib/jsonl-stdin.js). By default a reply
// is the line itself (the fastest echo: its bytes go back unchanged, one JSON.parse per line);
// with `build` as argument, each reply is built and stringified with the ends swapped and
// in_reply_to set.
import { serveLines } from '../lib/jsonl-stdin.js';

const build = process.argv[2] === 'build';
serveLines((text, bytes) => {
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
  return build ? batch : bytes;
});
