import { once } from 'node:events';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Deadlines } from '../../../src/store/deadlines.js';
import { within } from '../../../src/store/within.js';

/** Keeps this process busy, reading no socket, for `ms` of real time. */
function busy(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until);
}

describe("Deadlines and within: a store's time limits", () => {
  const closers: (() => void)[] = [];
  afterEach(() => {
    for (const close of closers.splice(0)) close();
  });

  /** A loopback connection: `server` writes, `client` reads. */
  async function pair(): Promise<{ server: Socket; client: Socket }> {
    const srv = createServer();
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    const accepted = once(srv, 'connection') as Promise<[Socket]>;
    const client = connect((srv.address() as AddressInfo).port, '127.0.0.1');
    const [[server]] = await Promise.all([accepted, once(client, 'connect')]);
    closers.push(() => {
      client.destroy();
      server.destroy();
      srv.close();
    });
    return { server, client };
  }

  it('rejects an operation still waiting once its limit has passed', async () => {
    const deadlines = new Deadlines(40, () => new Error('timed out'));
    const started = Date.now();
    const err = await new Promise<unknown>((resolve) => deadlines.add(resolve));
    expect(err).toEqual(new Error('timed out'));
    expect(Date.now() - started).toBeGreaterThanOrEqual(38);
  });

  it('does not reject an answer that came within the limit but was read late because this process was busy', async () => {
    const { server, client } = await pair();
    const deadlines = new Deadlines(40, () => new Error('timed out'));
    const outcome = new Promise<string>((resolve) => {
      const reject = () => resolve('timed out');
      const waiting = deadlines.add(reject);
      client.once('data', () => {
        if (waiting.delete(reject)) resolve('answered');
      });
    });
    // The answer is in the client's socket within a millisecond; the process then stays busy
    // past the limit, so the limit's timer and the socket's data are both due in the next turn.
    server.write('x');
    busy(120);
    expect(await outcome).toBe('answered');
  });

  it('still rejects, after a busy spell, an operation whose answer had not come', async () => {
    const deadlines = new Deadlines(40, () => new Error('timed out'));
    const outcome = new Promise<string>((resolve) => deadlines.add(() => resolve('timed out')));
    busy(120);
    expect(await outcome).toBe('timed out');
  });

  it('within: an answer that came in time but was read late because this process was busy counts as in time', async () => {
    const { server, client } = await pair();
    const answered = within(once(client, 'data'), 40);
    server.write('x');
    busy(120);
    expect(await answered).toBe(true);
    // And one that never comes is not.
    expect(await within(new Promise(() => {}), 40)).toBe(false);
  });
});
