import type { StoreHealthLog } from './store-health-log.js';

/** What the probe tells the event bus of a remote store (ChannelEventBus). */
export interface ResyncingBus {
  /** Sends again the ends that could not be announced while the backend was away. */
  retry(): void;
  /** Reads what was published while this node was cut off. */
  resync(): void;
}

export interface HealthProbeOptions {
  /** The state at start: whether the backend answered while the store was created. */
  healthy: boolean;
  /** One probe: true when the backend answered in time; never rejects. */
  probe: () => Promise<boolean>;
  /** Interval between probes; one runs at a time. */
  probeMs: number;
  /** The store's operation time-out, for the log lines. */
  timeoutMs: number;
  health: StoreHealthLog;
  bus: ResyncingBus;
}

/**
 * The health of a remote store (Redis, PostgreSQL): a probe every `probeMs` sets `healthy`,
 * an operation that timed out clears it until a probe answers. Each change of state is logged
 * once; on the way back up the event bus resyncs, and every probe that answers retries the
 * ends not yet announced.
 */
export class HealthProbe {
  readonly #o: HealthProbeOptions;
  #healthy: boolean;
  #closed = false;
  #probing: Promise<void> | undefined;

  constructor(o: HealthProbeOptions) {
    this.#o = o;
    this.#healthy = o.healthy;
    this.#tick();
  }

  /** As of the last probe or time-out. */
  get healthy(): boolean {
    return this.#healthy;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** A timed-out operation is evidence enough: unhealthy from now on, until a probe answers. */
  timedOut(): void {
    if (this.#closed || !this.#healthy) return;
    this.#healthy = false;
    this.#o.health.timedOut(this.#o.timeoutMs);
  }

  /**
   * The backend answered but refused an operation in a way waiting does not cure (PostgreSQL's
   * tables gone, a privilege missing): unhealthy, logged with the cause noted, until a probe
   * answers.
   */
  refused(): void {
    if (this.#closed || !this.#healthy) return;
    this.#healthy = false;
    this.#o.health.down(this.#o.timeoutMs);
  }

  /** Stops probing (the store is closing). */
  close(): void {
    this.#closed = true;
  }

  readonly #tick = (): void => {
    if (this.#closed) return;
    // One probe at a time: a slow one is not stacked behind by the next tick.
    if (this.#probing === undefined) this.#probing = this.#run().finally(() => (this.#probing = undefined));
    setTimeout(this.#tick, this.#o.probeMs).unref();
  };

  async #run(): Promise<void> {
    const ok = await this.#o.probe();
    // Ends that could not be announced while the backend was away go out now.
    if (ok && !this.#closed) this.#o.bus.retry();
    if (this.#closed || ok === this.#healthy) return;
    this.#healthy = ok;
    if (ok) {
      this.#o.health.up();
      // Ends published while this node was cut off were not delivered to it.
      this.#o.bus.resync();
    } else {
      this.#o.health.down(this.#o.timeoutMs);
    }
  }
}
