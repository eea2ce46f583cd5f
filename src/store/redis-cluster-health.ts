import calculateSlot from 'cluster-key-slot';
import { within } from './within.js';

/** What this module uses of a node-redis cluster client. */
export interface ClusterClient {
  readonly masters: readonly ClusterNode[];
  readonly slots: readonly ({ master: ClusterNode } | undefined)[];
  /** The node a pub/sub client listens on; `connectPromise` is set until it has (re)subscribed. */
  readonly pubSubNode?: { client: { isReady: boolean }; connectPromise?: Promise<unknown> };
  nodeClient(node: ClusterNode): Promise<NodeClient>;
  publish(channel: string, message: string): Promise<unknown>;
}

interface ClusterNode {
  readonly address: string;
}

interface NodeClient {
  ping(): Promise<unknown>;
  publish(channel: string, message: string): Promise<unknown>;
}

/**
 * node-redis refreshes its slot map only when a live node answers MOVED or ASK, which a dead
 * master never does: after a failover the client would keep sending that master's slots to
 * the dead address. Its slot table offers `rediscover(startWith)`, the refresh it runs on
 * MOVED; the probe calls it while a master is down, so the promoted replica is found.
 */
interface Rediscoverable {
  _slots: { rediscover(startWith: unknown): Promise<void> };
}

/**
 * Health of a Redis Cluster, master by master: a master that failed its last probe, or whose
 * operation timed out, is down until a probe answers again; only keys whose slot it serves
 * fail fast (error 11). While any master is down each probe also refreshes the topology of
 * every client of the store (commands and pub/sub), so a promoted replica takes over.
 */
export class ClusterHealth {
  readonly #main: ClusterClient;
  readonly #clients: readonly ClusterClient[];
  readonly #redisKey: (key: string) => string;
  /** Addresses of the masters that are down. */
  #down = new Set<string>();

  /** `clients`: every cluster client of the store, `main` (the one that runs commands) first. */
  constructor(clients: readonly ClusterClient[], redisKey: (key: string) => string) {
    this.#main = clients[0]!;
    this.#clients = clients;
    this.#redisKey = redisKey;
  }

  /** True when no master is down. */
  get healthy(): boolean {
    return this.#down.size === 0;
  }

  /** True when `key`'s master is down (any key when none is given and a master is down). */
  unreachable(key?: string): boolean {
    if (this.#down.size === 0) return false;
    if (key === undefined) return true;
    const master = this.#masterOf(key);
    return master === undefined || this.#down.has(master);
  }

  /** An operation on `key` timed out: its master is down until a probe answers. */
  timedOut(key?: string): void {
    const master = key === undefined ? undefined : this.#masterOf(key);
    if (master !== undefined) this.#down.add(master);
    else for (const m of this.#main.masters) this.#down.add(m.address);
  }

  /**
   * PINGs every master (each within `timeoutMs`); while one is down, or a pub/sub client lost
   * its node, refreshes the slot map of every client from a live master. Resolves with
   * `healthy`, which also requires every pub/sub client to be listening.
   */
  async probe(timeoutMs: number): Promise<boolean> {
    const masters = [...this.#main.masters];
    const answers = await Promise.all(
      masters.map((m) =>
        within(
          this.#main.nodeClient(m).then((c) => c.ping()),
          timeoutMs,
        ),
      ),
    );
    const down = new Set(masters.filter((_, i) => !answers[i]).map((m) => m.address));
    const uncovered = this.#main.slots.some((s) => s === undefined);
    // A pub/sub client is connected before it has subscribed again (node-redis clears
    // connectPromise only then): until both, an event published to it is lost.
    const deaf = () => this.#clients.some((c) => c.pubSubNode !== undefined && (c.pubSubNode.connectPromise !== undefined || !c.pubSubNode.client.isReady));
    if (down.size > 0 || uncovered || deaf()) {
      const live = masters.find((_, i) => answers[i]);
      if (live !== undefined) {
        const startWith = await this.#main.nodeClient(live);
        await Promise.all(this.#clients.map((c) => within((c as unknown as Rediscoverable)._slots.rediscover(startWith), timeoutMs)));
        // The refreshed map may name new masters (a promoted replica): those are probed next time.
        for (const address of [...down]) if (!this.#main.masters.some((m) => m.address === address)) down.delete(address);
      }
    }
    this.#down = down;
    // A pub/sub client that is not listening yet misses events: not healthy until it is, so
    // that the owner's resync comes after it listens again.
    return this.healthy && !deaf();
  }

  /**
   * PUBLISH through any live master: in a cluster every node forwards it to all others, and
   * the master of the channel's slot may be the one that is down.
   */
  async publish(channel: string, message: string): Promise<unknown> {
    try {
      return await this.#main.publish(channel, message);
    } catch (err) {
      for (const m of this.#main.masters) {
        if (this.#down.has(m.address)) continue;
        try {
          return await (await this.#main.nodeClient(m)).publish(channel, message);
        } catch {
          // try the next master
        }
      }
      throw err;
    }
  }

  #masterOf(key: string): string | undefined {
    return this.#main.slots[calculateSlot(this.#redisKey(key))]?.master.address;
  }
}
