/**
 * A randomized, concurrent workload over several recorded gateway nodes: every operation
 * type, with ends and refreshes raced on purpose (the same session ended on two nodes at
 * once, the same refresh token presented on every node at once).
 */
import type { Body, Op, RecordedNode } from './recorder.js';

/** Small seeded PRNG (mulberry32), so that a failing run can be replayed from its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface WorkloadOptions {
  /** Client loops per node (each a distinct `src`, so pushes can be told apart). */
  clientsPerNode: number;
  /**
   * Run length, ms: at least this long, and then until `minOps` operations were answered with
   * something other than error 11 (a slow machine, or a store slow to come back, runs longer:
   * the checks need served operations, not refusals), at most `maxMs`.
   */
  durationMs: number;
  minOps?: number;
  maxMs?: number;
  seed: number;
  /** Prefix of user ids, so that runs sharing a store do not meet. */
  users: string;
}

interface Pools {
  sessions: { id: string; user: string }[];
  refresh: string[];
  access: string[];
}

const WEIGHTS: [string, number][] = [
  ['create_session', 14],
  ['validate_session', 22],
  ['destroy_session', 5],
  ['regenerate_session', 4],
  ['race_end', 3],
  ['subscribe_session', 8],
  ['revoke_user_sessions', 2],
  ['exchange_session', 5],
  ['generate_access_token', 6],
  ['refresh_token', 8],
  ['race_refresh', 4],
  ['revoke_token', 4],
  ['verify_token', 15],
];
const TOTAL = WEIGHTS.reduce((s, [, w]) => s + w, 0);

/** Runs the workload until `durationMs` has passed; resolves when every client loop has stopped. */
export async function runWorkload(nodes: RecordedNode[], o: WorkloadOptions): Promise<void> {
  const pools: Pools = { sessions: [], refresh: [], access: [] };
  const start = performance.now();
  // Operations answered, but for error 11 (the store away): counted only once the duration has passed.
  const served = () => nodes[0]!.history.ops.filter((op) => op.reply !== undefined && !(op.reply.type === 'error' && op.reply.code === 11)).length;
  const running = () => {
    const t = performance.now() - start;
    return t < o.durationMs || (t < (o.maxMs ?? o.durationMs) && served() < (o.minOps ?? 0));
  };
  const loops: Promise<void>[] = [];
  for (const node of nodes) {
    for (let c = 0; c < o.clientsPerNode; c++) {
      loops.push(clientLoop(nodes, node, `c${node.index}-${c}`, prng(o.seed * 1000 + node.index * 10 + c), running, pools, o.users));
    }
  }
  await Promise.all(loops);
}

async function clientLoop(nodes: RecordedNode[], home: RecordedNode, src: string, rnd: () => number, running: () => boolean, pools: Pools, users: string) {
  const pick = <T>(list: T[], recent = 40): T | undefined =>
    list.length === 0 ? undefined : list[list.length - 1 - Math.floor(rnd() * Math.min(recent, list.length))];
  const anyNode = () => nodes[Math.floor(rnd() * nodes.length)]!;
  const user = () => `${users}-u${Math.floor(rnd() * 5)}`;
  const learn = (op: Op) => {
    const r = op.reply;
    if (r === undefined) return;
    if (r.type === 'session_created') pools.sessions.push({ id: r.session_id as string, user: op.req.user_id as string });
    if (r.type === 'session_regenerated') {
      const old = pools.sessions.find((s) => s.id === op.req.old_session_id);
      if (old) pools.sessions.push({ id: r.new_session_id as string, user: old.user });
    }
    if (r.type === 'token_generated' || r.type === 'token_refreshed') {
      pools.refresh.push(r.refresh_token as string);
      pools.access.push(r.access_token as string);
    }
  };
  const send = async (node: RecordedNode, body: Body) => learn(await node.request(body, src));

  while (running()) {
    let r = rnd() * TOTAL;
    let kind = WEIGHTS[0]![0];
    for (const [k, w] of WEIGHTS) {
      if ((r -= w) < 0) {
        kind = k;
        break;
      }
    }
    const s = pick(pools.sessions);
    const rt = pick(pools.refresh, 20);
    const at = pick(pools.access);
    switch (kind) {
      case 'validate_session':
      case 'destroy_session':
      case 'exchange_session':
        if (s) await send(anyNode(), { type: kind, session_id: s.id });
        else await send(anyNode(), { type: 'create_session', user_id: user() });
        break;
      case 'subscribe_session':
        // Subscriptions stay on the client's own node: pushes come back to its `src` there.
        if (s) await send(home, { type: kind, session_id: s.id });
        break;
      case 'regenerate_session':
        if (s) await send(anyNode(), { type: kind, old_session_id: s.id });
        break;
      case 'race_end':
        // One session ended on every node at once, by different means.
        if (s) {
          await Promise.all(
            nodes.map((n, i) =>
              send(
                n,
                i % 3 === 0
                  ? { type: 'destroy_session', session_id: s.id }
                  : i % 3 === 1
                    ? { type: 'regenerate_session', old_session_id: s.id }
                    : { type: 'validate_session', session_id: s.id },
              ),
            ),
          );
        }
        break;
      case 'revoke_user_sessions':
        await send(anyNode(), { type: kind, user_id: s?.user ?? user() });
        break;
      case 'refresh_token':
        if (rt) await send(anyNode(), { type: kind, refresh_token: rt });
        break;
      case 'race_refresh':
        // The same refresh token on every node at once: exactly one may rotate it.
        if (rt) await Promise.all(nodes.map((n) => send(n, { type: 'refresh_token', refresh_token: rt })));
        break;
      case 'revoke_token':
        if (rt && rnd() < 0.5) await send(anyNode(), { type: kind, token: rt });
        else if (at) await send(anyNode(), { type: kind, token: at });
        break;
      case 'verify_token':
        if (at) await send(anyNode(), { type: kind, token: at });
        break;
      case 'generate_access_token':
        await send(anyNode(), { type: kind, payload: { sub: user(), role: 'tester' } });
        break;
      default: {
        // create_session: a few short-lived ones, so that TTL ends happen during the run.
        const ttl = rnd() < 0.1 ? 1 + Math.floor(rnd() * 2) : undefined;
        await send(anyNode(), ttl === undefined ? { type: 'create_session', user_id: user() } : { type: 'create_session', user_id: user(), ttl });
      }
    }
  }
}
