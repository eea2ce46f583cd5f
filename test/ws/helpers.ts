import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { WebSocket } from 'ws';
import { ManualClock } from '../../src/clock.js';
import { loadConfig, type Config } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import { createMemoryStore } from '../../src/store/memory.js';
import { startServer, type GatewayServer, type ServerOptions } from '../../src/server.js';
import { failingStore, type FailingStore } from '../helpers/failing-store.js';

export const JWT_SECRET = 'OVBIVkTZsrEYmpjnnUCCq3JbcMBWh5g6aWhkCaX1EJY=';
export const SERVICE_KEY = 'D/0WKePVayzi8WpgMeU1nZRTTHa31YoE+qTuzAUvsnI=';

export type Msg = { src: string; dest?: string; body: Record<string, unknown> & { type: string } };

/** `env` on top of the defaults below; a variable given as undefined is unset (an empty one would be refused). */
export function testConfig(env: Record<string, string | undefined> = {}): Config {
  return loadConfig({
    GATEWAY_JWT_SECRET: JWT_SECRET,
    GATEWAY_PORT: '0',
    GATEWAY_HOST: '127.0.0.1',
    GATEWAY_SERVICE_KEY: SERVICE_KEY,
    GATEWAY_LOG_LEVEL: 'silent',
    ...env,
  });
}

const servers = new Set<GatewayServer>();

/**
 * An in-process server on a free port, with a ManualClock. The heartbeat is a day apart unless
 * a test sets `heartbeatMs`: moving the clock must not cut peers whose pongs are still on the way.
 */
export async function start(
  env: Record<string, string | undefined> = {},
  o: ServerOptions & { clock?: ManualClock } = {},
): Promise<{ server: GatewayServer; clock: ManualClock; http: string }> {
  const clock = o.clock ?? new ManualClock(Date.now());
  const server = await startServer(testConfig(env), { log: silentLogger(), processMetrics: false, heartbeatMs: 86_400_000, ...o, clock });
  servers.add(server);
  return { server, clock, http: `http://127.0.0.1:${server.port}` };
}

/** `start` on the store double (over the memory store): for tests that make the store fail, hang or wait. */
export async function startWithStoreDouble(
  env: Record<string, string | undefined> = {},
  o: ServerOptions = {},
): Promise<{ server: GatewayServer; clock: ManualClock; http: string; store: FailingStore }> {
  const clock = new ManualClock(Date.now());
  const store = failingStore(createMemoryStore(clock), false);
  return { ...(await start(env, { ...o, clock, store })), store };
}

/** Drains every server started by `start` (afterEach). */
export async function stopAll(): Promise<void> {
  await Promise.all([...servers].map((s) => s.drain()));
  servers.clear();
  await Promise.all([...peers].map((p) => p.terminate()));
  peers.clear();
}

const peers = new Set<Peer>();

/** A WebSocket test client: queues what it receives, awaits what it needs. */
export class Peer {
  readonly ws: WebSocket;
  readonly messages: Msg[] = [];
  readonly raw: string[] = [];
  readonly opened: Promise<void>;
  readonly closed: Promise<{ code: number; reason: string }>;
  #waiters: (() => void)[] = [];
  #msgId = 0;

