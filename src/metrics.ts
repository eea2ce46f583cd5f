import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Gateway, GatewayObserver } from './gateway.js';
import { HotHistogram, PendingCounts } from './hot-metrics.js';
import { VERSION } from './version.js';

/** Where the server stands in its shutdown (gateway_drain_state). */
export const DrainState = { serving: 0, deregistering: 1, closing: 2 } as const;

/** The connection roles of the WebSocket server, as metric labels. */
export type Role = 'service' | 'browser';

/**
 * The gateway's Prometheus metrics, on a registry of its own (never prom-client's global
 * one, so two servers in one process, as in tests, do not collide). Label values come from
 * closed sets (message types the gateway knows, reply types, error codes): the series
 * count stays bounded whatever clients send.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly connections = new Gauge({ name: 'gateway_connections', help: 'Open WebSocket connections', labelNames: ['role'], registers: [this.registry] });
  readonly connectionsOpened = new Counter({
    name: 'gateway_connections_opened_total',
    help: 'WebSocket connections accepted',
    labelNames: ['role', 'bound'],
    registers: [this.registry],
  });
  readonly connectionsClosed = new Counter({
    name: 'gateway_connections_closed_total',
    help: 'WebSocket connections closed, by who or what closed them',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly upgradesRefused = new Counter({
    name: 'gateway_upgrades_refused_total',
    help: 'WebSocket upgrades refused, by HTTP status',
    labelNames: ['status'],
    registers: [this.registry],
  });
  /** Counted per request in `#messageCounts`, added at each scrape (src/hot-metrics.ts). */
  readonly messages: Counter<'type' | 'outcome'> = new Counter({
    name: 'gateway_messages_total',
    help: 'Requests answered, by request type and outcome (reply type or error_<code>)',
    labelNames: ['type', 'outcome'],
    registers: [this.registry],
    collect: () => this.#messageCounts.flush(),
  });
  readonly #messageCounts = new PendingCounts(this.messages);
  readonly latency = new HotHistogram({
    name: 'gateway_message_duration_seconds',
    help: 'Time from serving a request to its reply, by request type',
    labels: ['type'],
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [this.registry],
  });
  readonly pushes = new Counter({
    name: 'gateway_pushes_total',
    help: 'Pushes sent (session_expired, session_expiring, session_extended, session_updated)',
    labelNames: ['type'],
    registers: [this.registry],
  });
  readonly storeErrors = new Counter({ name: 'gateway_store_errors_total', help: 'Store operations that failed or timed out', registers: [this.registry] });
  /** Timed on every remote store operation: counted in place, as the message latency is. */
  readonly storeDuration = new HotHistogram({
    name: 'gateway_store_operation_duration_seconds',
    help: 'Time of each operation on a remote store (Redis, PostgreSQL), by operation and outcome (ok, error)',
    labels: ['op', 'outcome'],
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [this.registry],
  });
  readonly storeUp = new Gauge({
    name: 'gateway_store_up',
    help: '1 while the store answers its health probe, 0 while it is unreachable',
    registers: [this.registry],
    collect: () => {
      if (this.#gateway !== undefined) this.storeUp.set(this.#gateway.store.isReady() ? 1 : 0);
    },
  });
  readonly buildInfo = new Gauge({
    name: 'gateway_build_info',
    help: 'Always 1: the version and node id of this gateway',
    labelNames: ['version', 'node'],
    registers: [this.registry],
  });
  readonly sessionsFollowed = new Gauge({
    name: 'gateway_sessions_followed',
    help: 'Sessions this node follows for their end (by subscriptions or bound connections)',
    registers: [this.registry],
    collect: () => {
      if (this.#gateway !== undefined) this.sessionsFollowed.set(this.#gateway.hub.size);
    },
  });
  readonly subscriptions = new Gauge({
    name: 'gateway_subscriptions',
    help: 'Followers of sessions on this node: subscriptions and bound connections',
    registers: [this.registry],
    collect: () => {
      if (this.#gateway !== undefined) this.subscriptions.set(this.#gateway.hub.subscriptions);
    },
  });
  readonly boundConnections = new Gauge({
    name: 'gateway_bound_connections',
    help: 'Open browser connections bound to a session by its cookie',
    registers: [this.registry],
  });
  readonly pushLateness = new Histogram({
    name: 'gateway_push_lateness_seconds',
    help: "Time from a session's own end (TTL, idle) to telling its followers",
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly drainState = new Gauge({
    name: 'gateway_drain_state',
    help: '0 serving, 1 draining (readyz 503, still serving), 2 closing connections',
    registers: [this.registry],
  });
  readonly backchannelLogouts = new Counter({
    name: 'gateway_backchannel_logouts_total',
    help: 'Calls of POST /oidc/backchannel-logout that reached the token, by outcome (ended, refused, replayed, unavailable)',
    labelNames: ['outcome'],
    registers: [this.registry],
  });
  #gateway: Gateway | undefined;

  /** The hooks the core calls (`createApp(config, { observer })`). */
  readonly observer: GatewayObserver = {
    message: (type, outcome, seconds) => {
      this.#messageCounts.add(type, outcome);
      this.latency.observe(seconds, type);
    },
    push: (type) => this.pushes.inc({ type }),
    storeError: () => this.storeErrors.inc(),
    storeOperation: (op, seconds, ok) => this.storeDuration.observe(seconds, op, ok ? 'ok' : 'error'),
    pushLateness: (seconds) => this.pushLateness.observe(seconds),
  };

  constructor(o: { processMetrics?: boolean } = {}) {
    for (const role of ['service', 'browser'] as const) this.connections.set({ role }, 0);
    this.storeErrors.inc(0);
    this.boundConnections.set(0);
    this.drainState.set(DrainState.serving);
    if (o.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  /** Reads the gauges that follow the gateway's state (store health, followed sessions) at each scrape. */
  watch(gateway: Gateway): void {
    this.#gateway = gateway;
    this.buildInfo.set({ version: VERSION, node: gateway.nodeId }, 1);
  }

  /** A message that never reached a handler (malformed, unknown type): counted under type `invalid`. */
  undecodable(code: number): void {
    this.#messageCounts.add('invalid', `error_${code}`);
  }

  /** The Prometheus text exposition. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
