import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { percentile } from '../lib/stats.js';
import { cpuSeconds, rssBytes, sleep, startTalking } from '../lib/proc.js';
import { startRedis } from '../lib/redis.js';
import { SERVICE_KEY, startGateway } from '../lib/servers.js';
import { sessionIds, writeFixtures } from '../lib/workload.js';

/** The hard limit of open files here; a process holds at most that many sockets. */
const FILES = 20_000;
/** Connections opened from one loopback source address (each has ~28,000 ephemeral ports). */
const PER_ADDRESS = 4_000;
/** Sessions per user in the fixtures: the ends are `revoke_user_sessions` of whole users. */
const USERS_EVERY = 100;
/**
 * Source addresses are never reused within a run: a socket bound to a source address before
 * connecting takes a local port of that address whatever the destination, and the ports of
 * closed connections stay in TIME_WAIT for a minute.
 */
let nextAddress = 0;
const takeAddresses = (n) =>
  Array.from({ length: n }, () => {
    const k = nextAddress++;
    return `127.0.${Math.floor(k / 250)}.${(k % 250) + 2}`;
  });
/** Epoch milliseconds with sub-millisecond resolution, comparable with the generators'. */
const now = () => performance.timeOrigin + performance.now();

export const row = {
  id: 9,
  what: 'browser connections held, each bound to its own session, by one gateway process',
  unit: 'connections',
  baselineWhat: null,
  target: { on: 'value', op: '>=', limit: 19_000 },
  checks: {
    cluster_connections: { op: '>=', limit: 95_000 },
    rss_per_connection_bytes: { op: '<=', limit: 8192 },
    idle_heartbeat_cpu_pct_per_19k: { op: '<=', limit: 5 },
    ends_p99_ms: { op: '<=', limit: 1000 },
    cluster_ends_p99_ms: { op: '<=', limit: 1000 },
  },

  async run(ctx) {
    const quick = ctx.quick;
    const one = await hold(ctx, { name: 'row9-one', nodes: 1, perNode: quick ? 2_000 : 19_000, ends: quick ? 1_000 : 10_000, idleMs: quick ? 3_000 : 10_000 });
    // The cluster's failure leaves the one-process figures standing; its own checks then fail.
    /** @type {Awaited<ReturnType<typeof hold>> | undefined} */
    let done;
    let fiveFailed;
    try {
      done = await hold(ctx, {
        name: 'row9-five',
        nodes: 5,
        perNode: quick ? 1_000 : 19_000,
        ends: quick ? 1_000 : 10_000,
        idleMs: quick ? 2_000 : 5_000,
      });
    } catch (err) {
      fiveFailed = err instanceof Error ? err.message : String(err);
      ctx.log(`  row9-five FAILED: ${fiveFailed}`);
    }
    const five = done ?? {
      held: null,
      rssPerConnection: NaN,
      rssPerSpokenConnection: NaN,
      idleCpuPer19k: NaN,
      openSeconds: NaN,
      p50: NaN,
      p99: NaN,
      max: NaN,
      endCpu: NaN,
      retried: 0,
      endsAsked: 0,
    };
    return {
      runs: 1,
      value: one.held,
      note: `${fiveFailed ? `five gateways: failed (${fiveFailed.slice(0, 160)}); ` : ''}one gateway (memory store) and five gateways on one redis-server, each with its own port; each gateway fed by its own generator process from loopback source addresses of its own, 127.0.0.2 and up, never reused in a run (${PER_ADDRESS} connections each, GATEWAY_MAX_CONNECTIONS_PER_ADDRESS raised to match); ends: revoke_user_sessions of the users owning them (${USERS_EVERY} sessions per user and node), all sent at once over service connections, spread over the nodes: ${one.endsAsked} sessions (one process) and ${five.endsAsked} (five; on Redis each revoke ends sessions held on every node); an end counts when the page has both its session_expired push and its close`,
      extra: {
        cluster_connections: five.held,
        rss_per_connection_bytes: Math.round(one.rssPerConnection),
        cluster_rss_per_connection_bytes: Math.round(five.rssPerConnection),
        rss_per_connection_after_one_message_bytes: Math.round(one.rssPerSpokenConnection),
        cluster_rss_per_connection_after_one_message_bytes: Math.round(five.rssPerSpokenConnection),
        idle_heartbeat_cpu_pct_per_19k: +one.idleCpuPer19k.toFixed(2),
        cluster_idle_heartbeat_cpu_pct_per_19k: +five.idleCpuPer19k.toFixed(2),
        open_seconds: +one.openSeconds.toFixed(1),
        upgrades_retried_after_503: one.retried + five.retried,
        cluster_open_seconds: +five.openSeconds.toFixed(1),
        ends_p50_ms: +one.p50.toFixed(1),
        ends_p99_ms: +one.p99.toFixed(1),
        ends_max_ms: +one.max.toFixed(1),
        cluster_ends_p50_ms: +five.p50.toFixed(1),
        cluster_ends_p99_ms: +five.p99.toFixed(1),
        cluster_ends_max_ms: +five.max.toFixed(1),
        gateway_cpu_us_per_end: Math.round(one.endCpu * 1e6),
        cluster_gateway_cpu_us_per_end: Math.round(five.endCpu * 1e6),
      },
    };
  },
};

