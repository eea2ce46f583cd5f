// The class's own module (an export of rxjs): the 'rxjs' index loads every operator, some 200
// modules, on the start of each process.
import { Observable } from 'rxjs/internal/Observable';
import { GatewayError } from '../errors.js';
import { SmallMap } from '../small-map.js';
import type { Logger } from '../log.js';
import type { Decoded, DecodedRequest } from '../protocol/decode.js';
import type { AnyRequest, EndReason, Envelope } from '../protocol/messages.js';
import type { Subscriber as HubSubscriber } from '../push/hub.js';
import type { PushDraft } from '../protocol/push-schemas.js';
import { errorReply, reply, type Body } from '../protocol/replies.js';
import type { ReplyDraft } from '../protocol/reply-schemas.js';
import { failureOf } from './failure.js';
import { handlers } from './handlers.js';
import { EXCLUSIVE, keyedMerge, type OrderKey } from './keyed-merge.js';
import { activeSpans } from '../tracing.js';
import { DEFAULT_SUBSCRIBERS_PER_SESSION, type FollowOptions, type FollowRefusal, type HandlerContext, type PipelineServices } from './services.js';

/** A message on its way out: a reply or a push. Error replies to unreadable envelopes have no `dest`. */
export type Outbound = Envelope<Body> | Omit<Envelope<Body>, 'dest'>;

/** A reply (it answers one request read) rather than a push: pushes carry a `msg_id` of their own and no `in_reply_to`. */
export const isReply = (m: Outbound): boolean => 'in_reply_to' in m.body || !('msg_id' in m.body);

/** Where a connection's pushes go. */
export interface PushSink {
  next(m: Outbound): void;
}

export interface ConnectionOptions {
  /** The request types this connection may send; all when absent (service, stdio). */
  allowed?: ReadonlySet<string>;
  /** Called before each request is served; an error refuses it (rate limits). */
  admit?: (type: string) => GatewayError | undefined;
  /** Told the type of every reply sent (failed-auth throttling, metrics). */
  onReply?: (requestType: string, replyType: string) => void;
  /**
   * Browser connections: one subscription per session whatever `src` says (a later subscribe
   * moves it to the new `src`), each counted against GatewayOptions.maxSubscribersPerSession.
   */
  untrusted?: boolean;
  /** Said in the connection's `connection opened` line (transport, role, client address). */
  logFields?: Record<string, string | boolean>;
}

/**
 * The key under which messages must keep their order: the session, refresh token or user they
 * name. A message about all of a user's sessions runs alone: the messages about one of them
 * name only its session id, so no key can tie them to the user.
 *
 * A session's key is its id itself, with no prefix: building `s:<id>` for every validate would
 * make a new string that the map of keys in flight must copy flat and hash again. Keys only
 * order: a session id that happens to equal a `u:` or `r:` key (or the `s:` of an extend
 * naming no session) makes the two wait for each other, and nothing else.
 */
function orderKey(d: Decoded): OrderKey {
  if (!d.ok) return undefined;
  const b = d.body;
  switch (b.type) {
    case 'create_session':
      return `u:${b.user_id}`;
    case 'validate_session':
    case 'destroy_session':
    case 'subscribe_session':
    case 'unsubscribe_session':
    case 'exchange_session':
    case 'update_session':
      return b.session_id;
    case 'regenerate_session':
      return b.old_session_id;
    case 'extend_session':
      return b.session_id ?? 's:';
    case 'refresh_token':
      return `r:${b.refresh_token}`;
    case 'revoke_token':
      return `r:${b.token}`;
    case 'list_sessions':
    case 'destroy_session_handle':
    case 'revoke_user_sessions':
    case 'revoke_user_tokens':
      return EXCLUSIVE;
    default:
      return undefined;
  }
}

/**
 * A connection's follow of one session as the hub holds it: one object with methods rather
 * than an object of closures (with tens of thousands of bound connections, each closure and
 * its scope is memory held for as long as the connection lives).
 */
class Follow implements HubSubscriber {
  readonly sessionId: string;
  readonly #follows: SmallMap<string, [string, string]>;
  readonly #entry: string;
  readonly #how: FollowOptions;

  constructor(sessionId: string, follows: SmallMap<string, [string, string]>, entry: string, how: FollowOptions) {
    this.sessionId = sessionId;
    this.#follows = follows;
    this.#entry = entry;
    this.#how = how;
  }

  /** Asked only of a follower that wants the warning. */
  get warnBefore(): number | undefined {
    return this.#how.onExpiring ? this.#how.warnBefore : undefined;
  }

