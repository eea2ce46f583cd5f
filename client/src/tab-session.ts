import { Emitter } from './emitter.js';
import { GatewayClientError, GatewayConnectionError, GatewayRequestError, GatewayTimeoutError } from './errors.js';
import { GatewayClient, type ClientEvents, type GatewayClientOptions, type SessionExpiredEvent } from './gateway-client.js';
import type { Reply, ReplyTo, SessionInvalid, Subscribed, Unsubscribed } from './messages.js';

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

/** An error as it crosses the channel: enough to make the same class again in the asking tab. */
interface WireError {
  kind: GatewayClientError['kind'] | 'other';
  message: string;
  code?: number;
  text?: string;
  requestType?: string;
}

/** The latest end of the cookie's session the group was told of, named so that a tab can tell whether it missed it. */
interface LastEnd {
  id: string;
  value: SessionExpiredEvent;
}

/**
 * What crosses the BroadcastChannel. A tab that (re)joins says what it followed (`hello`); the
 * leader's answer (`state`) carries the group's view: whether the cookie names a live session,
 * the latest end of it (`lastEnd`), the sessions followed, and those the group stopped
 * following (`forgotten`: the end it was told, or null when unsubscribed).
 */
type Note =
  | { t: 'event'; name: Forwarded; value: unknown; end?: string }
  | { t: 'hello'; from: string; session?: boolean; followed?: string[] }
  | {
      t: 'state';
      to: string;
      connected: boolean;
      hasSession: boolean | undefined;
      expiring?: { expiresAt: number };
      followed: string[];
      lastEnd?: LastEnd;
      /** Absent from a leader of an older version of this module (a tab loaded before an upgrade). */
      forgotten?: [string, SessionExpiredEvent | null][];
    }
  | { t: 'followed'; ids: string[] }
  | { t: 'session'; hasSession: boolean }
  | { t: 'reconnect'; session?: boolean }
  | { t: 'request'; from: string; id: number; type: string; fields: Record<string, unknown>; timeoutMs: number }
  | { t: 'ack'; to: string; id: number; leader: string }
  | { t: 'confirm'; to: string; from: string; id: number }
  | { t: 'reply'; to: string; id: number; body?: Reply; error?: WireError }
  | { t: 'leader'; from: string }
  | { t: 'beacon'; from: string }
  | { t: 'resign'; from: string }
  | { t: 'wake' };

/**
 * A request of this tab sent through the leader: `leader` is the one tab it may be sent by,
 * the leader whose offer (`ack`) this tab confirmed, or this tab itself once it leads.
 */
