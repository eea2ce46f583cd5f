// The attacks of issue 14 against one gateway, each from its own loopback address (so one
// attack's per-address limits do not hide another's), for a bounded time, then a JSON line
// of what was sent and answered on stdout. Loopback only. Driven by test/faults/abuse.test.ts
// (a short round in the normal suite, five minutes under `make soak`).
//
//   node bench/gen/abuse-attack.js '{"url":"ws://127.0.0.1:P/","seconds":10,
//     "attacks":["fanout","nested","exchange","cookie"],"victim":"<sid>","own":["<sid>",...]}'
//
// fanout   20 browser connections, 90 subscribe_session a second each, one victim session,
//          a new `src` every time (finding 1)
// nested   4 browser connections, 5 frames a second each: two of 1,000,000 bytes of `[`
//          (deep), one of 64 KiB of `[` (deep, within the size limit), one of 64 KiB of
//          arrays 60 deep side by side (passes the depth scan, so it is parsed) (finding 2)
// exchange 10 browser connections holding a valid session each, 90 exchange_session a
//          second each (finding 3)
// cookie   upgrades with guessed session cookies, 10 at a time (finding 5)
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';

const o = JSON.parse(process.argv[2] ?? '{}');
const until = Date.now() + o.seconds * 1000;
const attacks = new Set(o.attacks);
const ADDRESS = { fanout: '127.0.0.11', nested: '127.0.0.12', exchange: '127.0.0.13', cookie: '127.0.0.14' };
/** What was sent and how it was answered, per attack. @type {Record<string, Record<string, number>>} */
const counts = {};
const bump = (/** @type {string} */ attack, /** @type {string} */ what, n = 1) => {
  const c = (counts[attack] ??= {});
  c[what] = (c[what] ?? 0) + n;
};
const sleep = (/** @type {number} */ ms) => new Promise((r) => setTimeout(r, ms));

/**
 * A browser connection that reopens when closed (until the end), calling `tick` every
 * `everyMs` while open.
 * @param {string} attack
 * @param {(ws: WebSocket) => void} tick
 * @param {number} everyMs
 */
async function keepSending(attack, tick, everyMs) {
  while (Date.now() < until) {
    const ws = new WebSocket(o.url, { localAddress: ADDRESS[attack], maxPayload: 1 << 20 });
    ws.on('message', (data) => {
      const m = /"type":"([a-z_]+)"(?:.*?"code":(\d+))?/.exec(data.toString());
      bump(attack, m ? (m[2] ? `error_${m[2]}` : m[1]) : 'other');
    });
    const opened = await new Promise((resolve) => {
      ws.once('open', () => resolve(true));
      ws.once('unexpected-response', (_req, res) => {
        bump(attack, `refused_${res.statusCode}`);
        resolve(false);
      });
      ws.once('error', () => resolve(false));
    });
    if (opened) {
      bump(attack, 'connections');
      const timer = setInterval(() => {
        // Bounded memory here too: skip a beat while the socket has not drained.
        if (ws.readyState === WebSocket.OPEN && ws.bufferedAmount < 4 << 20) tick(ws);
      }, everyMs);
      const code = await new Promise((resolve) => {
        ws.once('close', (c) => resolve(c));
        const stop = setInterval(() => {
          if (Date.now() >= until) ws.terminate();
        }, 100);
        ws.once('close', () => clearInterval(stop));
      });
      clearInterval(timer);
      if (Date.now() < until) bump(attack, `closed_${code}`);
    }
    await sleep(100);
  }
}

const jobs = [];
if (attacks.has('fanout')) {
  let src = 0;
  for (let i = 0; i < 20; i++) {
    jobs.push(
      keepSending(
        'fanout',
        (ws) => {
          for (let k = 0; k < 9; k++)
            ws.send(JSON.stringify({ src: `s${src++}`, dest: 'gateway', body: { type: 'subscribe_session', msg_id: src, session_id: o.victim } }));
          bump('fanout', 'sent', 9);
        },
        100,
      ),
    );
  }
}
if (attacks.has('nested')) {
  const deep = (/** @type {number} */ n) => Buffer.from('['.repeat(n));
  const wide = () => {
    const one = `${'['.repeat(60)}${']'.repeat(60)}`;
    return Buffer.from(`[${Array.from({ length: Math.floor(65_000 / (one.length + 1)) }, () => one).join(',')}]`);
  };
  const frames = [deep(1_000_000), deep(1_000_000), deep(65_536), wide()];
  for (const frame of frames) {
    jobs.push(
      keepSending(
        'nested',
        (ws) => {
          ws.send(frame, { binary: false });
          bump('nested', 'sent');
          bump('nested', 'bytes_sent', frame.length);
        },
        200,
      ),
    );
  }
}
if (attacks.has('exchange')) {
  for (let i = 0; i < 10; i++) {
    const sid = o.own[i % o.own.length];
    let id = 0;
    jobs.push(
      keepSending(
        'exchange',
        (ws) => {
          for (let k = 0; k < 9; k++) ws.send(JSON.stringify({ src: 'x', dest: 'gateway', body: { type: 'exchange_session', msg_id: ++id, session_id: sid } }));
          bump('exchange', 'sent', 9);
        },
        100,
      ),
    );
  }
}
if (attacks.has('cookie')) {
  for (let i = 0; i < 10; i++) {
    jobs.push(
      (async () => {
        while (Date.now() < until) {
          const ws = new WebSocket(o.url, { localAddress: ADDRESS.cookie, headers: { Cookie: `sid=${randomBytes(32).toString('base64url')}` } });
          bump('cookie', 'sent');
          const outcome = await new Promise((resolve) => {
            ws.once('unexpected-response', (_req, res) => resolve(`refused_${res.statusCode}`));
            ws.once('close', (code) => resolve(`closed_${code}`));
            ws.once('error', () => resolve('error'));
          });
          bump('cookie', String(outcome));
          ws.terminate();
          // A refused address is told so at once: pace the retries rather than spin.
          if (outcome !== 'closed_4001') await sleep(20);
        }
      })(),
    );
  }
}
await Promise.all(jobs);
process.stdout.write(`${JSON.stringify(counts)}\n`);
process.exit(0);
