// Row 8 (run with --expose-gc): builds the gateway in this process on the memory store,
// creates N sessions through the session service (records, user index, hashing: the real
// path), then reports heapUsed after full GCs. N = 0 is the empty process.
import { createApp } from '../../dist/app.js';
import { loadConfig } from '../../dist/config.js';

const o = JSON.parse(process.argv[2]);
const settle = async () => {
  for (let i = 0; i < 4; i++) {
    globalThis.gc?.();
    await new Promise((r) => setImmediate(r));
  }
  return process.memoryUsage();
};
const { gateway } = await createApp(loadConfig({ GATEWAY_LOG_LEVEL: 'warn', GATEWAY_JWT_SECRET: o.secret }));
const t0 = performance.now();
const batch = 1000;
for (let i = 0; i < o.n; i += batch) {
  const work = [];
  for (let k = i; k < Math.min(o.n, i + batch); k++) work.push(gateway.sessions.create(`user-${Math.floor(k / o.perUser)}`, o.data, 3600));
  await Promise.all(work);
}
const createSeconds = (performance.now() - t0) / 1000;
const m = await settle();
const size = gateway.store.size();
console.log(JSON.stringify({ n: o.n, heapUsed: m.heapUsed, rss: m.rss, storeKeys: size, createSeconds }));
process.exit(0);