interface Waiting {
  type: string;
  fields: Record<string, unknown>;
  timeoutMs: number;
  deadline: number;
  leader: string | undefined;
  resolve: (b: Reply) => void;
  reject: (e: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

/** How long a leader waits before it tries again a subscription to a followed session that failed (ms). */
const FOLLOW_RETRY_MS = 2000;

/** Fallback election: the leader's beacon period, and the silence after which another tab takes over. */
const BEACON_MS = 200;
const LEADER_SILENCE_MS = 700;
/** Leader: how many of the latest requests of other tabs it remembers, to offer to take a re-posted one once. */
const TAKEN_KEPT = 1000;
/** Every tab: how many of the followed sessions the group stopped following (ended or unsubscribed) it remembers. */
const FORGOTTEN_KEPT = 1000;

/** The end of the cookie's session as a tab learns it without a push (as GatewayClient reports one found at connect). */
const unknownEnd = (): SessionExpiredEvent => ({ bound: true, reason: 'unknown', pushed: false });

/** Leader: a request of another tab it offered to take, sent only once that tab confirms it. */
interface Offer {
  type: string;
  fields: Record<string, unknown>;
  deadline: number;
  timer: ReturnType<typeof setTimeout>;
}

function toWire(err: unknown): WireError {
  if (err instanceof GatewayRequestError) return { kind: 'request', message: err.message, code: err.code, text: err.text, requestType: err.requestType };
  if (err instanceof GatewayClientError) return { kind: err.kind, message: err.message };
  return { kind: 'other', message: err instanceof Error ? err.message : String(err) };
}

function fromWire(e: WireError, type: string, timeoutMs: number): Error {
  if (e.kind === 'request') return new GatewayRequestError(e.requestType ?? type, e.code ?? 0, e.text ?? e.message);
  if (e.kind === 'timeout') return new GatewayTimeoutError(type, timeoutMs);
  return new GatewayConnectionError(e.message);
}

/**
 * One WebSocket per browser: the tabs of an origin elect one leader (Web Locks, or a
 * BroadcastChannel election where there are none) that holds the bound connection; every tab
 * gets its events through a BroadcastChannel, and may send requests through the leader.
 * When the leader tab closes, the next tab takes the lock and connects, carrying what the
 * group knew of the session (and the sessions it follows), so an end that happened in
 * between is still reported. A tab that leaves and comes back (stop() and start(), the
 * back/forward cache) is sent the group's view and reports, once and to itself alone, the
 * ends it missed meanwhile.
 *
 * @example
 * const tabs = new TabSession({ url: `wss://${location.host}/ws`, checkSession });
 * tabs.on('session_expired', ({ reason }) => showLoggedOut(reason));
 * tabs.start();
 */
export class TabSession extends Emitter<TabEvents> {
  readonly #o: TabSessionOptions;
  readonly #id = Math.random().toString(36).slice(2);
  #channel: BroadcastChannel | undefined;
  #client: GatewayClient | undefined;
  /** The leader's client closed for good (a 4001): a tab that joins with a session makes it reconnect. */
  #clientDone = false;
  #release: (() => void) | undefined;
  /** Withdraws this tab's request for the lock while it waits in the queue. */
  #asking: AbortController | undefined;
  #started = false;
  /** Stopped by `pagehide`: start again when the page comes back from the back/forward cache. */
  #resume = false;
  /** The `session` of the latest start(), said again in a hello to a new leader. */
  #helloSession: boolean | undefined;
  #connected = false;
  #hasSession: boolean | undefined;
  /**
   * `#hasSession` is what this tab knew when it left the group (stop(), or pagehide) and
   * start() brought no news: the group's view replaces it when this tab rejoins.
   */
  #stale = false;
  /**
   * Since start(), not yet sent the group's state (nor leading): `had` is whether this tab
   * believed, when it left, that the cookie named a live session; `followed` what it followed then.
   */
  #rejoin: { had: boolean; followed: Set<string> } | undefined;
  /** The latest end of the cookie's session this tab knows the group was told of. */
  #lastEnd: LastEnd | undefined;
  /** This tab reported the end of the session it knew, and learned of no live one since: an end found again is not reported. */
  #endTold = false;
  #expiresAt: number | undefined;
  /** Sessions the group follows by id (subscribe_session through any tab): a new leader subscribes to them. */
  readonly #followed = new Set<string>();
  /** Followed sessions the group stopped following: the end it was told (or null: unsubscribed), for a tab that rejoins. */
  readonly #forgotten = new Map<string, SessionExpiredEvent | null>();
  /** Leader: followed sessions whose subscription is under way. */
  readonly #subscribing = new Set<string>();
  /** Leader: requests of other tabs offered for (`from:id`), so that a re-posted one is offered once. */
  readonly #taken = new Set<string>();
  /** Leader: requests of other tabs offered for and not yet confirmed (`from:id`), until their time is up. */
  readonly #offered = new Map<string, Offer>();
  #requestId = 0;
  readonly #waiting = new Map<number, Waiting>();
  #beacon: ReturnType<typeof setInterval> | undefined;
  #watch: ReturnType<typeof setInterval> | undefined;
  #lastBeacon = 0;
  readonly #onPageHide = () => {
    if (!this.#started) return;
    this.stop();
    this.#resume = true;
    addEventListener('pageshow', this.#onPageShow);
  };
  /** A follower shown again: the user is back, so the leader, maybe in a tab left in the background, ends its wait. */
  readonly #onVisible = () => {
    if (this.#client === undefined && document.visibilityState === 'visible') this.#post({ t: 'wake' });
  };
  readonly #onPageShow = (ev: Event) => {
    if (!(ev as PageTransitionEvent).persisted || !this.#resume) return;
    this.#resume = false;
    removeEventListener('pageshow', this.#onPageShow);
    this.start();
  };

  constructor(options: TabSessionOptions) {
    super();
    this.#o = options;
  }

  /** True while this tab holds the socket. */
  get isLeader(): boolean {
    return this.#client !== undefined;
  }

  /** True while the leader's socket is open. */
  get connected(): boolean {
    return this.#connected;
  }

  /** Session ids the tabs follow (`subscribeSession`) and not known to have ended. */
  get subscriptions(): ReadonlySet<string> {
    return this.#followed;
  }

  /**
   * Joins the election (and connects when elected). `session: true`: this page knows it holds
   * a session (its backend just said so): a leader whose socket is not bound to a live session
   * reconnects, bound to it. After `stop()`, `start()` joins again; a page stopped by
   * `pagehide` and restored from the back/forward cache joins again by itself. A tab that
   * rejoins takes the group's view for the one it left with (unless `session` is given: the
   * page's word is fresher) and is told what ended meanwhile: the cookie's session it
   * believed live (as the group was told, or `reason: 'unknown', pushed: false` when the
   * group saw no end but holds no session), and the sessions it followed; each once.
   */
  start(o: { session?: boolean } = {}): void {
    if (this.#started) return;
    this.#started = true;
    this.#resume = false;
    removeEventListener('pageshow', this.#onPageShow);
    // What this tab knew when it left (it may have missed messages since) is checked against the group's view.
    this.#rejoin = { had: o.session === undefined && this.#hasSession === true, followed: new Set(this.#followed) };
    if (o.session !== undefined) this.#know(o.session);
    else this.#stale = this.#hasSession !== undefined;
    this.#helloSession = o.session;
    const channel = new BroadcastChannel(this.#channelName());
    channel.onmessage = (ev: MessageEvent<Note>) => this.#onNote(ev.data);
    this.#channel = channel;
    addEventListener('pagehide', this.#onPageHide);
    if (typeof document !== 'undefined') document.addEventListener('visibilitychange', this.#onVisible);
    this.#sayHello();
    const locks = (navigator as Navigator & { locks?: LockManager }).locks;
    if (this.#o.webLocks !== false && locks !== undefined) {
      // Withdrawn by stop(): a follower stopped and started again waits in one place in the queue, not one per start.
      const asking = new AbortController();
      this.#asking = asking;
      locks
        .request(this.#channelName(), { signal: asking.signal }, () => {
          this.#asking = undefined;
          return new Promise<void>((release) => {
            // Stopped (or stopped and started again: that start asked for the lock anew) meanwhile.
            if (!this.#started || this.#channel !== channel) return release();
            this.#release = release;
            this.#lead();
          });
        })
        .catch(() => undefined); // withdrawn (AbortError)
      return;
    }
    this.#lastBeacon = Date.now();
    this.#watch = setInterval(() => {
      if (this.#client === undefined && Date.now() - this.#lastBeacon > LEADER_SILENCE_MS) this.#lead();
    }, BEACON_MS);
  }

  /**
   * Leaves the group: a leader closes its socket and hands the lock to the next tab; a tab
   * waiting for the lock withdraws its request. This tab's requests still waiting are
   * rejected (GatewayConnectionError). `start()` joins again.
   */
  stop(): void {
    this.#resume = false;
    removeEventListener('pageshow', this.#onPageShow);
    if (!this.#started) return;
    this.#started = false;
    removeEventListener('pagehide', this.#onPageHide);
    if (typeof document !== 'undefined') document.removeEventListener('visibilitychange', this.#onVisible);
    clearInterval(this.#watch);
    this.#watch = undefined;
    this.#asking?.abort();
    this.#asking = undefined;
    this.#stepDown();
    for (const [id, w] of this.#waiting) this.#settle(id, w, new GatewayConnectionError(`${w.type}: the tab session was stopped`));
    this.#connected = false;
    this.#channel?.close();
    this.#channel = undefined;
  }

  /**
   * The cookie changed in this tab (a login, or the new cookie after a regeneration): the
   * leader reconnects at once, bound to it. `session: true` when it names a live session.
   */
  reconnect(o: { session?: boolean } = {}): void {
    if (o.session !== undefined) this.#know(o.session);
    if (this.#client !== undefined) this.#reconnectClient(o.session);
    else this.#post({ t: 'reconnect', session: o.session });
  }

  /** Extends this browser's session to now + `ttl` (default: its own ttl); every tab is told (`session_extended`). */
  extendSession(o: { ttl?: number } = {}): Promise<ReplyTo<'extend_session'>> {
    return this.request<ReplyTo<'extend_session'>>('extend_session', o.ttl === undefined ? {} : { ttl: o.ttl });
  }

  /**
   * Follows a session by id (from any tab): `session_expired {sessionId, bound: false}` in every
   * tab when it ends. The group remembers it: a new leader subscribes again, and reports an end
   * that happened meanwhile (`reason: 'unknown', pushed: false`).
   */
  subscribeSession(sessionId: string): Promise<Subscribed | SessionInvalid> {
    return this.request<Subscribed | SessionInvalid>('subscribe_session', { session_id: sessionId });
  }

  /** Stops following a session (in every tab). */
  unsubscribeSession(sessionId: string): Promise<Unsubscribed> {
    return this.request<Unsubscribed>('unsubscribe_session', { session_id: sessionId });
  }

  /**
   * Sends a request over the leader's socket (from any tab); resolves with its reply body, and
   * rejects as `GatewayClient.request` does (the same error classes in every tab). A request
   * made while no tab leads waits (within `timeoutMs`) for one. It is sent by one tab only: a
   * leader offers to take it, this tab accepts one offer (or sends it itself once it leads), and
   * only the leader whose offer it accepted sends it. One accepted by a leader that then went
   * away is rejected with GatewayConnectionError (it may or may not have been served): it is
   * never sent twice. `subscribe_session` and `unsubscribe_session` are remembered by the
   * group, as `subscribeSession` does.
   */
  request<R extends Reply = Reply>(type: string, fields: Record<string, unknown> = {}, timeoutMs = this.#o.timeoutMs ?? 10_000): Promise<R> {
    if (!this.#started) return Promise.reject(new GatewayConnectionError(`${type}: the tab session is not started; call start() first`));
    if (this.#client !== undefined) return this.#serve(type, fields, timeoutMs) as Promise<R>;
    const id = ++this.#requestId;
    return new Promise<R>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(id);
        reject(new GatewayTimeoutError(type, timeoutMs));
      }, timeoutMs);
      const w: Waiting = {
        type,
        fields,
        timeoutMs,
        deadline: Date.now() + timeoutMs,
        leader: undefined,
        resolve: resolve as (b: Reply) => void,
        reject,
        timer,
      };
      this.#waiting.set(id, w);
      this.#send(id, w);
    });
  }

  #channelName(): string {
    return this.#o.name ?? `auth-gateway:${this.#o.url}`;
  }

  #post(n: Note): void {
    try {
      this.#channel?.postMessage(n);
    } catch {
      // the channel is closed: this tab is leaving
    }
  }

  /** Asks the leader for the group's state (to this tab alone), saying what this tab followed when it left. */
  #sayHello(): void {
    const followed = [...(this.#rejoin?.followed ?? [])];
    this.#post({
      t: 'hello',
      from: this.#id,
      ...(this.#helloSession === undefined ? {} : { session: this.#helloSession }),
      ...(followed.length === 0 ? {} : { followed }),
    });
  }

  /** News of the cookie's session (a tab's word, or the leader's client's): it replaces a view carried over a stop. */
  #know(has: boolean): void {
    this.#hasSession = has;
    this.#stale = false;
    if (has) this.#endTold = false;
  }

  /** A followed session the group stopped following: its end, or null when it was unsubscribed. */
  #forget(sessionId: string, end: SessionExpiredEvent | null): void {
    this.#forgotten.delete(sessionId);
    this.#forgotten.set(sessionId, end);
    if (this.#forgotten.size > FORGOTTEN_KEPT) this.#forgotten.delete(this.#forgotten.keys().next().value!);
  }

  /** Posts (or posts again) a request of this tab for the leader, with the time it has left. */
  #send(id: number, w: Waiting): void {
    this.#post({ t: 'request', from: this.#id, id, type: w.type, fields: w.fields, timeoutMs: Math.max(1, w.deadline - Date.now()) });
  }

  #settle(id: number, w: Waiting, outcome: Error | Reply): void {
    this.#waiting.delete(id);
    clearTimeout(w.timer);
    if (outcome instanceof Error) w.reject(outcome);
    else w.resolve(outcome);
  }

  /** Leader: a request over its own client; follows and unfollows are recorded for the group. */
  async #serve(type: string, fields: Record<string, unknown>, timeoutMs: number): Promise<Reply> {
    const client = this.#client;
    if (client === undefined) throw new GatewayConnectionError(`${type}: this tab no longer holds the socket`);
    const sid = fields.session_id;
    if (type === 'subscribe_session' && typeof sid === 'string') {
      // Through the client's own method: it subscribes again after its reconnects, and does not
      // count a subscription that an unsubscribe made before its reply withdrew.
      const r = await client.subscribeSession(sid, { timeoutMs });
      if (r.type === 'subscribed' && this.#client === client && client.subscriptions.has(sid)) this.#follow(sid, true);
      return r;
    }
    if (type === 'unsubscribe_session' && typeof sid === 'string') {
      this.#follow(sid, false);
      return client.unsubscribeSession(sid, { timeoutMs });
    }
    return client.request(type as never, fields, { timeoutMs });
  }

  /** Leader: adds or removes a followed session, and tells the other tabs. */
  #follow(sessionId: string, on: boolean): void {
    if (on === this.#followed.has(sessionId)) return;
    if (on) {
      this.#followed.add(sessionId);
      this.#forgotten.delete(sessionId);
    } else {
      this.#followed.delete(sessionId);
      this.#forget(sessionId, null);
    }
    this.#post({ t: 'followed', ids: [...this.#followed] });
  }

  /** Leader: subscribes its client to the followed sessions it does not follow yet (after an election, or an open). */
  #subscribeFollowed(client: GatewayClient): void {
    for (const sid of this.#followed) {
      if (client.subscriptions.has(sid) || this.#subscribing.has(sid)) continue;
      this.#subscribing.add(sid);
      client.subscribeSession(sid).then(
        (r) => {
          this.#subscribing.delete(sid);
          if (r.type === 'session_invalid' && this.#client === client && this.#followed.has(sid)) {
            // It ended while no tab followed it.
            this.#broadcast('session_expired', { sessionId: sid, bound: false, reason: 'unknown', pushed: false });
          }
        },
        () => {
          this.#subscribing.delete(sid);
          // Tried again in a while on this connection (the gateway's store may be away), and at the next open.
          setTimeout(() => {
            if (this.#client === client && client.connected) this.#subscribeFollowed(client);
          }, FOLLOW_RETRY_MS);
        },
      );
    }
  }

  /**
   * Leader: tells the group what its client learned of the session (a checkSession answer, a
   * socket the gateway bound), so that the next leader connects knowing it, and reports an end
   * that happens in the handover.
   */
  #shareSession(client: GatewayClient): void {
    const has = client.hasSession;
    if (this.#client !== client || has === undefined) return;
    this.#know(has);
    this.#post({ t: 'session', hasSession: has });
  }

  #reconnectClient(session: boolean | undefined): void {
    this.#clientDone = false;
    void this.#client?.reconnect(session === undefined ? {} : { session }).catch(() => undefined);
  }

  /** An event for every tab: posted to the others, then handled here. */
  #broadcast<K extends Forwarded>(name: K, value: TabEvents[K]): void {
    // An end of the cookie's session is named: a tab that missed it can tell when it rejoins.
    const end = name === 'session_expired' && (value as SessionExpiredEvent).bound ? Math.random().toString(36).slice(2) : undefined;
    this.#post(end === undefined ? { t: 'event', name, value } : { t: 'event', name, value, end });
    this.#local(name, value, end);
  }

  /** This tab was elected: open the socket and forward every event to the others. */
  #lead(): void {
    if (this.#client !== undefined || !this.#started) return;
    const client = new GatewayClient(this.#o);
    this.#client = client;
    this.#clientDone = false;
    // No state to wait for: this tab's client checks what it knew (a session that ended meanwhile is reported at connect).
    this.#rejoin = undefined;
    this.#stale = false;
    for (const name of FORWARDED) client.on(name, (value) => this.#broadcast(name, value as never));
    client.on('close', ({ willReconnect }) => {
      if (!willReconnect) {
        this.#clientDone = true;
        // Closed for good (a 4001): the client knows the cookie names no live session now.
        this.#shareSession(client);
      }
    });
    client.on('open', () => {
      this.#shareSession(client);
      this.#subscribeFollowed(client);
    });
    client.on('bound', () => this.#shareSession(client));
    this.#post({ t: 'leader', from: this.#id });
    if (!this.#byLocks) {
      this.#beacon = setInterval(() => this.#post({ t: 'beacon', from: this.#id }), BEACON_MS);
      this.#post({ t: 'beacon', from: this.#id });
    }
    this.#handover();
    this.emit('leader', { leader: true });
    // Carries what the group knew: a session that ended while no tab was connected is reported.
    void client.connect(this.#hasSession === undefined ? {} : { session: this.#hasSession }).catch(() => undefined);
    this.#subscribeFollowed(client);
    // This tab's own requests: those it confirmed to no leader go through its socket now (a
    // leader sends only what was confirmed to it); one it confirmed may or may not have been
    // served by that leader, and is not sent twice.
    for (const [id, w] of this.#waiting) {
      if (w.leader !== undefined) {
        this.#settle(id, w, new GatewayConnectionError(`${w.type}: the tab that held the socket went away before the reply came`));
        continue;
      }
      w.leader = this.#id;
      this.#serve(w.type, w.fields, Math.max(1, w.deadline - Date.now())).then(
        (body) => this.#waiting.get(id) === w && this.#settle(id, w, body),
        (err: unknown) => this.#waiting.get(id) === w && this.#settle(id, w, err instanceof Error ? err : new Error(String(err))),
      );
    }
  }

  /** Elected by Web Locks (one leader at a time), not by the BroadcastChannel fallback. */
  get #byLocks(): boolean {
    return this.#o.webLocks !== false && (navigator as Navigator & { locks?: LockManager }).locks !== undefined;
  }

  /**
   * The socket this tab was told is open belongs to a tab that left (it resigned, or another
   * took the lock): this tab reports a close, and the next leader's socket reports its open.
   * Web Locks only: two leaders of the fallback election may overlap, and the one that stays
   * would report no open again.
   */
  #handover(): void {
    if (this.#connected && this.#byLocks) this.#local('close', { code: 1001, reason: 'leader tab left', kind: 'retry', willReconnect: true });
  }

  #stepDown(): void {
    clearInterval(this.#beacon);
    this.#beacon = undefined;
    const client = this.#client;
    this.#client = undefined;
    this.#subscribing.clear();
    this.#taken.clear();
    // Offers confirmed from now on are not sent: the asking tab rejects them when told of the resignation.
    for (const o of this.#offered.values()) clearTimeout(o.timer);
    this.#offered.clear();
    // Told before the client closes: the other tabs reject what this one took, and do not wait.
    if (client !== undefined) this.#post({ t: 'resign', from: this.#id });
    client?.close();
    this.#release?.();
    this.#release = undefined;
    if (client !== undefined) this.emit('leader', { leader: false });
  }

  /**
   * Bookkeeping every tab does on an event, then the app's listeners. `end` names an end of the
   * cookie's session. An end is reported once: an end of the cookie's session learned without
   * a push after this tab reported one (and learned of no live session since), or the end of a
   * session this tab does not follow (any more), is not reported again.
   */
  #local<K extends Forwarded>(name: K, value: TabEvents[K], end?: string): void {
    if (name === 'open') this.#connected = true;
    else if (name === 'close') this.#connected = false;
    else if (name === 'session_expiring') {
      const v = value as TabEvents['session_expiring'];
      if (v.bound) {
        this.#know(true);
        this.#expiresAt = Date.now() + v.expiresIn * 1000;
      }
    } else if (name === 'session_expired') {
      const v = value as TabEvents['session_expired'];
      if (v.bound) {
        if (end !== undefined) this.#lastEnd = { id: end, value: v };
        const told = this.#endTold;
        this.#know(false);
        this.#endTold = true;
        this.#expiresAt = undefined;
        if (told && !v.pushed) return;
      } else if (v.sessionId !== undefined) {
        this.#forget(v.sessionId, v);
        this.#rejoin?.followed.delete(v.sessionId);
        if (!this.#followed.delete(v.sessionId)) return;
      }
    } else if (name === 'session_extended' && (value as TabEvents['session_extended']).bound) {
      // The warning was for the old end; a new one comes before the new end.
      this.#know(true);
      this.#expiresAt = undefined;
    } else if (name === 'session_regenerated') this.#know(true);
    this.emit(name, value);
  }

  /**
   * A tab that (re)joined, sent the group's view: it takes it for its own, and reports what it
   * missed while away (the sessions it followed that ended, and the end of the session it knew),
   * each once. The tabs that stayed are not told anything.
   */
  #joined(n: Extract<Note, { t: 'state' }>): void {
    const rejoin = this.#rejoin;
    if (rejoin === undefined) return; // answered already (two leaders of the fallback election both answer)
    this.#rejoin = undefined;
    const stale = this.#stale;
    const had = this.#hasSession;
    this.#followed.clear();
    for (const sid of n.followed) this.#followed.add(sid);
    // The group's memory, over what this tab remembers: a tab that leads later answers from it.
    for (const [sid, end] of n.forgotten ?? []) this.#forget(sid, end);
    for (const sid of n.followed) this.#forgotten.delete(sid);
    for (const sid of rejoin.followed) {
      if (this.#followed.has(sid)) continue;
      // Not followed by the group any more: ended (told now), or unsubscribed (dropped).
      const end = this.#forgotten.get(sid);
      if (end === undefined) this.#forget(sid, null);
      else if (end !== null) this.emit('session_expired', end);
    }
    if (rejoin.had && n.lastEnd !== undefined && n.lastEnd.id !== this.#lastEnd?.id) {
      // The group was told an end while this tab was away, and this tab believed the session live.
      this.#local('session_expired', n.lastEnd.value, n.lastEnd.id);
    } else if (stale && this.#hasSession === true && n.hasSession === false) {
      // No end the group saw, but the socket is not bound to a session (the group began after the end).
      this.#local('session_expired', unknownEnd());
    }
    if (n.lastEnd !== undefined) this.#lastEnd = n.lastEnd;
    // A view carried over a stop gives way to the group's; what this tab was told since start() is fresher.
    if (n.hasSession !== undefined && (stale || had === undefined)) this.#know(n.hasSession);
    else if (!stale && had !== undefined) this.#know(had);
    if (n.connected && !this.#connected) this.#local('open', { reconnected: false });
    if (n.expiring !== undefined && n.expiring.expiresAt > Date.now()) {
      this.#local('session_expiring', { bound: true, expiresIn: Math.ceil((n.expiring.expiresAt - Date.now()) / 1000) });
    } else this.#expiresAt = undefined;
  }

  #onNote(n: Note): void {
    switch (n.t) {
      case 'event':
        this.#local(n.name, n.value as never, n.end);
        return;
      case 'hello': {
        const client = this.#client;
        if (client === undefined) return;
        if (n.session === true) {
          this.#know(true);
          // The new tab's backend just said the cookie names a live session: bind to it unless
          // the socket already stands for one.
          if (this.#clientDone || client.hasSession !== true) this.#reconnectClient(true);
        }
        // What the joining tab followed and the group neither follows nor remembers (ended or
        // unsubscribed: the joining tab finds it in `forgotten`) began before this group (all
        // its tabs left meanwhile): the group follows it again, and reports an end found.
        const unknown = (n.followed ?? []).filter((sid) => !this.#followed.has(sid) && !this.#forgotten.has(sid));
        for (const sid of unknown) this.#follow(sid, true);
        if (unknown.length > 0) this.#subscribeFollowed(client);
        const expiring = this.#expiresAt === undefined ? undefined : { expiresAt: this.#expiresAt };
        this.#post({
          t: 'state',
          to: n.from,
          connected: client.connected,
          hasSession: this.#hasSession,
          expiring,
          followed: [...this.#followed],
          ...(this.#lastEnd === undefined ? {} : { lastEnd: this.#lastEnd }),
          forgotten: [...this.#forgotten],
        });
        return;
      }
      case 'state':
        if (n.to === this.#id) this.#joined(n);
        return;
      case 'session':
        // A tab that waits for the state keeps what it knew until then: the state says it all.
        if (this.#stale && this.#rejoin !== undefined) return;
        // The leader's view now (it had none when this tab rejoined): the session this tab knew is gone.
        if (this.#stale && this.#hasSession === true && !n.hasSession) this.#local('session_expired', unknownEnd());
        this.#know(n.hasSession);
        return;
      case 'followed':
        for (const sid of this.#followed) if (!n.ids.includes(sid) && this.#rejoin === undefined) this.#forget(sid, null);
        this.#followed.clear();
        for (const sid of n.ids) {
          this.#followed.add(sid);
          this.#forgotten.delete(sid);
        }
        return;
      case 'reconnect':
        if (n.session !== undefined) this.#know(n.session);
        if (this.#client !== undefined) this.#reconnectClient(n.session);
        return;
      case 'request': {
        if (this.#client === undefined) return;
        const key = `${n.from}:${n.id}`;
        if (this.#taken.has(key)) return; // posted again, already offered for
        this.#taken.add(key);
        if (this.#taken.size > TAKEN_KEPT) this.#taken.delete(this.#taken.values().next().value!);
        // Offered, not sent: the asking tab may lead by now, or have confirmed another leader.
        const timer = setTimeout(() => this.#offered.delete(key), n.timeoutMs);
        this.#offered.set(key, { type: n.type, fields: n.fields, deadline: Date.now() + n.timeoutMs, timer });
        this.#post({ t: 'ack', to: n.from, id: n.id, leader: this.#id });
        return;
      }
      case 'ack': {
        if (n.to !== this.#id) return;
        // The first offer of a request still waiting for a taker is confirmed; any other is left
        // to lapse. The lock and the channel race: this tab may have taken the request itself.
        const w = this.#waiting.get(n.id);
        if (w === undefined || w.leader !== undefined) return;
        w.leader = n.leader;
        this.#post({ t: 'confirm', to: n.leader, from: this.#id, id: n.id });
        return;
      }
      case 'confirm': {
        if (n.to !== this.#id) return;
        const key = `${n.from}:${n.id}`;
        const offer = this.#offered.get(key);
        if (offer === undefined) return; // out of time, or offered by this tab's previous leadership
        this.#offered.delete(key);
        clearTimeout(offer.timer);
        this.#serve(offer.type, offer.fields, Math.max(1, offer.deadline - Date.now())).then(
          (body) => this.#post({ t: 'reply', to: n.from, id: n.id, body }),
          (err: unknown) => this.#post({ t: 'reply', to: n.from, id: n.id, error: toWire(err) }),
        );
        return;
      }
      case 'reply': {
        if (n.to !== this.#id) return;
        const w = this.#waiting.get(n.id);
        if (w === undefined) return;
        if (n.body !== undefined) this.#settle(n.id, w, n.body);
        else
          this.#settle(
            n.id,
            w,
            fromWire(n.error ?? { kind: 'connection', message: `${w.type}: the tab that holds the socket could not send it` }, w.type, w.timeoutMs),
          );
        return;
      }
      case 'leader':
        this.#lastBeacon = Date.now();
        this.#handover();
        // Not answered yet (the hello came in the handover, when no tab led): ask this one.
        if (this.#rejoin !== undefined && this.#client === undefined) this.#sayHello();
        // A new leader: what another took is lost with it; what none took is posted again.
        for (const [id, w] of this.#waiting) {
          if (w.leader === undefined) this.#send(id, w);
          else if (w.leader !== n.from)
            this.#settle(id, w, new GatewayConnectionError(`${w.type}: the tab that held the socket went away before the reply came`));
        }
        return;
      case 'beacon':
        this.#lastBeacon = Date.now();
        // Two leaders (the fallback raced): the one with the larger id steps down.
        if (this.#client !== undefined && n.from < this.#id) this.#stepDown();
        return;
      case 'wake':
        this.#client?.wake();
        return;
      case 'resign':
        this.#handover();
        for (const [id, w] of this.#waiting) {
          if (w.leader === n.from) this.#settle(id, w, new GatewayConnectionError(`${w.type}: the tab that held the socket went away before the reply came`));
        }
        // Take over at the next watch tick rather than after the silence; racing claims settle by beacon.
        if (!this.#byLocks) {
          this.#lastBeacon = 0;
        }
        return;
    }
  }
}
