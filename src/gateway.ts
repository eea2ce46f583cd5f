import type { Clock } from './clock.js';
import { GatewayError } from './errors.js';
import { createLogRef } from './crypto.js';
import { randomId } from './crypto.js';
import type { Logger, Requester } from './log.js';
import { LogBudget } from './log-budget.js';
import type { EndReason } from './protocol/messages.js';
import { SubscriptionHub } from './push/hub.js';
import { GatewayConnection, type ConnectionOptions } from './pipeline/connection.js';
import type { GatewayObserver, PipelineServices } from './pipeline/services.js';
import { SessionService, type SessionChange } from './sessions/session-service.js';
import { StoreEpoch } from './store/store-epoch.js';
import type { Store } from './store/types.js';
import type { Ed25519Key } from './tokens/ed25519-keys.js';
import { TokenService, type SigningAlg } from './tokens/token-service.js';

export type { GatewayObserver } from './pipeline/services.js';

/** How long revoke_user_tokens waits for its event to come back through the store's channel. */
const ECHO_TIMEOUT_MS = 2000;

/** A recurring failure is logged at most once per this interval; the metrics count every one. */
const SAMPLED_LOG_INTERVAL_MS = 10_000;

export interface GatewayOptions {
  store: Store;
  clock: Clock;
  log: Logger;
  nodeId: string;
  sessionTtl: number;
  sessionIdleTimeout: number;
  /** Longest a session may live from its creation through extend_session, seconds; 0: no cap (default 86400). */
  sessionMaxLifetime?: number;
  accessTokenTtl: number;
  refreshTokenTtl: number;
  clockTolerance: number;
  jwtKeys: { kid?: string; secret: Buffer }[];
  /** Algorithm of the access tokens (default HS256); EdDSA signs with `jwtEd25519Keys[0]`. */
  jwtAlg?: SigningAlg;
  jwtEd25519Keys?: Ed25519Key[];
  jwtIssuer?: string;
  jwtAudience?: string;
  maxInFlight: number;
  maxSubscriptions: number;
  /** Subscribers one session may have from untrusted (browser) connections (default 1000). */
  maxSubscribersPerSession?: number;
  /** Salt of the hashes that stand for ids in the logs (random per process by default). */
  logSalt?: string;
  observer?: GatewayObserver;
}

/**
 * The core, assembled: store, sessions, tokens, subscriptions. Knows nothing of
 * transports; each transport calls `connect()` and pipes its messages through the
 * connection it gets.
 */
export class Gateway implements PipelineServices {
  readonly store: Store;
  readonly clock: Clock;
  readonly log: Logger;
  readonly nodeId: string;
  readonly sessions: SessionService;
  readonly tokens: TokenService;
  readonly hub: SubscriptionHub;
  readonly options: GatewayOptions;
  readonly observer: GatewayObserver;
  /** Unique per process: lets a node skip its own events on the shared bus. */
  readonly instanceId = randomId(12);
  readonly logRef: (value: string) => string;
  /** Recurring failures and refusals: one line of a kind per interval, then a count of the rest. */
  readonly sampledLog: LogBudget;
  /** Lines a client can cause (flood closes, rate limits tripped): a few per interval, then a count. */
  readonly abuseLog: LogBudget;
  #pushSeq = 0;
  #connSeq = 0;
  readonly #unlisten: (() => void)[] = [];
  /** Whether the remote store still holds what it held (none on the memory store). */
  readonly #epoch: StoreEpoch | undefined;
  /** hash of a user id -> what waits for this node's own tokens_revoked event about it */
  readonly #echoWaiters = new Map<string, Set<() => void>>();

