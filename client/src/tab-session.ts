import { Emitter } from './emitter.js';
import { GatewayConnectionError, GatewayTimeoutError } from './errors.js';
import { GatewayClient, type ClientEvents, type GatewayClientOptions } from './gateway-client.js';
import type { Reply, ReplyTo } from './messages.js';

/** The events every tab sees, whichever tab holds the socket. */
export type TabEvents = Pick<
  ClientEvents,
  'open' | 'close' | 'reconnecting' | 'session_expired' | 'session_expiring' | 'session_regenerated' | 'session_extended' | 'session_updated' | 'push'
> & {
  /** This tab became the leader (it holds the socket) or stopped being it. */
  leader: { leader: boolean };
};

type Forwarded = Exclude<keyof TabEvents, 'leader'>;
const FORWARDED: readonly Forwarded[] = [
  'open',
  'close',
  'reconnecting',
  'session_expired',
  'session_expiring',
  'session_regenerated',
  'session_extended',
  'session_updated',
  'push',
];

export interface TabSessionOptions extends GatewayClientOptions {
  /** Name of the lock and channel the tabs of one origin share (default `auth-gateway:` + url). */
  name?: string;
  /** Elect with Web Locks when the browser has them (default true); false: the BroadcastChannel fallback. */
  webLocks?: boolean;
}

/** What crosses the BroadcastChannel. */
type Note =
  | { t: 'event'; name: Forwarded; value: unknown }
  | { t: 'hello' }
  | { t: 'state'; connected: boolean; hasSession: boolean | undefined; expiring?: { expiresAt: number } }
  | { t: 'reconnect'; session?: boolean }
  | { t: 'request'; from: string; id: number; type: string; fields: Record<string, unknown> }
  | { t: 'reply'; to: string; id: number; body?: Reply; error?: string }
  | { t: 'beacon'; from: string }
  | { t: 'resign'; from: string };

/** Fallback election: the leader's beacon period, and the silence after which another tab takes over. */
const BEACON_MS = 200;
const LEADER_SILENCE_MS = 700;

/**
 * One WebSocket per browser: the tabs of an origin elect one leader (Web Locks, or a
 * BroadcastChannel election where there are none) that holds the bound connection; every tab
 * gets its events through a BroadcastChannel, and may send requests through the leader.
 * When the leader tab closes, the next tab takes the lock and connects, carrying what the
 * group knew of the session, so an end that happened in between is still reported.
 *
 * @example
 * const tabs = new TabSession({ url: `wss://${location.host}/ws`, checkSession });
 * tabs.on('session_expired', ({ reason }) => showLoggedOut(reason));
 * tabs.start();
 */
export class TabSession extends Emitter<TabEvents> {
  readonly #o: TabSessionOptions;
  readonly #id = Math.random().toString(36).slice(2);
  readonly #channel: BroadcastChannel;
  #client: GatewayClient | undefined;
  #release: (() => void) | undefined;
  #started = false;
  #connected = false;
  #hasSession: boolean | undefined;
  #expiresAt: number | undefined;
  #requestId = 0;
  readonly #waiting = new Map<number, { resolve: (b: Reply) => void; reject: (e: Error) => void; timer: ReturnType<typeof setTimeout> }>();
  #beacon: ReturnType<typeof setInterval> | undefined;
  #watch: ReturnType<typeof setInterval> | undefined;
  #lastBeacon = 0;
  readonly #onPageHide = () => this.stop();

  constructor(options: TabSessionOptions) {
    super();
    this.#o = options;
    this.#channel = new BroadcastChannel(options.name ?? `auth-gateway:${options.url}`);
    this.#channel.onmessage = (ev: MessageEvent<Note>) => this.#onNote(ev.data);
  }

  /** True while this tab holds the socket. */
  get isLeader(): boolean {
    return this.#client !== undefined;
  }

  /** True while the leader's socket is open. */
  get connected(): boolean {
    return this.#connected;
  }

