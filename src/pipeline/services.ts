import type { Clock } from '../clock.js';
import type { Logger, Requester } from '../log.js';
import type { LogBudget } from '../log-budget.js';
import type { EndReason } from '../protocol/messages.js';
import type { PushDraft } from '../protocol/push-schemas.js';
import type { SubscriptionHub } from '../push/hub.js';
import type { SessionService } from '../sessions/session-service.js';
import type { TokenService } from '../tokens/token-service.js';

/** What the gateway reports about its work; the WebSocket server turns it into metrics. */
export interface GatewayObserver {
  message?(type: string, outcome: string, seconds: number): void;
  push?(type: string): void;
  storeError?(): void;
  /** One store operation of a remote backend: its time and whether it succeeded. */
  storeOperation?(op: string, seconds: number, ok: boolean): void;
  /** How late after a session's own end (TTL, idle) its followers were told, in seconds. */
  pushLateness?(seconds: number): void;
}

/**
 * What the pipeline needs of the core. The Gateway provides it; declaring it here keeps
 * the arrows one way (gateway -> pipeline), with no import back.
 */
export interface PipelineServices {
  readonly clock: Clock;
  readonly log: Logger;
  readonly nodeId: string;
  readonly sessions: SessionService;
  readonly tokens: TokenService;
  readonly hub: SubscriptionHub;
  readonly observer: GatewayObserver;
  /** Recurring failures and refusals: one line of a kind per interval, then a count (see LogBudget). */
  readonly sampledLog: LogBudget;
  readonly options: {
    readonly maxInFlight: number;
    readonly maxSubscriptions: number;
    /** Subscribers one session may have from untrusted (browser) connections (DEFAULT_SUBSCRIBERS_PER_SESSION). */
    readonly maxSubscribersPerSession?: number;
    readonly sessionIdleTimeout: number;
  };
  /** `msg_id` of the next push of this node. */
  nextPushId(): number;
  /** revoke_user_tokens, told to every node before it resolves with the mark in force. */
  revokeUserTokens(userId: string, before: number, by?: Requester): Promise<number>;
}

/** Subscribers one session may have from browser connections when not configured. */
export const DEFAULT_SUBSCRIBERS_PER_SESSION = 1000;

/** Why a follow was refused. */
export type FollowRefusal = 'connection_full' | 'session_full';

/** How a follower of a session is told things (subscriptions and bound connections). */
export interface FollowOptions {
  onEnded(reason: EndReason): void;
  onExpiring?(expiresIn: number): void;
  warnBefore?: number;
  onExtended?(expiresIn: number): void;
  onUpdated?(data: Record<string, unknown>): void;
}

/** What a request handler may do with its connection. */
export interface HandlerContext {
  readonly gateway: PipelineServices;
  /** `src` of this node's own messages; an `init` may rename it for this connection. */
  nodeId: string;
  push(dest: string, body: PushDraft): void;
  /** True for browser connections (no service key). */
  readonly untrusted: boolean;
  /** The connection's logger: its lines carry the connection id (`conn`). Made on first use. */
  readonly log: Logger;
  /** Store hash of the session this connection is bound to by its cookie, if any. */
  readonly boundSession: string | undefined;
  /** The key of a subscription from `src` (browsers: one per session, whatever `src`). */
  subscriptionKey(src: string): string;
  /** Follows a session; says why not when a limit is reached. */
  follow(key: string, hash: string, sessionId: string, end: number, reason: 'ttl' | 'idle', how: FollowOptions): FollowRefusal | undefined;
  follows(key: string, hash: string): boolean;
  unfollow(key: string, hash: string): boolean;
}
