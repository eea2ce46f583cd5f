import { Agent, request } from 'node:http';
import { PassThrough } from 'node:stream';
import { createApp } from '../../src/app.js';
import { ManualClock } from '../../src/clock.js';
import type { Gateway } from '../../src/gateway.js';
import { silentLogger } from '../../src/log.js';
import { runStdio } from '../../src/transports/stdio.js';
import { createMemoryStore } from '../../src/store/memory.js';
import { failingStore, type FailingStore } from '../helpers/failing-store.js';
import { SERVICE_KEY, service, startWithStoreDouble, stopAll, testConfig, type Msg } from '../ws/helpers.js';

/** One client on one transport, as the contract suite drives it. */
export interface Harness {
  clock: ManualClock;
  gateway: Gateway;
  /** The gateway's store: the double over the memory store, passing through until told otherwise. */
  store: FailingStore;
  /** Everything received and not yet taken by `next`. */
  messages: Msg[];
  send(line: string): void;
  next(pick?: (m: Msg) => boolean, ms?: number): Promise<Msg>;
  /** Ends the input (stdio: stdin closes; ws: the server drains) and waits until all is answered. */
  end(): Promise<void>;
}

export interface Transport {
  name: string;
  /**
   * What the transport carries beyond one request and its reply. HTTP has no envelope (the
   * harness writes the ends), no connection to push to, and no order between concurrent
   * requests; it refuses an oversized body unread (so no msg_id from its head).
   */
  carries: { envelopes: boolean; pushes: boolean; order: boolean; oversizedHead: boolean };
  open(env?: Record<string, string>): Promise<Harness>;
  cleanup(): Promise<void>;
}

/** Waits for messages pushed into `queue`; `wake` is called on every arrival. */
function queueWaiter(queue: Msg[], isDone: () => boolean) {
  const waiters: (() => void)[] = [];
  const wake = () => {
    for (const w of waiters.splice(0)) w();
  };
  const next = async (pick: (m: Msg) => boolean = () => true, ms = 3000): Promise<Msg> => {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = queue.findIndex(pick);
      if (i >= 0) return queue.splice(i, 1)[0]!;
      if (isDone()) throw new Error(`transport finished while waiting; queue: ${JSON.stringify(queue).slice(0, 300)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching message within ${ms} ms; queue: ${JSON.stringify(queue).slice(0, 300)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  };
  return { wake, next };
}

/** stdio in-process: runStdio over PassThrough streams, the same function the CLI runs. */
const ALL = { envelopes: true, pushes: true, order: true, oversizedHead: true };

export const stdioTransport: Transport = {
  name: 'stdio',
  carries: ALL,
  async open(env = {}) {
    const clock = new ManualClock(Date.now());
    const config = testConfig(env);
    const store = failingStore(createMemoryStore(clock), false);
    const { gateway } = await createApp(config, { clock, log: silentLogger(), store });
    const input = new PassThrough();
    const output = new PassThrough();
    const messages: Msg[] = [];
    let finished = false;
    const w = queueWaiter(messages, () => finished);
    let buf = '';
    output.setEncoding('utf8');
    output.on('data', (d: string) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        messages.push(JSON.parse(buf.slice(0, i)) as Msg);
        buf = buf.slice(i + 1);
      }
      w.wake();
    });
    const done = runStdio(gateway, input, output, { maxMessageBytes: config.maxMessageBytes }).then(() => {
      finished = true;
      w.wake();
    });
    return {
      clock,
      gateway,
      store,
      messages,
      send: (line) => input.write(`${line}\n`),
      next: w.next,
      async end() {
        input.end();
        await done;
        await new Promise((r) => setImmediate(r));
      },
    };
  },
  async cleanup() {},
};

/** ws in-process: the real server on a free port, a real WebSocket client with the service role. */
export const wsTransport: Transport = {
  name: 'ws',
  carries: ALL,
  async open(env = {}) {
    const { server, clock, store } = await startWithStoreDouble(env);
    const peer = service(server.url);
    await peer.opened;
    return {
      clock,
      gateway: server.gateway,
      store,
      messages: peer.messages,
      send: (line) => peer.send(line),
      next: (pick, ms) => peer.next(pick, ms),
      async end() {
        await server.drain();
        await peer.closed;
      },
    };
  },
  cleanup: stopAll,
};

/**
 * HTTP in-process: the real server, each line POSTed to /v1/rpc as its body over keep-alive
 * connections, at once (concurrent requests, as HTTP clients send them). The reply body
 * comes back in an envelope the harness writes: ends swapped from the request's.
 */
export const httpTransport: Transport = {
  name: 'http',
  carries: { envelopes: false, pushes: false, order: false, oversizedHead: false },
  async open(env = {}) {
    const { server, clock, store, http } = await startWithStoreDouble(env);
    const agent = new Agent({ keepAlive: true, maxSockets: 32 });
    agents.add(agent);
    const messages: Msg[] = [];
    let finished = false;
    const w = queueWaiter(messages, () => finished);
    let inFlight = 0;
    let idle: (() => void) | undefined;
    const send = (line: string) => {
      let ends = { src: 'gateway', dest: 'c1' };
      let body = line;
      try {
        const env = JSON.parse(line) as { src?: unknown; dest?: unknown; body?: unknown };
        if (typeof env.src === 'string' && typeof env.dest === 'string') ends = { src: env.dest, dest: env.src };
        if (env.body !== undefined) body = JSON.stringify(env.body);
      } catch {
        // Not JSON: sent as it is, for the gateway to refuse.
      }
      inFlight++;
      const req = request(
        `${http}/v1/rpc`,
        { method: 'POST', agent, headers: { Authorization: `Bearer ${SERVICE_KEY}`, 'Content-Type': 'application/json' } },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (text += d));
          res.on('end', () => {
            messages.push({ ...ends, body: JSON.parse(text) as Msg['body'] });
            w.wake();
            if (--inFlight === 0) idle?.();
          });
        },
      );
      req.on('error', () => {
        if (--inFlight === 0) idle?.();
      });
      req.end(body);
    };
    return {
      clock,
      gateway: server.gateway,
      store,
      messages,
      send,
      next: w.next,
      async end() {
        const answered = inFlight === 0 ? Promise.resolve() : new Promise<void>((r) => (idle = r));
        await server.drain();
        await answered;
        finished = true;
      },
    };
  },
  async cleanup() {
    for (const a of agents) a.destroy();
    agents.clear();
    await stopAll();
  },
};

const agents = new Set<Agent>();