  constructor(url: string, o: ConstructorParameters<typeof WebSocket>[2] = {}) {
    this.ws = new WebSocket(url, o);
    peers.add(this);
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
      this.ws.once('error', reject);
    });
    this.opened.catch(() => undefined);
    this.closed = new Promise((resolve) => this.ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    this.ws.on('error', () => undefined);
    this.ws.on('message', (data) => {
      const text = data.toString();
      this.raw.push(text);
      this.messages.push(JSON.parse(text) as Msg);
      for (const w of this.#waiters.splice(0)) w();
    });
    this.ws.once('close', () => {
      for (const w of this.#waiters.splice(0)) w();
    });
  }

  send(m: unknown): void {
    this.ws.send(typeof m === 'string' ? m : JSON.stringify(m));
  }

  /** Sends a request from `src` "c1" with a fresh msg_id; returns the msg_id. */
  post(type: string, fields: Record<string, unknown> = {}, src = 'c1'): number {
    const id = ++this.#msgId + 1000;
    this.send({ src, dest: 'gateway', body: { type, msg_id: id, ...fields } });
    return id;
  }

  /** Sends a request (once the socket is open) and resolves with its reply body. */
  async call(type: string, fields: Record<string, unknown> = {}, src = 'c1'): Promise<Msg['body']> {
    // Only a socket still connecting waits: on an open one the request goes out at once, in order.
    if (this.ws.readyState === WebSocket.CONNECTING) await this.opened;
    const id = this.post(type, fields, src);
    return (await this.next((m) => m.body.in_reply_to === id)).body;
  }

  /** The first queued (or next) message `pick` accepts, removed from the queue. */
  async next(pick: (m: Msg) => boolean = () => true, ms = 3000): Promise<Msg> {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.messages.findIndex(pick);
      if (i >= 0) return this.messages.splice(i, 1)[0]!;
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error(`socket closed while waiting; queue: ${JSON.stringify(this.messages).slice(0, 300)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching message within ${ms} ms; queue: ${JSON.stringify(this.messages).slice(0, 300)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Resolves once `n` messages matching `pick` are queued. */
  async count(n: number, pick: (m: Msg) => boolean = () => true, ms = 5000): Promise<Msg[]> {
    const deadline = Date.now() + ms;
    for (;;) {
      const got = this.messages.filter(pick);
      if (got.length >= n) return got;
      if (Date.now() > deadline || this.ws.readyState === WebSocket.CLOSED) throw new Error(`only ${got.length} of ${n} messages`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 50);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  async terminate(): Promise<void> {
    if (this.ws.readyState !== WebSocket.CLOSED) {
      this.ws.terminate();
      await this.closed;
    }
  }
}

export const service = (url: string) => new Peer(url, { headers: { Authorization: `Bearer ${SERVICE_KEY}` } });
export const browser = (url: string, o: { origin?: string; cookie?: string } = {}) =>
  new Peer(url, { ...(o.origin ? { origin: o.origin } : {}), headers: o.cookie ? { Cookie: o.cookie } : {} });

/** Lets pending I/O and promise callbacks run (real time, a few ms). */
export const settle = (ms = 20) => new Promise((r) => setTimeout(r, ms));

/** A plain HTTP request: status, headers, body. */
export function fetchRaw(
  url: string,
  o: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: o.method ?? 'GET', headers: o.headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

/** Creates a session over a service connection; returns its id. */
export async function createSession(url: string, ttl = 3600, user = 'user-1'): Promise<string> {
  const s = service(url);
  await s.opened;
  const r = await s.call('create_session', { user_id: user, ttl });
  await s.terminate();
  if (r.type !== 'session_created') throw new Error(`create_session answered ${JSON.stringify(r)}`);
  return r.session_id as string;
}

/** Retries `check` until it passes (at most `ms`): for effects that land a moment after the event a test saw. */
export async function eventually(check: () => Promise<void> | void, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await settle(10);
    }
  }
}

export interface RawPeer {
  socket: Socket;
  /** The status line of the upgrade's answer. */
  status: string;
  /** Bytes of the upgrade request: all the peer writes unless told to. */
  requestBytes: number;
  /** Server frames read after the 101 (unmasked, under 64 KiB each). */
  frames: { opcode: number; payload: Buffer }[];
  /** The server's FIN. */
  ended: Promise<void>;
  closed: Promise<void>;
}

/** A browser upgrade over a bare TCP socket, which writes nothing after it unless told to. */
/** A client frame (masked, as a client's must be) of `opcode` with `payload` under 64 KiB. */
export function clientFrame(opcode: number, payload: string | Buffer): Buffer {
  const data = Buffer.from(payload);
  const mask = randomBytes(4);
  const head =
    data.length < 126 ? Buffer.from([0x80 | opcode, 0x80 | data.length]) : Buffer.from([0x80 | opcode, 0x80 | 126, data.length >> 8, data.length & 0xff]);
  return Buffer.concat([head, mask, data.map((b, i) => b ^ mask[i & 3]!)]);
}

export async function rawUpgrade(port: number, cookie: string): Promise<RawPeer> {
  const socket = connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const request =
    `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\nCookie: ${cookie}\r\n\r\n`;
  socket.write(request);
  const peer: RawPeer = {
    socket,
    status: '',
    requestBytes: Buffer.byteLength(request),
    frames: [],
    ended: new Promise((resolve) => socket.once('end', resolve)),
    closed: new Promise((resolve) => socket.once('close', () => resolve())),
  };
  let buf = Buffer.alloc(0);
  let answered: () => void;
  const opened = new Promise<void>((resolve) => (answered = resolve));
  socket.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    if (peer.status === '') {
      const at = buf.indexOf('\r\n\r\n');
      if (at === -1) return;
      peer.status = buf.toString('latin1', 0, buf.indexOf('\r\n'));
      buf = buf.subarray(at + 4);
      answered();
    }
    // A length byte, or 126 and two bytes of length.
    for (;;) {
      const head = buf.length >= 2 && (buf[1]! & 0x7f) === 126 ? 4 : 2;
      const n = buf.length < head ? -1 : head === 4 ? buf.readUInt16BE(2) : buf[1]! & 0x7f;
      if (n < 0 || buf.length < head + n) break;
      peer.frames.push({ opcode: buf[0]! & 0x0f, payload: buf.subarray(head, head + n) });
      buf = buf.subarray(head + n);
    }
  });
  await opened;
  return peer;
}

/** A bare TCP client of the HTTP port: it writes what the test says, and keeps what it reads. */
export interface RawHttpClient {
  socket: Socket;
  /** All read so far (latin1). */
  received(): string;
  /** All read, once the server has closed the connection. */
  closed: Promise<string>;
}

export async function rawHttpClient(port: number): Promise<RawHttpClient> {
  const socket = connect(port, '127.0.0.1');
  let got = '';
  socket.setEncoding('latin1');
  socket.on('data', (d: string) => (got += d));
  const closed = new Promise<string>((resolve) => socket.once('close', () => resolve(got)));
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  socket.on('error', () => undefined);
  return { socket, received: () => got, closed };
}