  ended(reason: EndReason): void {
    this.#follows.delete(this.#entry);
    this.#how.onEnded(reason);
  }

  expiring(expiresIn: number): void {
    this.#how.onExpiring?.(expiresIn);
  }

  extended(expiresIn: number): void {
    this.#how.onExtended?.(expiresIn);
  }

  updated(data: Record<string, unknown>): void {
    this.#how.onUpdated?.(data);
  }
}

/**
 * One client's view of the gateway: the RxJS pipeline from decoded messages to replies,
 * merged with the pushes for the sessions this connection follows.
 */
export class GatewayConnection implements HandlerContext {
  readonly id: string;
  readonly gateway: PipelineServices;
  /** `src` of this node's own messages; an `init` may rename it for this connection. */
  nodeId: string;
  readonly #options: ConnectionOptions;
  /** Where pushes go: `handle`'s subscriber, or what `listen` named. */
  #pushTo: PushSink | undefined;
  /** `${hub key}\0${session hash}` -> [hub key, session hash]: one entry per key and session */
  readonly #follows = new SmallMap<string, [string, string]>();
  #closed = false;
  #bound: string | undefined;
  #log: Logger | undefined;

  constructor(gateway: PipelineServices, id: string, options: ConnectionOptions) {
    this.gateway = gateway;
    this.id = id;
    this.nodeId = gateway.nodeId;
    this.#options = options;
    if (gateway.log.isLevelEnabled('debug')) this.log.debug({ event: 'connection opened', ...options.logFields }, 'connection opened');
  }

