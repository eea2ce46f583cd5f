/**
 * The client tests' own harness (nothing from the server's test helpers): a real gateway in
 * this process on a free port with a ManualClock, a raw service connection that sets sessions
 * up and ends them, and a WebSocket server that accepts and never answers.
 */
import { WebSocket, WebSocketServer } from 'ws';
import { ManualClock } from '../../src/clock.js';
import { loadConfig } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import { startServer, type GatewayServer } from '../../src/server.js';

export const SERVICE_KEY = 'R/AfGirG9UQrdBHetICPjIssGfGTBjfRGXosCV8aUqU=';
const JWT_SECRET = 'u6q0UEe7Fh/6Ju9NGxTC3IcEcfw5vnfCbKfnLOhGSjU=';

const servers = new Set<GatewayServer>();
const silentServers = new Set<WebSocketServer>();
const services = new Set<Service>();

/** A gateway on a free port; time moves only through the returned clock (heartbeat a day apart). */
export async function start(env: Record<string, string> = {}): Promise<{ server: GatewayServer; clock: ManualClock }> {
  const clock = new ManualClock(Date.now());
  const config = loadConfig({
    GATEWAY_JWT_SECRET: JWT_SECRET,
    GATEWAY_PORT: '0',
    GATEWAY_HOST: '127.0.0.1',
    GATEWAY_SERVICE_KEY: SERVICE_KEY,
    GATEWAY_LOG_LEVEL: 'silent',
    ...env,
  });
  const server = await startServer(config, { clock, log: silentLogger(), processMetrics: false, heartbeatMs: 86_400_000 });
  servers.add(server);
  return { server, clock };
}

/** A WebSocket server that accepts every connection and never sends anything; returns its url. */
export async function silentServer(): Promise<string> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  silentServers.add(wss);
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  return `ws://127.0.0.1:${(wss.address() as { port: number }).port}/`;
}

/** Drains every gateway and closes every silent server and service connection started here (afterEach). */
export async function stopAll(): Promise<void> {
  for (const s of services) s.close();
  services.clear();
  await Promise.all([...servers].map((s) => s.drain()));
  servers.clear();
  for (const wss of silentServers) {
    for (const ws of wss.clients) ws.terminate();
    await new Promise((r) => wss.close(r));
  }
  silentServers.clear();
}

type Body = Record<string, unknown> & { type: string };

/** A raw service connection to set up what a client test needs: `call` resolves with the reply body. */
export class Service {
  readonly #ws: WebSocket;
  readonly #waiting = new Map<number, (b: Body) => void>();
  #msgId = 0;
  readonly opened: Promise<void>;

  constructor(url: string) {
    this.#ws = new WebSocket(url, { headers: { Authorization: `Bearer ${SERVICE_KEY}` } });
    services.add(this);
    this.opened = new Promise((resolve, reject) => {
      this.#ws.once('open', () => resolve());
      this.#ws.once('error', reject);
    });
    this.#ws.on('message', (data) => {
      const body = (JSON.parse(data.toString()) as { body: Body }).body;
      const id = body.in_reply_to;
      if (typeof id === 'number') this.#waiting.get(id)?.(body);
    });
  }

  async call(type: string, fields: Record<string, unknown> = {}, timeoutMs = 3000): Promise<Body> {
    await this.opened;
    const msg_id = ++this.#msgId;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no reply to ${type} within ${timeoutMs} ms`)), timeoutMs);
      this.#waiting.set(msg_id, (b) => {
        clearTimeout(t);
        this.#waiting.delete(msg_id);
        resolve(b);
      });
      this.#ws.send(JSON.stringify({ src: 'client-test', dest: 'gateway', body: { type, msg_id, ...fields } }));
    });
  }

  close(): void {
    this.#ws.terminate();
    services.delete(this);
  }
}

export const service = (url: string) => new Service(url);

/** Creates a session over a service connection; returns its id. */
export async function createSession(url: string, ttl = 3600, user = 'user-1'): Promise<string> {
  const s = service(url);
  const r = await s.call('create_session', { user_id: user, ttl });
  s.close();
  if (r.type !== 'session_created') throw new Error(`create_session answered ${JSON.stringify(r)}`);
  return r.session_id as string;
}

/** Retries `check` until it passes or `ms` runs out (then its last error is thrown). */
export async function eventually(check: () => Promise<void> | void, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}
