// Load generator of row 10: browser connections opened at `rate` a second for `ms`, open
// loop (each start has its scheduled time; a late one is measured from it), each bound to a
// session by its cookie, held `holdMs`, then closed with a close handshake as a browser does.
// Source addresses rotate over `addresses`. The first `rampMs` (default 0) run at the same
// rate but are not measured: this process's own start (its code not yet compiled) would
// otherwise be charged to the gateway. Prints one JSON line: upgrade times of the measured
// starts (from the scheduled start to the 101) p50/p99/max, counts, this process's CPU and
// event-loop delay.
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { cpuSeconds, sleep } from '../lib/proc.js';
import { percentile } from '../lib/stats.js';
import { openRaw } from '../lib/raw-ws.js';

const o = JSON.parse(process.argv[2]);
const ids = JSON.parse(readFileSync(o.ids, 'utf8'));
/** Starts of the unmeasured ramp, then the measured ones, then every start. */
const ramp = Math.floor((o.rate * (o.rampMs ?? 0)) / 1000);
const total = Math.floor((o.rate * o.ms) / 1000);
const all = ramp + total;
const lat = new Float64Array(total);
/** Measured starts upgraded; every start upgraded. */
let upgraded = 0;
let opened = 0;
/** Refusals anywhere, the ramp's included. */
let failed = 0;
let firstError;
/** Closes the server began (anything but the answer to our close frame). */
let serverClosed = 0;
let closed = 0;

function one(i, scheduled) {
  let ours = false;
  openRaw(o.url, { Origin: o.origin, Cookie: `${o.cookie}=${ids[i % ids.length]}` }, () => {}, {
    localAddress: o.addresses[i % o.addresses.length],
    onClose: () => {
      if (!ours) serverClosed++;
    },
  }).then(
    (ws) => {
      opened++;
      if (i >= ramp) lat[upgraded++] = performance.now() - scheduled;
      ws.socket.once('close', () => closed++);
      setTimeout(() => {
        ours = true;
        ws.closeFrame(1000);
      }, o.holdMs);
    },
    (err) => {
      failed++;
      firstError ??= err.message;
    },
  );
}

// This process's own event-loop delay: a start it could not make on time is late by it.
const lag = monitorEventLoopDelay({ resolution: 5 });
lag.enable();
const cpu0 = cpuSeconds(process.pid);
const t0 = performance.now();
let started = 0;
while (started < all) {
  const due = Math.min(all, Math.floor(((performance.now() - t0) * o.rate) / 1000) + 1);
  for (; started < due; started++) one(started, t0 + (started * 1000) / o.rate);
  await sleep(1);
}
// Every connection answered and closed, or a deadline.
const until = performance.now() + o.holdMs + 10_000;
while ((opened + failed < all || closed < opened) && performance.now() < until) await sleep(20);
const seconds = (performance.now() - t0) / 1000;
const sorted = lat.subarray(0, upgraded).sort();
process.stdout.write(
  `${JSON.stringify({ total, upgraded, opened, failed, firstError, closed, serverClosed, p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: percentile(sorted, 100), seconds, genCpu: (cpuSeconds(process.pid) - cpu0) / seconds, genLagP99: lag.percentile(99) / 1e6, genLagMax: lag.max / 1e6 })}\n`,
);
process.exit(0);
