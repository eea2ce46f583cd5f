// Baseline of row 2: the bare Node JSON-lines echo. Splits stdin into lines, parses each,
// answers with the ends swapped and in_reply_to set, and writes one batch per chunk read.
const out = process.stdout;
let rest = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  const text = rest + chunk;
  let start = 0;
  let nl;
  let batch = '';
  while ((nl = text.indexOf('\n', start)) !== -1) {
    const m = JSON.parse(text.slice(start, nl));
    start = nl + 1;
    m.body.in_reply_to = m.body.msg_id;
    batch += `${JSON.stringify({ src: m.dest, dest: m.src, body: m.body })}\n`;
  }
  rest = text.slice(start);
  if (batch && !out.write(batch)) {
    process.stdin.pause();
    out.once('drain', () => process.stdin.resume());
  }
});
process.stdin.on('end', () => process.exit(0));