  constructor(o: GatewayOptions) {
    this.options = o;
    this.store = o.store;
    this.clock = o.clock;
    this.log = o.log;
    this.nodeId = o.nodeId;
    this.observer = o.observer ?? {};
    this.logRef = createLogRef(o.logSalt ?? randomId(16));
    this.sampledLog = new LogBudget({ log: o.log, clock: o.clock, lines: 1, intervalMs: SAMPLED_LOG_INTERVAL_MS });
    this.abuseLog = new LogBudget({ log: o.log, clock: o.clock });
    if (this.observer.storeOperation) o.store.observe?.(this.observer.storeOperation);
    const onError = (err: unknown) => this.#storeTrouble(err, 'background task failed');
    this.sessions = new SessionService({
      store: o.store,
      clock: o.clock,
      log: o.log,
      logRef: this.logRef,
      ttl: o.sessionTtl,
      idleTimeout: o.sessionIdleTimeout,
      maxLifetime: o.sessionMaxLifetime ?? 86_400,
      onEnded: (hash, reason) => this.#ended(hash, reason, true),
      onChanged: (hash, change) => this.#changed(hash, change),
      // Before the record: an extend answered has its tokens living until its new end (#rewrite).
      onExtending: (hash, absoluteEnd) => this.tokens.sessionExtended(hash, absoluteEnd),
    });
    this.tokens = new TokenService({
      store: o.store,
      clock: o.clock,
      log: o.log,
      logRef: this.logRef,
      keys: o.jwtKeys,
      alg: o.jwtAlg,
      ed25519Keys: o.jwtEd25519Keys,
      sessionEnd: async (hash) => {
        const seen = await this.sessions.peek(hash);
        return seen.valid ? seen.end : undefined;
      },
      accessTtl: o.accessTokenTtl,
      refreshTtl: o.refreshTokenTtl,
      clockTolerance: o.clockTolerance,
      issuer: o.jwtIssuer,
      audience: o.jwtAudience,
    });
    this.hub = new SubscriptionHub(
      o.clock,
      async (hash) => {
        const r = await this.sessions.checkExpiry(hash);
        // Gone from the store (its own expiry): nobody ran the end, so revoke its bound tokens here.
        if (r.ended === 'gone') this.tokens.sessionEnded(hash, true).catch(onError);
        return r;
      },
      onError,
      // Activity (idle timeout) or an extend_session whose event was missed may have moved the end.
      async (hash) => {
        const v = await this.sessions.peek(hash);
        return v.valid ? { at: v.end, reason: v.endReason } : undefined;
      },
    );
    this.hub.onLateness = this.observer.pushLateness;
    this.#unlisten.push(
      o.store.events.subscribe((e) => {
        if (e.origin === this.instanceId) {
          if (e.kind === 'tokens_revoked') this.#echoed(e.user);
          return;
        }
        if (e.kind === 'ended') this.hub.ended(e.hash, e.reason);
        else if (e.kind === 'tokens_revoked') this.tokens.forgetUserMark(e.user);
        else if (this.hub.isFollowed(e.hash)) this.#changedElsewhere(e.hash, e.kind);
      }),
      // Events may have been missed while the bus was away: look at every followed session again.
      o.store.events.onResync(() => {
        void this.#epoch?.check();
        this.#recheckFollowed();
      }),
    );
    // A remote store may lose its contents (a Redis restarted without persistence): looked for at
    // start, after every return of the link (the resync above) and every second.
    if (o.store.kind !== 'memory') {
      this.#epoch = new StoreEpoch(o.store, o.clock, {
        // Tokens from before the store's contents began had their revocations in what was lost.
        since: (at) => this.tokens.storeBegan(at),
        lost: (at) => {
          this.tokens.storeLost(at);
          // Emptied with the link up (FLUSHALL, TRUNCATE): no resync comes, and the followed
          // sessions are gone with the rest; their followers are told now, as after a resync.
          this.#recheckFollowed();
          this.log.error(
            { event: 'store lost its data' },
            'the store lost its data: every session, refresh token and revocation it held is gone; access tokens issued before now are refused',
          );
        },
      });
      void this.#epoch.check();
    }
  }

  /** Events may have been missed, or the store's contents lost: every followed session is looked at again. */
  #recheckFollowed(): void {
    this.tokens.forgetUserMarks();
    for (const hash of this.hub.followed()) this.hub.recheck(hash);
  }

  /** The next `msg_id` of this node's own messages (pushes). */
  nextPushId(): number {
    return ++this.#pushSeq;
  }

  /** Opens a connection: a transport's handle on the pipeline. */
  connect(options: ConnectionOptions = {}): GatewayConnection {
    return new GatewayConnection(this, `c${++this.#connSeq}`, options);
  }

  /**
   * Tells this node's followers at once; for an end made here, also revokes the session's
   * tokens and announces it to the other nodes. Resolves once both are done (a failure is
   * logged, and the announcement kept for a retry): the request that ended the session is
   * answered only then, so a node that dies right after answering has told the others.
   */
  #ended(hash: string, reason: EndReason, local: boolean): Promise<void> | undefined {
    this.hub.ended(hash, reason);
    if (!local) return undefined;
    const revoked = this.tokens
      .sessionEnded(hash, reason === 'ttl' || reason === 'idle')
      .catch((err) => this.#storeTrouble(err, 'could not revoke tokens bound to an ended session'));
    const announced = this.store.events
      .publish({ kind: 'ended', hash, reason, origin: this.instanceId })
      .catch((err) => this.#storeTrouble(err, 'could not publish a session end'));
    return Promise.all([revoked, announced]).then(() => undefined);
  }

  /**
   * revoke_user_tokens: resolves with the mark in force once the other nodes were told (a
   * failure to tell them is error 11).
   */
  revokeUserTokens(userId: string, before: number, by?: Requester): Promise<number> {
    return this.tokens.revokeUser(
      userId,
      before,
      async (user) => {
        // The channel hands every node the event at about the same time, this one included: once
        // it is back here, the other nodes have it too (Redis pub/sub and PostgreSQL NOTIFY send
        // to every listener at once), so a verify_token sent to any node after the reply is
        // checked against the new mark. A memory store has no other node to tell.
        const back = this.store.kind === 'memory' ? undefined : this.#echo(user);
        try {
          await this.store.events.publish({ kind: 'tokens_revoked', user, origin: this.instanceId });
        } catch (err) {
          back?.cancel();
          throw err;
        }
        await back?.done;
      },
      by,
    );
  }

  /** Resolves when this node hears its own tokens_revoked event for `user`; error 11 when it does not in time. */
  #echo(user: string): { done: Promise<void>; cancel(): void } {
    let cancel!: () => void;
    const done = new Promise<void>((resolve, reject) => {
      const waiter = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        forget();
        reject(GatewayError.unavailable(new Error(`the store's channel did not hand back an event within ${ECHO_TIMEOUT_MS} ms`)));
      }, ECHO_TIMEOUT_MS);
      timer.unref();
      let set = this.#echoWaiters.get(user);
      if (set === undefined) this.#echoWaiters.set(user, (set = new Set()));
      set.add(waiter);
      // The user's entry goes with its last waiter, whichever way that waiter ends.
      const forget = () => {
        set.delete(waiter);
        if (set.size === 0 && this.#echoWaiters.get(user) === set) this.#echoWaiters.delete(user);
      };
      cancel = () => {
        clearTimeout(timer);
        forget();
      };
    });
    return { done, cancel };
  }

  /** Users whose revoke_user_tokens waits for its own event to come back (for tests). */
  get echoesAwaited(): number {
    return this.#echoWaiters.size;
  }

  #echoed(user: string): void {
    const set = this.#echoWaiters.get(user);
    if (set === undefined) return;
    this.#echoWaiters.delete(user);
    for (const w of set) w();
  }

  #changed(hash: string, change: SessionChange): void {
    if (change.kind === 'extended') {
      // Tokens bound to the session (exchange_session) already live until its new end (onExtending).
      this.hub.extended(hash, change.end, change.reason);
    } else this.hub.updated(hash, change.data);
    this.store.events
      .publish({ kind: change.kind, hash, origin: this.instanceId })
      .catch((err) => this.#storeTrouble(err, 'could not publish a session change'));
  }

  /** Another node extended or updated a session followed here: read it and tell the followers. */
  #changedElsewhere(hash: string, kind: 'extended' | 'updated'): void {
    this.sessions.peek(hash).then(
      (v) => {
        // Ended since the change: its end's event (with the reason) is on its way.
        if (!v.valid) return this.hub.recheck(hash, true);
        if (kind === 'extended') this.hub.extended(hash, v.end, v.endReason);
        else this.hub.updated(hash, v.record.d ?? {});
      },
      (err) => this.#storeTrouble(err, 'could not read a session changed on another node'),
    );
  }

  #storeTrouble(err: unknown, msg: string): void {
    this.observer.storeError?.();
    // The store being away is the store health log's to say, once (the task is tried again
    // when it is back); anything else is an error worth a line.
    const away = err instanceof GatewayError && err.code === 'UNAVAILABLE';
    if (away && !this.log.isLevelEnabled('debug')) return;
    this.sampledLog.hit(msg, () => (away ? this.log.debug : this.log.error).call(this.log, { err }, `${msg} (sampled)`), { level: away ? 'debug' : 'error' });
  }

  async close(): Promise<void> {
    for (const off of this.#unlisten) off();
    this.#epoch?.close();
    await this.store.close();
  }
}
