import KeyvRedis, { Keyv, createClient, createCluster } from '@keyv/redis';
import type { Logger } from '../log.js';
import { KeyvStore } from './keyv-store.js';
import { RedisAtomics, type RedisCommands } from './redis-atomics.js';
import { ClusterHealth, type ClusterClient } from './redis-cluster-health.js';
import { within } from './within.js';
import { ChannelEventBus, type Publisher } from './channel-events.js';
import { parseRedisUrl, type RedisTarget } from './redis-url.js';
import { HealthProbe } from './health-probe.js';
import { StoreHealthLog } from './store-health-log.js';
import type { StoreOptions } from './types.js';

export { parseRedisUrl, type RedisTarget } from './redis-url.js';

export interface RedisStoreOptions {
  target: RedisTarget;
  /** Per-operation limit: past it the operation fails with UNAVAILABLE (wire code 11). */
  timeoutMs: number;
  log?: Logger;
  /** How long start-up waits for a first connection before going on, not ready (default 2000). */
  connectWaitMs?: number;
  /** Interval of the health probe behind isReady() (default 500). */
  probeMs?: number;
}

/** A single client and a cluster client, seen through what this module uses of them. */
interface RedisHandle extends RedisCommands {
  publish(channel: string, message: string): Promise<unknown>;
  PUBSUB_NUMSUB(channels: string[]): Promise<Record<string, number>>;
  subscribe(channels: string | string[], listener: (message: string) => void): Promise<unknown>;
  readonly isOpen: boolean;
  readonly isReady?: boolean;
  connect(): Promise<unknown>;
  close(): Promise<unknown>;
  destroy(): unknown;
  duplicate(overrides?: object): unknown;
  on(event: string, fn: (...args: unknown[]) => void): unknown;
}

/** Reconnects quickly (Redis is usually back within seconds) but never hammers it. */
const reconnectStrategy = (retries: number): number => Math.min(50 * 2 ** retries, 500);
/** Bounds the commands waiting on a stalled server: beyond it they fail at once. */
const MAX_QUEUED_COMMANDS = 10_000;

/** How often the subscriber connection is PINGed (PING is allowed while subscribed). */
export const EVENT_PING_MS = 1000;
/**
 * Silence on the subscriber connection past which it is judged stalled and reconnected: a
 * PING unanswered for the operation limit (at least 1 s) after the interval in which a
 * healthy connection is always silent between a PONG and the next PING.
 */
export const eventSilenceMs = (timeoutMs: number): number => EVENT_PING_MS + Math.max(timeoutMs, 1000);

function clientOptions(timeoutMs: number) {
  return {
    socket: { connectTimeout: Math.max(timeoutMs, 1000), reconnectStrategy },
    // Fail fast while disconnected: a command never waits for a server that may not return.
    disableOfflineQueue: true,
    commandsQueueMaxLength: MAX_QUEUED_COMMANDS,
  };
}

/** The store behind `GATEWAY_STORE=redis://...` (see createStore). */
export async function createRedisStore(o: StoreOptions): Promise<KeyvStore> {
  return openRedisStore({ target: parseRedisUrl(o.url), timeoutMs: o.timeoutMs, log: o.log });
}

/**
 * Keyv over @keyv/redis for get/set/delete (namespaced keys, Redis TTLs), Redis' own
 * atomic commands for take/swap/index, and pub/sub for cross-node events.
 *
 * Failure handling: commands fail at once while disconnected (no offline queue), stalled
 * ones time out in KeyvStore, both as UNAVAILABLE; the clients reconnect by themselves
 * every 50-500 ms; a PING probe drives isReady() and, when Redis comes back, tells the
 * event bus to resync (pub/sub messages sent while a node was cut off are lost).
 */
