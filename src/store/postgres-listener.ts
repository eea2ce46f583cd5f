import pg from 'pg';
import type { Logger } from '../log.js';
import { quoted } from './postgres-schema.js';
import { within } from './within.js';

export interface ListenerOptions {
  connectionString: string;
  /** A checked identifier (see postgres-url.ts), quoted in LISTEN, which takes no parameter. */
  channel: string;
  timeoutMs: number;
  onMessage(payload: string): void;
  /** Called each time LISTEN succeeds, the first time included. */
  onListening(): void;
  /** For a connection found stalled (one line per stall) and listening again after it. */
  log?: Logger;
  /** Interval of the liveness check of the listening connection (default EVENT_PING_MS). */
  pingMs?: number;
}

/** Reconnects quickly (the database is usually back within seconds) but never hammers it. */
const backoff = (attempt: number): number => Math.min(50 * 2 ** attempt, 500);
/** How often the listening connection is asked to answer (see PostgresListener). */
export const EVENT_PING_MS = 1000;

/** The socket under a pg.Client (not in its types): destroyed when the connection stalled. */
const socketOf = (client: pg.Client): { destroy(): void } | undefined =>
  (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream;

/**
 * The one connection per node that LISTENs (a pooled connection would lose the LISTEN when
 * handed back). When it breaks it reconnects by itself, and says so through `onListening`:
 * notifications sent while it was away are lost.
 *
 * A connection that only listens never notices a path that stops forwarding without closing
 * (a proxy, a firewall that dropped the flow, a stopped backend): every `pingMs` it sends
 * its LISTEN again (a no-op that answers, on that very connection), and one not answered
 * within the operation limit (at least 1 s) is dropped and made again, as a broken one is.
 */
export class PostgresListener {
  readonly #o: ListenerOptions;
  #client: pg.Client | undefined;
  #listening = false;
  #closed = false;
  #attempt = 0;
  #timer: NodeJS.Timeout | undefined;
  #pingTimer: NodeJS.Timeout | undefined;
  /** A stall was logged and the connection not listening again since. */
  #stalled = false;

  constructor(o: ListenerOptions) {
    this.#o = o;
  }

  get listening(): boolean {
    return this.#listening;
  }

  /** The first attempt; resolves true when listening (later attempts run by themselves). */
  start(): Promise<boolean> {
    return this.#connect();
  }

  get #listen(): string {
    return `LISTEN ${quoted(this.#o.channel)}`;
  }

  async #connect(): Promise<boolean> {
    if (this.#closed) return false;
    const client = new pg.Client({
      connectionString: this.#o.connectionString,
      connectionTimeoutMillis: Math.max(this.#o.timeoutMs, 500),
      keepAlive: true,
      application_name: 'auth-gateway-listener',
    });
    this.#client = client;
    let lost = false;
    const onLost = (): void => {
      if (lost) return;
      lost = true;
      this.#listening = false;
      clearTimeout(this.#pingTimer);
      client.removeAllListeners('notification');
      void client.end().catch(() => {});
      this.#retry();
    };
    client.on('error', onLost);
    client.on('end', onLost);
    client.on('notification', (n) => {
      if (n.channel === this.#o.channel && n.payload !== undefined) this.#o.onMessage(n.payload);
    });
    try {
      await client.connect();
      await client.query(this.#listen);
    } catch {
      onLost();
      return false;
    }
    if (this.#closed || lost) return false;
    this.#attempt = 0;
    this.#listening = true;
    if (this.#stalled) {
      this.#stalled = false;
      this.#o.log?.info({ store: 'PostgreSQL' }, 'PostgreSQL event connection listening again');
    }
    this.#o.onListening();
    this.#ping(client, onLost);
    return true;
  }

  /** The next liveness check of `client`, while it is the one listening. */
  #ping(client: pg.Client, onLost: () => void): void {
    const limit = Math.max(this.#o.timeoutMs, 1000);
    this.#pingTimer = setTimeout(() => {
      void within(client.query(this.#listen), limit).then((answered) => {
        if (this.#closed || this.#client !== client || !this.#listening) return;
        if (answered) return this.#ping(client, onLost);
        if (!this.#stalled) {
          this.#stalled = true;
          this.#o.log?.warn(
            { store: 'PostgreSQL', err: new Error(`LISTEN not answered within ${limit} ms`) },
            'PostgreSQL event connection (LISTEN) does not answer: reconnecting it; not ready until it listens again, then the sessions followed here are re-checked',
          );
        }
        // Ended without waiting: a stalled socket would never finish a polite goodbye.
        socketOf(client)?.destroy();
        onLost();
      });
    }, this.#o.pingMs ?? EVENT_PING_MS);
    this.#pingTimer.unref();
  }

  #retry(): void {
    if (this.#closed || this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#connect();
    }, backoff(this.#attempt++));
    this.#timer.unref();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#listening = false;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    clearTimeout(this.#pingTimer);
    const client = this.#client;
    if (client === undefined) return;
    client.removeAllListeners('end');
    client.on('error', () => {});
    await Promise.race([client.end().catch(() => {}), new Promise((r) => setTimeout(r, this.#o.timeoutMs).unref())]);
  }
}
