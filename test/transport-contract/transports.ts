import { PassThrough } from 'node:stream';
import { createApp } from '../../src/app.js';
import { ManualClock } from '../../src/clock.js';
import type { Gateway } from '../../src/gateway.js';
import { silentLogger } from '../../src/log.js';
import { runStdio } from '../../src/transports/stdio.js';
import { createMemoryStore } from '../../src/store/memory.js';
import { failingStore, type FailingStore } from '../helpers/failing-store.js';
import { service, startWithStoreDouble, stopAll, testConfig, type Msg } from '../ws/helpers.js';

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
export const stdioTransport: Transport = {
  name: 'stdio',
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