  /**
   * The gateway's logger with this connection's id (`conn`) on every line. Made on first use:
   * most connections never log, and a child logger per connection is memory held for nothing.
   */
  get log(): Logger {
    return (this.#log ??= this.gateway.log.child({ conn: this.id }));
  }

  /**
   * The request pipeline: every decoded message becomes exactly one reply (an error reply if
   * anything fails), in the order `keyedMerge` keeps. Completes once the input has completed
   * and every reply is out. Unsubscribing drops the pipeline and nothing else: pushes go where
   * `listen` says, and the connection stays open until `close` (the pump builds it at a
   * connection's first message).
   */
  requests(in$: Observable<Decoded>): Observable<Outbound> {
    return in$.pipe(
      keyedMerge(
        orderKey,
        (d) => this.#serve(d),
        (d, err) => this.#failure(d, err),
        this.gateway.options.maxInFlight,
      ),
    );
  }

  /**
   * `requests` with the pushes merged in, for a caller that holds the connection by this one
   * subscription: it completes after the last reply and closes the connection, and so does
   * unsubscribing.
   */
  handle(in$: Observable<Decoded>): Observable<Outbound> {
    return new Observable<Outbound>((out) => {
      this.#pushTo = out;
      const replies = this.requests(in$).subscribe({
        next: (m) => out.next(m),
        error: (err) => out.error(err),
        complete: () => {
          this.close();
          out.complete();
        },
      });
      return () => {
        this.#pushTo = undefined;
        replies.unsubscribe();
        this.close();
      };
    });
  }

  /** Sends pushes to `sink` (until `handle`'s output is subscribed, which takes them over) until the connection closes. */
  listen(sink: PushSink): void {
    if (!this.#closed) this.#pushTo = sink;
  }

  /** Sends an unsolicited message of this node to `dest`. */
  push(dest: string, body: PushDraft): void {
    if (this.#closed) return;
    this.gateway.observer.push?.(body.type);
    this.#pushTo?.next({ src: this.nodeId, dest, body: { ...body, msg_id: this.gateway.nextPushId() } as Body });
  }

  get untrusted(): boolean {
    return this.#options.untrusted === true;
  }

  /** Store hash of the session this connection is bound to by its cookie, if any. */
  get boundSession(): string | undefined {
    return this.#bound;
  }

  /** Binds the connection to a browser's session (the transport read its cookie). */
  bindSession(hash: string): void {
    this.#bound = hash;
  }

  /** The key of a subscription from `src`: per src for trusted connections, one per session for browsers. */
  subscriptionKey(src: string): string {
    return this.#options.untrusted ? 'sub' : `sub\u0000${src}`;
  }

  /**
   * Follows a session under `key` (one per connection, key and session): `onEnded` is called
   * once when it ends. Returns why not when the connection already follows as many as allowed,
   * or (untrusted connections) the session has as many subscribers as allowed.
   * A closed connection follows nothing (a request still in flight when it closed).
   */
  follow(key: string, hash: string, sessionId: string, end: number, reason: 'ttl' | 'idle', how: FollowOptions): FollowRefusal | undefined {
    if (this.#closed) return undefined;
    const fk = `${this.id}\u0000${key}`;
    const entry = `${fk}\u0000${hash}`;
    if (!this.#follows.has(entry) && this.#follows.size >= this.gateway.options.maxSubscriptions) return 'connection_full';
    const limit = this.#options.untrusted ? (this.gateway.options.maxSubscribersPerSession ?? DEFAULT_SUBSCRIBERS_PER_SESSION) : undefined;
    const ok = this.gateway.hub.subscribe(hash, fk, new Follow(sessionId, this.#follows, entry, how), end, reason, limit);
    if (!ok) return 'session_full';
    this.#follows.set(entry, [fk, hash]);
    return undefined;
  }

  /** True while this connection follows `hash` under `key`. */
  follows(key: string, hash: string): boolean {
    return this.#follows.has(`${this.id}\u0000${key}\u0000${hash}`);
  }

  /** Stops following; true when it was following. */
  unfollow(key: string, hash: string): boolean {
    const fk = `${this.id}\u0000${key}`;
    this.#follows.delete(`${fk}\u0000${hash}`);
    return this.gateway.hub.unsubscribe(hash, fk);
  }

  /** Ends the connection's subscriptions; pushes stop. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.gateway.log.isLevelEnabled('debug')) this.log.debug({ event: 'connection closed', subscriptions: this.#follows.size }, 'connection closed');
    for (const [fk, hash] of this.#follows.values()) this.gateway.hub.unsubscribe(hash, fk);
    this.#follows.clear();
    this.#pushTo = undefined;
  }

  get closed(): boolean {
    return this.#closed;
  }

  #serve(d: Decoded): Outbound | Promise<Outbound> {
    if (!d.ok) return errorReply(d, this.nodeId, d.code, d.text);
    const spans = activeSpans();
    if (spans === undefined) return this.#run(d);
    const parent = spans.parentContext(d.traceparent);
    const span = spans.startMessageSpan(d.body.type, parent);
    const out = spans.withSpan(parent, span, () => this.#run(d));
    const end = (m: Outbound): Outbound => {
      spans.endMessageSpan(span, m.body.type === 'error' ? `error_${(m.body as { code: number }).code}` : m.body.type);
      return m;
    };
    return out instanceof Promise ? out.then(end) : end(out);
  }

  #run(d: DecodedRequest): Outbound | Promise<Outbound> {
    const type = d.body.type;
    // Error replies are timed too: an outage must show in the latency it really costs.
    const started = this.gateway.observer.message ? performance.now() : 0;
    if (this.#options.allowed && !this.#options.allowed.has(type)) {
      return this.#error(d, new GatewayError('FORBIDDEN', `Message type "${type}" is not allowed on this connection`), started);
    }
    const refused = this.#options.admit?.(type);
    if (refused) return this.#error(d, refused, started);
    const handler = handlers[type] as (c: GatewayConnection, req: DecodedRequest, body: AnyRequest) => Promise<ReplyDraft> | ReplyDraft;
    let result: Promise<ReplyDraft> | ReplyDraft;
    try {
      result = handler(this, d, d.body);
    } catch (err) {
      return this.#failure(d, err, started);
    }
    if (result instanceof Promise) {
      return result.then(
        (body) => this.#done(d, type, body, started),
        (err) => this.#failure(d, err, started),
      );
    }
    // Answered in place (the memory store): no Promise for this request.
    return this.#done(d, type, result, started);
  }

  #done(d: DecodedRequest, type: string, body: ReplyDraft, started: number): Outbound {
    this.gateway.observer.message?.(type, body.type, (performance.now() - started) / 1000);
    this.#options.onReply?.(type, body.type);
    return reply(d, d.body.msg_id, body);
  }

  #error(d: DecodedRequest, err: GatewayError, started: number): Outbound {
    this.#options.onReply?.(d.body.type, 'error');
    this.gateway.observer.message?.(d.body.type, `error_${err.wireCode}`, started === 0 ? 0 : (performance.now() - started) / 1000);
    return errorReply({ src: d.src, dest: d.dest, msgId: d.body.msg_id }, this.nodeId, err.wireCode, err.message);
  }

  /** Any failure becomes an error reply (see failureOf: counted, sampled in the log). */
  #failure(d: Decoded, err: unknown, started = 0): Outbound {
    if (!d.ok) return errorReply(d, this.nodeId, d.code, d.text);
    return this.#error(d, failureOf(this.gateway, this.log, d.body.type, err), started);
  }
}