export async function openRedisStore(o: RedisStoreOptions): Promise<KeyvStore> {
  const { target, timeoutMs, log } = o;
  const options = clientOptions(timeoutMs);
  const single = target.mode === 'single' ? createClient({ url: target.urls[0], ...options }) : undefined;
  const cluster = target.mode === 'cluster' ? createCluster({ rootNodes: target.urls.map((url) => ({ url })), defaults: options }) : undefined;
  const raw = (single ?? cluster)!;
  const redis = raw as unknown as RedisHandle;
  // The subscriber only ever reads, so a path that stops forwarding without closing (a proxy, a
  // firewall that dropped the flow, a stopped server) looks like a quiet channel: pinged, and
  // destroyed by node-redis after a silence (socketTimeout), which reconnects, resubscribes and
  // resyncs as after any break. On a cluster the same settings go to every node client of the
  // subscriber's cluster, its pub/sub client included.
  const listening = { ...options, pingInterval: EVENT_PING_MS, socket: { ...options.socket, socketTimeout: eventSilenceMs(timeoutMs) } };
  const sub = (single ? redis.duplicate(listening) : redis.duplicate({ defaults: listening })) as RedisHandle;
  const channel = `${target.namespace}::events@${target.db}`;
  // A cluster publishes through any live master (clusterHealth, made below once the key layout is known).
  // A single server counts the subscribers of a channel, so ends may go out in groups
  // (channel-events.ts); a cluster's count is per node: one message per end there.
  const publisher: Publisher = cluster
    ? { publish: (ch, message) => clusterHealth!.publish(ch, message) }
    : { publish: (ch, message) => redis.publish(ch, message), subscribers: (channels) => redis.PUBSUB_NUMSUB(channels) };
  const bus = new ChannelEventBus(channel, publisher, timeoutMs);
  const where = target.mode === 'cluster' ? `Redis Cluster (${target.urls.length} seed nodes)` : 'Redis';

  // node-redis emits every connection error; the probe below turns them into state changes,
  // each logged once with the latest of these errors as its cause.
  const health = new StoreHealthLog(log, where);
  redis.on('error', health.note);
  // node-redis' SocketTimeoutError (not exported here): the subscriber went silent. One line
  // per stall; the reconnection's own failures are the probe's to report.
  let stalled = false;
  // A cluster reports its node clients' errors as 'node-error'.
  sub.on(single ? 'error' : 'node-error', (err: unknown) => {
    if (stalled || !(err instanceof Error) || !err.message.startsWith('Socket timeout')) return;
    stalled = true;
    log?.warn(
      { store: where, err },
      `${where} event connection (SUBSCRIBE) silent for ${eventSilenceMs(timeoutMs)} ms: reconnecting it; not ready until it listens again, then the sessions followed here are re-checked`,
    );
  });
  const listeningAgain = (): void => {
    stalled = false;
    log?.info({ store: where }, `${where} event connection listening again`);
  };
  sub.on('ready', () => {
    if (stalled) listeningAgain();
  });

  let subscribed: Promise<boolean> | undefined;
  const subscribe = (): Promise<boolean> => {
    if (subscribed !== undefined) {
      // Resubscribed by node-redis before 'ready': anything sent while it was away is lost.
      void subscribed.then((ok) => ok && bus.resync());
      return subscribed;
    }
    // Listening to groupsChannel too, in the same command, tells the other nodes this one reads `ended_many`.
    const attempt = sub
      .subscribe(single ? [channel, bus.groupsChannel] : channel, (message: string) => bus.deliver(message))
      .then(
        () => {
          bus.resync();
          return true;
        },
        (err: unknown) => {
          subscribed = undefined;
          log?.warn({ store: where, err }, `${where} subscribe failed; retrying on reconnect`);
          return false;
        },
      );
    subscribed = attempt;
    return attempt;
  };
  if (target.mode === 'single') sub.on('ready', () => void subscribe());

  const connectWait = o.connectWaitMs ?? 2000;
  const [up, subUp] = await Promise.all([within(health.watch(redis.connect()), connectWait), within(sub.connect(), connectWait)]);
  // Listening before the store is handed out: no event published after start-up is missed.
  if (subUp) await within(subscribe(), connectWait);
  if (!up) health.notYet(connectWait);

  const keyvRedis = new KeyvRedis(raw, { throwOnErrors: true, throwOnConnectError: true });
  // Values are JSON by contract (Store): plain JSON, without Keyv's default reviver, which
  // un-escapes ':'-prefixed strings and Buffers we never store, at a cost on every read.
  const keyv = new Keyv({
    store: keyvRedis,
    namespace: target.namespace,
    useKeyPrefix: false,
    throwOnErrors: true,
    serialize: JSON.stringify,
    deserialize: JSON.parse,
  });
  // The exact key @keyv/redis writes (namespace + '::' + key), so raw commands and Keyv meet.
  const redisKey = (key: string): string => keyvRedis.createKeyPrefix(key, keyvRedis.namespace);
  const atomics = new RedisAtomics(
    redis,
    {
      redisKey,
      serialize: (data) => keyv.serialize!(data) as string,
      deserialize: (text) => keyv.deserialize!(text) as { value: unknown; expires?: number | null } | undefined,
      now: () => Date.now(),
    },
    { batchReads: target.mode === 'single' },
  );
  // The scripts, loaded at every connection (a restarted server has none): see loadScripts. A
  // cluster loads each one on its key's master at first use instead (NOSCRIPT, then EVAL).
  if (single) {
    const load = (): void => void atomics.loadScripts().catch(() => undefined);
    single.on('ready', load);
    if (single.isReady) load();
  }

  // Health: a PING per probe (per master on a cluster); a stalled server (SIGSTOP, a full
  // network buffer) keeps its sockets open, so socket state alone would call it ready.
  // On a cluster, health is per master: only the keys of a master that is down fail fast,
  // and the probe refreshes the topology until a replica has taken over (redis-cluster-health.ts).
  const clusterHealth = cluster ? new ClusterHealth([cluster as unknown as ClusterClient, sub as unknown as ClusterClient], redisKey) : undefined;
  const masters = clusterHealth;
  const probe = single ? () => within(health.watch(single.ping()), timeoutMs) : () => masters!.probe(timeoutMs);
  const healthProbe = new HealthProbe({
    healthy: up,
    probe: async () => {
      // A cluster's pub/sub client that failed to reconnect is dropped by node-redis with our
      // subscription: subscribe again (the resync after it listens finds what was missed).
      if (cluster && (sub as unknown as ClusterClient).pubSubNode === undefined) {
        subscribed = undefined;
        await within(subscribe(), timeoutMs);
      }
      // A cluster's pub/sub client reconnects and resubscribes by itself after a stall, with no
      // event of its own: once it listens again, what was published meanwhile is re-checked.
      if (cluster && stalled) {
        const node = (sub as unknown as ClusterClient).pubSubNode;
        if (node !== undefined && node.connectPromise === undefined && node.client.isReady) {
          listeningAgain();
          bus.resync();
        }
      }
      return probe();
    },
    probeMs: o.probeMs ?? 500,
    timeoutMs,
    health,
    bus,
  });

  // A timed-out operation is evidence enough: fail fast from now on (on a cluster, for the
  // keys of that operation's master), until a probe answers.
  const onTimeout = (key: string): void => {
    if (healthProbe.closed) return;
    masters?.timedOut(key);
    healthProbe.timedOut();
  };
  // A cluster that never answered has no slot map yet: every key fails fast until it does.
  const unreachable = masters ? (key: string) => (!healthProbe.healthy && masters.healthy) || masters.unreachable(key) : () => !healthProbe.healthy;

  const isReady = (): boolean => {
    if (!healthProbe.healthy) return false;
    if (target.mode === 'single') return redis.isReady === true && sub.isReady === true;
    return redis.isOpen && !stalled;
  };

  return new KeyvStore({
    kind: 'redis',
    keyv,
    atomics,
    events: bus,
    timeoutMs,
    read: (key) => atomics.read(key),
    isReady,
    unreachable,
    onTimeout,
    close: async () => {
      // Ends gathered for this turn go out before the connection closes.
      await bus.flush();
      healthProbe.close();
      const shut = async (c: RedisHandle) => {
        if (!c.isOpen) return;
        if (!(await within(c.close(), timeoutMs))) {
          try {
            c.destroy();
          } catch {
            // already closed
          }
        }
      };
      await Promise.all([shut(sub), shut(redis)]);
    },
  });
}
