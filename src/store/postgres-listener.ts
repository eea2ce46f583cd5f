import pg from 'pg';
import { quoted } from './postgres-schema.js';

export interface ListenerOptions {
  connectionString: string;
  /** A checked identifier (see postgres-url.ts), quoted in LISTEN, which takes no parameter. */
  channel: string;
  timeoutMs: number;
  onMessage(payload: string): void;
  /** Called each time LISTEN succeeds, the first time included. */
  onListening(): void;
}

/** Reconnects quickly (the database is usually back within seconds) but never hammers it. */
const backoff = (attempt: number): number => Math.min(50 * 2 ** attempt, 500);

/**
 * The one connection per node that LISTENs (a pooled connection would lose the LISTEN when
 * handed back). When it breaks it reconnects by itself, and says so through `onListening`:
 * notifications sent while it was away are lost.
 */
export class PostgresListener {
  readonly #o: ListenerOptions;
  #client: pg.Client | undefined;
  #listening = false;
  #closed = false;
  #attempt = 0;
  #timer: NodeJS.Timeout | undefined;

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
      await client.query(`LISTEN ${quoted(this.#o.channel)}`);
    } catch {
      onLost();
      return false;
    }
    if (this.#closed || lost) return false;
    this.#attempt = 0;
    this.#listening = true;
    this.#o.onListening();
    return true;
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
    const client = this.#client;
    if (client === undefined) return;
    client.removeAllListeners('end');
    client.on('error', () => {});
    await Promise.race([client.end().catch(() => {}), new Promise((r) => setTimeout(r, this.#o.timeoutMs).unref())]);
  }
}
