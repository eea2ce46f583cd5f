// Load generator of row 9: holds `count` browser connections to one gateway, each bound to
// its own session by the cookie (as a browser's upgrade is), opened from several loopback
// source addresses (`perAddress` each: every address has its own ephemeral ports). Then
// waits for commands, one JSON line each on stdin, and answers one JSON line on stdout:
//   {"cmd":"status"}  -> {open, ended, closedWithoutPush}
//   {"cmd":"speak"}   -> {answered, ms}: every open page sends one `init`, as the package's
//                        browser client does after 20 s without a frame; answered once all replied
//   {"cmd":"ends"}    -> {ends: [[index, pushAt, closeAt], ...]} (epoch ms, sub-ms)
// Every line it prints is JSON; the first is {"opened", "failed", "ms"} once all are open.
// A connection "ends" when it got its `session_expired` push and then its close.
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { sleep } from '../lib/proc.js';
import { maskedFrame, openRaw } from '../lib/raw-ws.js';

const o = JSON.parse(process.argv[2]);
const ids = JSON.parse(readFileSync(o.ids, 'utf8')).slice(o.from, o.from + o.count);
const EXPIRED = Buffer.from('"type":"session_expired"');
const INIT_OK = Buffer.from('"type":"init_ok"');
/** Epoch milliseconds with sub-millisecond resolution, comparable between processes. */
const now = () => performance.timeOrigin + performance.now();

const pushAt = new Float64Array(ids.length);
const closeAt = new Float64Array(ids.length);
let open = 0;
let ended = 0;
let closedWithoutPush = 0;
let initsAnswered = 0;
/** @type {import('node:net').Socket[]} */
const sockets = [];

function openOne(i) {
  const localAddress = o.addresses[Math.floor(i / o.perAddress) % o.addresses.length];
  return openRaw(
    o.url,
    { Origin: o.origin, Cookie: `${o.cookie}=${ids[i]}` },
    (buf, start, end) => {
      const at = buf.indexOf(EXPIRED, start);
      if (at !== -1 && at < end && pushAt[i] === 0) pushAt[i] = now();
      const ok = buf.indexOf(INIT_OK, start);
      if (ok !== -1 && ok < end) initsAnswered++;
    },
    { localAddress },
  ).then((ws) => {
    open++;
    sockets[i] = ws.socket;
    ws.socket.once('close', () => {
      open--;
      closeAt[i] = now();
      if (pushAt[i] === 0) closedWithoutPush++;
      else ended++;
    });
  });
}

const t0 = performance.now();
let failed = 0;
let retried = 0;
let firstError;
let next = 0;
// At most `concurrency` handshakes in flight: the gateway's accept queue stays short.
await Promise.all(
  Array.from({ length: o.concurrency ?? 200 }, async () => {
    while (next < ids.length) {
      const i = next++;
      for (let attempt = 1; ; attempt++) {
        const err = await openOne(i).then(
          () => undefined,
          (e) => e,
        );
        if (err === undefined) break;
        // 503: the store did not answer the cookie's check in time (a busy machine); a
        // browser's client reconnects after Retry-After, and so does this one, a few times.
        if (/ 503 /.test(err.message) && attempt < 5) {
          retried++;
          await sleep(250 * attempt);
          continue;
        }
        failed++;
        firstError ??= err.message;
        break;
      }
    }
  }),
);
process.stdout.write(`${JSON.stringify({ opened: open, failed, retried, firstError, ms: performance.now() - t0 })}\n`);

const rl = createInterface({ input: process.stdin });
const mask = Buffer.from([1, 2, 3, 4]);
rl.on('line', (line) => void command(line));
/** @param {string} line */
async function command(line) {
  const { cmd } = JSON.parse(line);
  if (cmd === 'speak') {
    const t = performance.now();
    const want = initsAnswered + open;
    sockets.forEach((socket, i) => {
      if (!socket.destroyed) socket.write(maskedFrame(`{"src":"page${i}","dest":"gateway","body":{"type":"init","msg_id":1,"node_id":"gateway"}}`, mask));
    });
    const until = Date.now() + 60_000;
    while (initsAnswered < want && Date.now() < until) await sleep(20);
    process.stdout.write(`${JSON.stringify({ answered: initsAnswered - (want - open), asked: open, ms: performance.now() - t })}\n`);
  } else if (cmd === 'status') process.stdout.write(`${JSON.stringify({ open, ended, closedWithoutPush })}\n`);
  else if (cmd === 'ends') {
    const ends = [];
    for (let i = 0; i < ids.length; i++) if (closeAt[i] !== 0 && pushAt[i] !== 0) ends.push([i, pushAt[i], closeAt[i]]);
    process.stdout.write(`${JSON.stringify({ ends })}\n`);
  }
}
// The bench ends this process; it also stops by itself once its input closes.
rl.on('close', () => process.exit(0));