  /** Joins the election (and connects when elected). `session: true`: this page knows it holds a session. */
  start(o: { session?: boolean } = {}): void {
    if (this.#started) return;
    this.#started = true;
    if (o.session !== undefined) this.#hasSession = o.session;
    addEventListener('pagehide', this.#onPageHide);
    this.#post({ t: 'hello' });
    const locks = (navigator as Navigator & { locks?: LockManager }).locks;
    if (this.#o.webLocks !== false && locks !== undefined) {
      void locks.request(
        this.#channelName(),
        () =>
          new Promise<void>((release) => {
            if (!this.#started) return release();
            this.#release = release;
            this.#lead();
          }),
      );
      return;
    }
    this.#lastBeacon = Date.now();
    this.#watch = setInterval(() => {
      if (this.#client === undefined && Date.now() - this.#lastBeacon > LEADER_SILENCE_MS) this.#lead();
    }, BEACON_MS);
  }

  /** Leaves the group: a leader closes its socket and hands the lock to the next tab. */
  stop(): void {
    if (!this.#started) return;
    this.#started = false;
    removeEventListener('pagehide', this.#onPageHide);
    clearInterval(this.#watch);
    if (this.#client !== undefined) this.#post({ t: 'resign', from: this.#id });
    this.#stepDown();
    this.#channel.close();
  }

  /**
   * The cookie changed in this tab (a login, or the new cookie after a regeneration): the
   * leader reconnects at once, bound to it. `session: true` when it names a live session.
   */
  reconnect(o: { session?: boolean } = {}): void {
    if (o.session !== undefined) this.#hasSession = o.session;
    if (this.#client !== undefined) void this.#client.reconnect(o).catch(() => undefined);
    else this.#post({ t: 'reconnect', session: o.session });
  }

  /** Extends this browser's session to now + `ttl` (default: its own ttl); every tab is told (`session_extended`). */
  extendSession(o: { ttl?: number } = {}): Promise<ReplyTo<'extend_session'>> {
    return this.request<ReplyTo<'extend_session'>>('extend_session', o.ttl === undefined ? {} : { ttl: o.ttl });
  }

  /** Sends a request over the leader's socket (from any tab); resolves with its reply body. */
  request<R extends Reply = Reply>(type: string, fields: Record<string, unknown> = {}, timeoutMs = this.#o.timeoutMs ?? 10_000): Promise<R> {
    if (this.#client !== undefined) return this.#client.request<R>(type, fields, { timeoutMs });
    const id = ++this.#requestId;
    return new Promise<R>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(id);
        reject(new GatewayTimeoutError(type, timeoutMs));
      }, timeoutMs);
      this.#waiting.set(id, { resolve: resolve as (b: Reply) => void, reject, timer });
      this.#post({ t: 'request', from: this.#id, id, type, fields });
    });
  }

  #channelName(): string {
    return this.#o.name ?? `auth-gateway:${this.#o.url}`;
  }

  #post(n: Note): void {
    try {
      this.#channel.postMessage(n);
    } catch {
      // the channel is closed: this tab is leaving
    }
  }

  /** This tab was elected: open the socket and forward every event to the others. */
  #lead(): void {
    if (this.#client !== undefined || !this.#started) return;
    const client = new GatewayClient(this.#o);
    this.#client = client;
    for (const name of FORWARDED) {
      client.on(name, (value) => {
        this.#post({ t: 'event', name, value });
        this.#local(name, value);
      });
    }
    if (this.#o.webLocks === false || (navigator as Navigator & { locks?: LockManager }).locks === undefined) {
      this.#beacon = setInterval(() => this.#post({ t: 'beacon', from: this.#id }), BEACON_MS);
      this.#post({ t: 'beacon', from: this.#id });
    }
    this.emit('leader', { leader: true });
    // Carries what the group knew: a session that ended while no tab was connected is reported.
    void client.connect(this.#hasSession === undefined ? {} : { session: this.#hasSession }).catch(() => undefined);
  }

  #stepDown(): void {
    clearInterval(this.#beacon);
    this.#beacon = undefined;
    const client = this.#client;
    this.#client = undefined;
    client?.close();
    this.#release?.();
    this.#release = undefined;
    if (client !== undefined) this.emit('leader', { leader: false });
  }

  /** Bookkeeping every tab does on an event, then the app's listeners. */
  #local<K extends Forwarded>(name: K, value: TabEvents[K]): void {
    if (name === 'open') this.#connected = true;
    else if (name === 'close') this.#connected = false;
    else if (name === 'session_expiring') {
      const v = value as TabEvents['session_expiring'];
      if (v.bound) {
        this.#hasSession = true;
        this.#expiresAt = Date.now() + v.expiresIn * 1000;
      }
    } else if (name === 'session_expired' && (value as TabEvents['session_expired']).bound) {
      this.#hasSession = false;
      this.#expiresAt = undefined;
    } else if (name === 'session_extended' && (value as TabEvents['session_extended']).bound) {
      // The warning was for the old end; a new one comes before the new end.
      this.#hasSession = true;
      this.#expiresAt = undefined;
    } else if (name === 'session_regenerated') this.#hasSession = true;
    this.emit(name, value);
  }

  #onNote(n: Note): void {
    switch (n.t) {
      case 'event':
        this.#local(n.name, n.value as never);
        return;
      case 'hello':
        if (this.#client !== undefined) {
          const expiring = this.#expiresAt === undefined ? undefined : { expiresAt: this.#expiresAt };
          this.#post({ t: 'state', connected: this.#client.connected, hasSession: this.#hasSession, expiring });
        }
        return;
      case 'state':
        if (n.hasSession !== undefined) this.#hasSession = n.hasSession;
        if (n.connected && !this.#connected) this.#local('open', { reconnected: false });
        if (n.expiring !== undefined && n.expiring.expiresAt > Date.now()) {
          this.#local('session_expiring', { bound: true, expiresIn: Math.ceil((n.expiring.expiresAt - Date.now()) / 1000) });
        }
        return;
      case 'reconnect':
        if (n.session !== undefined) this.#hasSession = n.session;
        if (this.#client !== undefined) void this.#client.reconnect(n.session === undefined ? {} : { session: n.session }).catch(() => undefined);
        return;
      case 'request': {
        const client = this.#client;
        if (client === undefined) return;
        client.request(n.type, n.fields).then(
          (body) => this.#post({ t: 'reply', to: n.from, id: n.id, body }),
          (err: unknown) => this.#post({ t: 'reply', to: n.from, id: n.id, error: err instanceof Error ? err.message : String(err) }),
        );
        return;
      }
      case 'reply': {
        if (n.to !== this.#id) return;
        const w = this.#waiting.get(n.id);
        if (w === undefined) return;
        this.#waiting.delete(n.id);
        clearTimeout(w.timer);
        if (n.body !== undefined) w.resolve(n.body);
        else w.reject(new GatewayConnectionError(n.error ?? 'the leader tab could not send the request'));
        return;
      }
      case 'beacon':
        this.#lastBeacon = Date.now();
        // Two leaders (the fallback raced): the one with the larger id steps down.
        if (this.#client !== undefined && n.from < this.#id) this.#stepDown();
        return;
      case 'resign':
        // Take over at the next watch tick rather than after the silence; racing claims settle by beacon.
        if (this.#o.webLocks === false || (navigator as Navigator & { locks?: LockManager }).locks === undefined) {
          this.#lastBeacon = 0;
        }
        return;
    }
  }
}
