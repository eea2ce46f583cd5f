import { Socket } from 'node:net';
import { Writable } from 'node:stream';
import * as ws from 'ws';
import { describe, expect, it } from 'vitest';
import { quietEnd, quietReceivers, quietSocket } from '../../../src/transports/ws/quiet-end.js';

type End = (this: Writable, ...args: unknown[]) => Writable;
const nodeEnd = Writable.prototype.end as End;

/** A writable whose writes complete at once; `end` replaced when given. */
function sink(end?: End): Writable {
  const w = new Writable({ write: (_chunk, _enc, done) => done() });
  if (end !== undefined) (w as unknown as { end: End }).end = end;
  w.on('error', () => undefined);
  return w;
}

const tick = () => new Promise((r) => setImmediate(r));

/** The states a stream can be in when `end` is called. */
const states: Record<string, (w: Writable) => Promise<void>> = {
  open: async () => undefined,
  ending: async (w) => {
    w.cork();
    w.write('x');
    w.end();
  },
  finished: async (w) => {
    w.end();
    await tick();
  },
  destroyed: async (w) => {
    w.destroy();
    await tick();
  },
  errored: async (w) => {
    w.destroy(new Error('boom'));
    await tick();
  },
  'corked after end': async (w) => {
    w.end();
    w.cork();
  },
};

/** The ways `end` is called. */
const calls: Record<string, (w: Writable, cb: (err?: Error | null) => void) => Writable> = {
  bare: (w) => w.end(),
  callback: (w, cb) => w.end(cb),
  chunk: (w) => w.end('y'),
};

/** What one can observe of a call: its return, its callback's error code, events, the state after. */
async function observe(end: End | undefined, state: string, call: string) {
  const w = sink(end);
  const events: string[] = [];
  for (const e of ['finish', 'close', 'error', 'prefinish']) w.on(e, () => events.push(e));
  await states[state]!(w);
  events.length = 0;
  let cbCode: string | undefined = 'not called';
  const returned = calls[call]!(w, (err) => {
    cbCode = err ? ((err as Error & { code?: string }).code ?? 'error') : undefined;
  });
  await tick();
  await tick();
  return { same: returned === w, cbCode, events, ended: w.writableEnded, finished: w.writableFinished, destroyed: w.destroyed, corked: w.writableCorked };
}

describe('quietEnd', () => {
  for (const state of Object.keys(states))
    for (const call of Object.keys(calls))
      it(`behaves as Node's end: ${call} call on a stream ${state}`, async () => {
        expect(await observe(quietEnd(nodeEnd), state, call)).toEqual(await observe(undefined, state, call));
      });

  it('skips the stream’s own end only for a bare call on a stream already ending and not corked', async () => {
    let calls = 0;
    const counted: End = function (this: Writable, ...args) {
      calls++;
      return nodeEnd.apply(this, args);
    };
    const w = sink(quietEnd(counted));
    w.end();
    expect(calls).toBe(1);
    await tick();
    w.end();
    w.end();
    expect(calls).toBe(1);
    w.end(() => undefined);
    expect(calls).toBe(2);
    w.cork();
    w.end();
    expect(calls).toBe(3);
  });
});

describe('the streams a WebSocket closes', () => {
  it('ws’s receiver gets the quiet end once, whatever the number of calls', () => {
    const proto = (ws as unknown as { Receiver: { prototype: Writable } }).Receiver.prototype;
    quietReceivers();
    const first = proto.end;
    quietReceivers();
    expect(Object.prototype.hasOwnProperty.call(proto, 'end')).toBe(true);
    expect(first).not.toBe(nodeEnd);
    expect(proto.end).toBe(first);
  });

  it('an upgraded socket gets the quiet end as its own, other sockets keep Node’s', () => {
    const upgraded = new Socket();
    const other = new Socket();
    quietSocket(upgraded);
    expect(Object.prototype.hasOwnProperty.call(upgraded, 'end')).toBe(true);
    expect(upgraded.end).not.toBe(Socket.prototype.end);
    expect(other.end).toBe(Socket.prototype.end);
    upgraded.destroy();
    other.destroy();
  });
});
