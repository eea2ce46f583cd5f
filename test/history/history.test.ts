/**
 * The history checker: randomized concurrent clients on three gateway processes, every
 * operation type, ends and refreshes raced on purpose, an outage in the middle; then the
 * invariants of checker.ts over the recorded history. A negative control (three nodes on
 * three separate memory stores) shows that the checker catches divergence.
 *
 * `make test`: short rounds. `make soak` (SOAK=1): long rounds, several outages.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { report, SOAK } from '../fuzz/report.js';
import { required } from '../helpers/required.js';
import { RedisCluster } from '../helpers/redis-server.js';
import { STORE_BACKENDS } from '../helpers/store-servers.js';
import { freshNamespace } from '../store/redis-harness.js';
import { check, type Verdict } from './checker.js';
import { newHistory, RecordedNode, type History } from './recorder.js';
import { runWorkload } from './workload.js';

const ready = required('build') && required('redis-server');
const NODES = 3;
const ARTIFACTS = fileURLToPath(new URL('../artifacts/', import.meta.url));
const secret = randomBytes(32).toString('base64');
const started: { stop(): Promise<void> }[] = [];

afterEach(async () => {
  for (const s of started.splice(0).reverse()) await s.stop();
});

interface Round {
  stores: string[];
  durationMs: number;
  /** Called at the given offsets into the run: returns once the store is back. */
  outages?: { atMs: number; run: () => Promise<void> }[];
}

async function round(name: string, r: Round): Promise<{ history: History; verdict: Verdict }> {
  const history = newHistory();
  const nodes = r.stores.map(
    (store, i) => new RecordedNode(i, history, { GATEWAY_STORE: store, GATEWAY_JWT_SECRET: secret, GATEWAY_NODE_ID: `n${i}`, GATEWAY_STORE_TIMEOUT_MS: '800' }),
  );
  started.push(...nodes);
  const seed = Number.parseInt(randomBytes(3).toString('hex'), 16);
  // The clock starts once every node has started (a loaded machine takes seconds to load one).
  await Promise.all(nodes.map((n) => n.ready()));
  const start = performance.now();
  const faults = (r.outages ?? []).map(async (o) => {
    await new Promise((res) => setTimeout(res, o.atMs));
    const from = performance.now();
    await o.run();
    history.outages.push([from, performance.now()]);
  });
  // Enough work for every check to mean something, however slow the machine: at least the
  // duration, then on until 1,500 operations were served, error 11 not counted (at most 60 s).
  const work = { clientsPerNode: 3, durationMs: r.durationMs, minOps: 1500, maxMs: 60_000, seed, users: freshNamespace() };
  await Promise.all([runWorkload(nodes, work), ...faults]);
  const runEnd = performance.now();
  // Let the last pushes arrive: until every node has answered everything, plus the bound.
  await new Promise((res) => setTimeout(res, 1600));
  const verdict = check(history, { pushBoundMs: 1500, recoveryMs: 3000, checkAt: performance.now() });
  // A broken invariant leaves the whole history behind for a replay of the reasoning.
  if (verdict.violations.length > 0) {
    mkdirSync(ARTIFACTS, { recursive: true });
    writeFileSync(`${ARTIFACTS}history-${name}.json`, JSON.stringify(history));
  }
  report(`history ${name}`, { seed, seconds: Math.round((runEnd - start) / 100) / 10, ...verdict.figures, firstViolations: verdict.violations.slice(0, 3) });
  return { history, verdict };
}

/** The run did real work: enough of every kind of check that a clean verdict means something. */
function expectWork(v: Verdict, withOutage: boolean) {
  expect(v.figures.ops).toBeGreaterThan(300);
  expect(v.figures.sessionEndsCompleted).toBeGreaterThan(10);
  expect(v.figures.checkedAfterEnd).toBeGreaterThan(10);
  expect(v.figures.checkedStillValid).toBeGreaterThan(10);
  expect(v.figures.rotations).toBeGreaterThan(5);
  expect(v.figures.checkedAfterRevocation).toBeGreaterThan(5);
  expect(v.figures.checkedTokenStillValid).toBeGreaterThan(5);
  expect(v.figures.pushesChecked).toBeGreaterThan(5);
  // A round with an outage saw the store away; one without never answered 11.
  expect(v.figures.error11 > 0).toBe(withOutage);
}

const seconds = (short: number, soak: number) => (SOAK ? soak : short) * 1000;

describe.skipIf(!ready)('history checker', () => {
  it.each(STORE_BACKENDS)(
    'three nodes on one $name server, stalled (SIGSTOP) and killed (kill -9) mid-run: no invariant broken',
    async (backend) => {
      const server = await backend.start({ durable: true });
      started.push(server);
      const store = server.freshStore().url;
      const durationMs = seconds(8, 90);
      const outages = [
        {
          atMs: durationMs * 0.3,
          run: async () => {
            server.pause();
            await new Promise((res) => setTimeout(res, 1200));
            server.resume();
          },
        },
        {
          atMs: durationMs * 0.65,
          run: async () => {
            await server.crash();
            await new Promise((res) => setTimeout(res, 800));
            await server.restart();
          },
        },
      ];
      const { verdict } = await round(backend.name.toLowerCase(), { stores: Array(NODES).fill(store), durationMs, outages });
      expect(verdict.violations).toEqual([]);
      expectWork(verdict, true);
    },
    seconds(150, 300),
  );

  it(
    'three nodes on a Redis Cluster (3 masters): no invariant broken',
    async () => {
      const cluster = await RedisCluster.start(3);
      started.push(cluster);
      const store = `${cluster.url}?namespace=${freshNamespace()}`;
      const { verdict } = await round('redis-cluster', { stores: Array(NODES).fill(store), durationMs: seconds(5, 60) });
      expect(verdict.violations).toEqual([]);
      expectWork(verdict, false);
    },
    seconds(150, 300),
  );

  it('negative control: three nodes on three separate memory stores are caught diverging', async () => {
    const { verdict } = await round('negative-control', { stores: Array(NODES).fill('memory://'), durationMs: seconds(3, 10) });
    expect(verdict.violations.length).toBeGreaterThan(0);
    expect(verdict.violations.some((v) => v.startsWith('lost: validate'))).toBe(true);
  }, 120_000);
});
