/**
 * Shared test harness for the core: a Gateway on a ManualClock and the in-memory store,
 * and a connection driver that feeds raw lines or envelopes and collects what comes out.
 * Time moves only through `clock.advance`; `settle()` lets pending promise chains finish.
 */
import { Subject } from 'rxjs';
import { expect } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { ConfigError } from '../../src/errors.js';
import { Gateway, type GatewayOptions } from '../../src/gateway.js';
import { silentLogger } from '../../src/log.js';
import type { ConnectionOptions, GatewayConnection } from '../../src/pipeline/connection.js';
import { decode, type Decoded } from '../../src/protocol/decode.js';
import { createMemoryStore } from '../../src/store/memory.js';
import type { Store } from '../../src/store/types.js';

export const SECRET = 'BWNEd05XKt/N/Hb+TI5wTBGNq4kv3dcasXtIRQzz2+M=';

/** Lets every queued promise callback (and one macrotask turn) run. */
export async function settle(turns = 3): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((r) => setImmediate(r));
}

export interface TestGateway {
  gateway: Gateway;
  clock: ManualClock;
  store: Store;
}

/** A gateway on a ManualClock (2026-01-01T00:00:00Z unless `start` says otherwise). */
export function makeGateway(over: Partial<GatewayOptions> & { start?: number } = {}): TestGateway {
  const clock = (over.clock as ManualClock | undefined) ?? new ManualClock(over.start);
  const store = over.store ?? createMemoryStore(clock);
  const gateway = new Gateway({
    store,
    clock,
    log: silentLogger(),
    nodeId: 'gateway',
    sessionTtl: 3600,
    sessionIdleTimeout: 0,
    accessTokenTtl: 900,
    refreshTokenTtl: 1_209_600,
    clockTolerance: 30,
    jwtKeys: [{ secret: Buffer.from(SECRET) }],
    maxInFlight: 64,
    maxSubscriptions: 10_000,
    logSalt: 'test-salt',
    ...over,
  });
  return { gateway, clock, store };
}

type Body = Record<string, unknown> & { type: string };
/** A message as the tests read it: any field of any body (the pipeline's own type is the schemas' union). */
export type Sent = { src: string; dest?: string; body: Body };
/** A message the gateway sent unasked: a push always names its `dest`. */
export type Push = Sent & { dest: string };

/** One connection: `send` a request, `line` raw text, then read `out` / `reply(msgId)`. */
export class Driver {
  readonly conn: GatewayConnection;
  readonly out: Sent[] = [];
  readonly input = new Subject<Decoded>();
  completed = false;
  #msgId = 0;

  constructor(gateway: Gateway, options: ConnectionOptions = {}) {
    this.conn = gateway.connect(options);
    this.conn.handle(this.input).subscribe({
      next: (m) => this.out.push(m),
      complete: () => void (this.completed = true),
    });
  }

  /** Sends a request body from `src` c1 to `gateway`; returns its msg_id. */
  send(body: Record<string, unknown> & { type: string }, src = 'c1', dest = 'gateway'): number {
    const msg_id = (body.msg_id as number | undefined) ?? ++this.#msgId;
    this.input.next(decode(JSON.stringify({ src, dest, body: { ...body, msg_id } })));
    return msg_id;
  }

  /** Sends one raw line as a transport would. */
  line(text: string): void {
    this.input.next(decode(text));
  }

  /** Sends a request and waits for its reply body. */
  async call(body: Body, src = 'c1'): Promise<Body> {
    const id = this.send(body, src);
    await settle();
    return this.reply(id);
  }

  /** The one reply to `msgId` (throws when there is none or more than one). */
  reply(msgId: number): Body {
    const found = this.out.filter((m) => m.body.in_reply_to === msgId);
    if (found.length !== 1) throw new Error(`expected exactly one reply to ${msgId}, got ${found.length}`);
    return found[0]!.body as Body;
  }

  /** Unsolicited messages so far (a push always names its `dest`). */
  pushes(): Push[] {
    return this.out.filter((m): m is Push => m.body.in_reply_to === undefined && m.body.msg_id !== undefined && 'dest' in m);
  }

  end(): void {
    this.input.complete();
  }
}

/** A Store whose every operation rejects as the contract says an outage does. */
export { failingStore } from '../helpers/failing-store.js';

/** The message of the ConfigError `f` throws (and that it throws one). */
export function configRefusal(f: () => unknown): string {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ConfigError);
  return (err as Error).message;
}
