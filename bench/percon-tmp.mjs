// TEMPORARY experiment (not committed): heap retained per bound connection, idle vs after one message.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { WebSocket } from 'ws';
import { freePort, waitForPort, sleep } from './lib/proc.js';
import { openRaw, maskedFrame } from './lib/raw-ws.js';
import { sessionIds, writeFixtures } from './lib/workload.js';

const N = Number(process.argv[2] ?? 3000);
const ids = sessionIds(N);
const fixtures = writeFixtures('/tmp/percon', 'f.json', ids);
const port = await freePort();
const iport = await freePort();
const child = spawn('node', [`--inspect=127.0.0.1:${iport}`, ...(process.argv[3] ? [process.argv[3]] : []), 'dist/cli.js', 'serve', '--fixtures', fixtures], {
  env: { ...process.env, GATEWAY_PORT: String(port), GATEWAY_HOST: '127.0.0.1', GATEWAY_SERVICE_KEY: randomBytes(32).toString('base64'), GATEWAY_LOG_LEVEL: 'warn', GATEWAY_MAX_CONNECTIONS_PER_ADDRESS: String(2 * N) },
  stdio: ['ignore', 'ignore', 'inherit'],
});
await waitForPort(port, 20000, child);
const targets = await (await fetch(`http://127.0.0.1:${iport}/json/list`)).json();
const insp = new WebSocket(targets[0].webSocketDebuggerUrl);
await new Promise((r) => insp.once('open', r));
let seq = 0;
const call = (method, params = {}) =>
  new Promise((resolve) => {
    const id = ++seq;
    const on = (d) => {
      const m = JSON.parse(d.toString());
      if (m.id === id) (insp.off('message', on), resolve(m.result));
    };
    insp.on('message', on);
    insp.send(JSON.stringify({ id, method, params }));
  });
const heap = async () => {
  await call('HeapProfiler.collectGarbage');
  await call('HeapProfiler.collectGarbage');
  const r = await call('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true });
  return JSON.parse(r.result.value);
};
await sleep(500);
const h0 = await heap();
const conns = [];
let replies = 0;
for (let i = 0; i < N; i += 250) {
  const batch = [];
  for (let k = i; k < Math.min(N, i + 250); k++)
    batch.push(openRaw(`ws://127.0.0.1:${port}/`, { Cookie: `sid=${ids[k]}` }, () => void replies++));
  conns.push(...(await Promise.all(batch)));
}
await sleep(1000);
const h1 = await heap();
const mask = randomBytes(4);
const send = async (round) => {
  const want = replies + N;
  conns.forEach((c, k) => c.socket.write(maskedFrame(`{"src":"b${k}","dest":"gateway","body":{"type":"validate_session","msg_id":${round},"session_id":"${ids[k]}"}}`, mask)));
  while (replies < want) await sleep(20);
};
if (!process.env.SKIPSEND) await send(1);
await sleep(500);
const h2 = await heap();
if (!process.env.SKIPSEND) for (let r = 2; r <= 5; r++) await send(r);
await sleep(500);
const h3 = await heap();
const per = (a, b, k) => ((b[k] - a[k]) / N).toFixed(0);
console.log(`N=${N} idle: heap +${per(h0, h1, 'heapUsed')} B/conn, ext +${per(h0, h1, 'external')}, rss +${per(h0, h1, 'rss')}; after 1 msg: heap +${per(h1, h2, 'heapUsed')} B/conn, ext +${per(h1, h2, 'external')}, rss +${per(h1, h2, 'rss')}; after 5: heap +${per(h2, h3, 'heapUsed')}, rss +${per(h2, h3, 'rss')}`);
if (process.argv[4]) {
  // heap snapshot
  const chunks = [];
  insp.on('message', (d) => {
    const m = JSON.parse(d.toString());
    if (m.method === 'HeapProfiler.addHeapSnapshotChunk') chunks.push(m.params.chunk);
  });
  await call('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
  (await import('node:fs')).writeFileSync(process.argv[4], chunks.join(''));
}
child.kill('SIGKILL');
process.exit(0);