/**
 * `nodes` gateways (one: memory store; more: one redis-server), `perNode` bound browser
 * connections each from its own generator; RSS and idle CPU, then `ends` sessions
 * revoked at once (whole users), spread evenly over the nodes.
 */
async function hold(ctx, { name, nodes, perNode, ends, idleMs }) {
  if (perNode > FILES - 500) throw new Error(`${perNode} connections do not fit under ${FILES} open files`);
  const perGenerator = Math.ceil(perNode / PER_ADDRESS);
  const redis = nodes > 1 ? await startRedis() : undefined;
  /** @type {Awaited<ReturnType<typeof startGateway>>[]} */
  const gateways = [];
  const gens = [];
  const services = [];
  try {
    const ids = Array.from({ length: nodes }, () => sessionIds(perNode));
    const starting = ids.map((mine, g) => {
      const fixtures = writeFixtures(ctx.tmp, `${name}-${g}-fixtures.json`, mine, { usersEvery: USERS_EVERY });
      writeFileSync(join(ctx.tmp, `${name}-${g}-ids.json`), JSON.stringify(mine));
      const env = { GATEWAY_MAX_CONNECTIONS_PER_ADDRESS: String(PER_ADDRESS), GATEWAY_NODE_ID: `node-${g}` };
      // Each node seeds its own share of the sessions (on Redis, all are seen by every node).
      return startGateway(ctx, {
        args: ['--fixtures', fixtures],
        ulimit: FILES,
        env: redis ? { ...env, GATEWAY_STORE: redis.url } : env,
        startTimeoutMs: 180_000,
      });
    });
    const why = [];
    for (const r of await Promise.allSettled(starting)) {
      if (r.status === 'fulfilled') gateways.push(r.value);
      else why.push(r.reason instanceof Error ? r.reason.message : String(r.reason));
    }
    if (gateways.length < nodes) throw new Error(`${name}: only ${gateways.length} of ${nodes} gateways started (${why[0]?.slice(0, 300)})`);
    await sleep(1000);
    const rss0 = gateways.map((gw) => rssBytes(gw.child.pid));
    const t0 = performance.now();
    for (let g = 0; g < nodes; g++) {
      const gw = gateways[g];
      const args = {
        url: gw.url,
        origin: `http://127.0.0.1:${gw.port}`,
        ids: join(ctx.tmp, `${name}-${g}-ids.json`),
        from: 0,
        count: perNode,
        cookie: 'sid',
        addresses: takeAddresses(perGenerator),
        perAddress: PER_ADDRESS,
      };
      gens.push(startTalking('node', [ctx.gen('ws-hold.js'), JSON.stringify(args)], { ulimit: FILES }));
    }
    const opened = await Promise.all(gens.map((gen) => gen.next(300_000)));
    const openSeconds = (performance.now() - t0) / 1000;
    const held = opened.reduce((a, r) => a + r.opened, 0);
    const failed = opened.reduce((a, r) => a + r.failed, 0);
    const retried = opened.reduce((a, r) => a + r.retried, 0);
    ctx.log(
      `  ${name}: ${held} connections open on ${nodes} node(s) in ${openSeconds.toFixed(1)} s, ${failed} failed, ${retried} retried after a 503${failed ? ` (${opened.find((r) => r.firstError)?.firstError})` : ''}`,
    );
    if (failed > 0) throw new Error(`${name}: ${failed} connections failed to open`);

    await sleep(2000);
    const rss1 = gateways.map((gw) => rssBytes(gw.child.pid));
    const rssPerConnection = rss1.reduce((a, r, g) => a + (r - rss0[g]), 0) / held;
    // Idle: nothing but the heartbeat (one slice of the links pinged every 100 ms).
    const cpu0 = gateways.map((gw) => cpuSeconds(gw.child.pid));
    await sleep(idleMs);
    const cpu = gateways.reduce((a, gw, g) => a + cpuSeconds(gw.child.pid) - cpu0[g], 0);
    const idleCpuPer19k = ((100 * cpu) / (idleMs / 1000)) * (19_000 / held);
    ctx.log(
      `  ${name}: RSS ${rss0.map((r) => (r / 2 ** 20).toFixed(0)).join('/')} MB before, ${rss1.map((r) => (r / 2 ** 20).toFixed(0)).join('/')} MB after: ${rssPerConnection.toFixed(0)} B per connection; idle CPU ${idleCpuPer19k.toFixed(2)}% of a core per 19,000 over ${idleMs / 1000} s`,
    );
    // Then every page speaks once (an `init`, as the package's browser client sends after 20 s
    // without a frame): a connection that has sent a message holds its request pipeline.
    const spoke = await Promise.all(gens.map((gen) => gen.ask({ cmd: 'speak' }, 90_000)));
    const answered = spoke.reduce((a, r) => a + r.answered, 0);
    if (answered !== held) throw new Error(`${name}: ${answered} of ${held} pages had their init answered`);
    await sleep(2000);
    const rss2 = gateways.map((gw) => rssBytes(gw.child.pid));
    const rssPerSpokenConnection = rss2.reduce((a, r, g) => a + (r - rss0[g]), 0) / held;
    ctx.log(
      `  ${name}: every page sent one init (answered in ${Math.max(...spoke.map((r) => r.ms)).toFixed(0)} ms): RSS ${rss2.map((r) => (r / 2 ** 20).toFixed(0)).join('/')} MB, ${rssPerSpokenConnection.toFixed(0)} B per connection`,
    );

    // The ends: the first `ends / nodes` sessions of each node, by `revoke_user_sessions` of
    // the users owning them (user-k owns sessions k*USERS_EVERY… of every node's share, so on
    // Redis one revoke ends sessions held on every node), the revokes spread over the nodes.
    const per = Math.floor(ends / nodes);
    if (per % USERS_EVERY !== 0) throw new Error(`${name}: ${per} ends per node is not a multiple of ${USERS_EVERY}`);
    const users = per / USERS_EVERY;
    for (const gw of gateways) services.push(await serviceSocket(gw.url));
    const byNode = Array.from({ length: nodes }, () => /** @type {string[]} */ ([]));
    for (let u = 0; u < users; u++) {
      const g = u % nodes;
      byNode[g].push(
        JSON.stringify({ src: 'bench', dest: 'gateway', body: { type: 'revoke_user_sessions', msg_id: byNode[g].length + 1, user_id: `user-${u}` } }),
      );
    }
    const replies = services.map((s, g) => s.replies(byNode[g].length));
    const cpuEnds0 = gateways.map((gw) => cpuSeconds(gw.child.pid));
    const sent = now();
    for (let g = 0; g < nodes; g++) if (byNode[g].length > 0) services[g].send(byNode[g]);
    const answers = (await Promise.all(replies)).flat();
    const destroyed = answers.reduce((a, m) => a + (m.body.type === 'sessions_revoked' ? Number(m.body.count) : 0), 0);
    if (destroyed !== per * nodes)
      throw new Error(
        `${name}: the revokes ended ${destroyed} of ${per * nodes} sessions (${answers.filter((m) => m.body.type !== 'sessions_revoked').length} answered otherwise: ${[
          ...new Set(answers.filter((m) => m.body.type !== 'sessions_revoked').map((m) => `${m.body.type} ${m.body.code ?? ''} ${m.body.text ?? ''}`.trim())),
        ].join('; ')})`,
      );
    const until = Date.now() + 60_000;
    for (;;) {
      const st = await Promise.all(gens.map((gen) => gen.ask({ cmd: 'status' })));
      const ended = st.reduce((a, s) => a + s.ended, 0);
      const lost = st.reduce((a, s) => a + s.closedWithoutPush, 0);
      if (lost > 0) throw new Error(`${name}: ${lost} connections closed without their push`);
      if (ended >= per * nodes) {
        const open = st.reduce((a, s) => a + s.open, 0);
        if (ended > per * nodes || open !== held - per * nodes)
          throw new Error(`${name}: ${ended} ended, ${open} still open; expected ${per * nodes} and ${held - per * nodes}`);
        break;
      }
      if (Date.now() > until) throw new Error(`${name}: only ${ended} of ${per * nodes} pages got their push and close within 60 s`);
      await sleep(100);
    }
    const endCpu = gateways.reduce((a, gw, g) => a + cpuSeconds(gw.child.pid) - cpuEnds0[g], 0) / (per * nodes);
    const lat = [];
    const pushLat = [];
    for (let g = 0; g < nodes; g++) {
      const { ends: got } = await gens[g].ask({ cmd: 'ends' });
      for (const [i, pushAt, closeAt] of got) {
        if (i >= per) throw new Error(`${name}: a connection whose session was not revoked ended`);
        lat.push(Math.max(pushAt, closeAt) - sent);
        pushLat.push(pushAt - sent);
      }
    }
    lat.sort((a, b) => a - b);
    pushLat.sort((a, b) => a - b);
    const p50 = percentile(lat, 50);
    const p99 = percentile(lat, 99);
    const max = lat[lat.length - 1];
    ctx.log(
      `  ${name}: ${lat.length} sessions ended: push and close p50 ${p50.toFixed(1)}, p99 ${p99.toFixed(1)}, max ${max.toFixed(1)} ms after the revokes were sent (the push alone: p50 ${percentile(pushLat, 50).toFixed(1)}, p99 ${percentile(pushLat, 99).toFixed(1)} ms)`,
    );
    return { held, retried, openSeconds, rssPerConnection, rssPerSpokenConnection, idleCpuPer19k, p50, p99, max, endCpu, endsAsked: per * nodes };
  } finally {
    for (const s of services) s.close();
    await Promise.all(gens.map((gen) => gen.stop()));
    await Promise.all(gateways.map((gw) => gw.stop()));
    await redis?.stop();
  }
}

/** A service WebSocket: `send(texts)` writes them in one go; `replies(n)` resolves with the next n replies. */
function serviceSocket(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${SERVICE_KEY}` }, perMessageDeflate: false });
    /** @type {{ n: number, got: any[], resolve: (v: any[]) => void } | undefined} */
    let want;
    ws.on('message', (data) => {
      if (!want) return;
      want.got.push(JSON.parse(data.toString()));
      if (want.got.length >= want.n) want.resolve(want.got);
    });
    ws.once('error', reject);
    ws.once('open', () =>
      resolve({
        send: (texts) => {
          for (const t of texts) ws.send(t);
        },
        replies: (n) => (n === 0 ? Promise.resolve([]) : new Promise((res) => (want = { n, got: [], resolve: res }))),
        close: () => ws.terminate(),
      }),
    );
  });
}
