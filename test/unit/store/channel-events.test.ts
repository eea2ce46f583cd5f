import { describe, expect, it } from 'vitest';
import { ChannelEventBus, parseEvent, type Publisher } from '../../../src/store/channel-events.js';
import type { StoreEvent } from '../../../src/store/types.js';

/** A publisher that fails while `down` is set, and records what went out. */
function flakyPublisher() {
  const sent: string[] = [];
  const p = {
    down: true,
    sent,
    publish: (_channel: string, message: string) => (p.down ? Promise.reject(new Error('connection lost')) : (sent.push(message), Promise.resolve(1))),
  };
  return p satisfies Publisher & { down: boolean };
}

const ended = (n: number): StoreEvent => ({ kind: 'ended', hash: `h${n}`, reason: 'destroyed', origin: 'node-a' });

describe('ChannelEventBus: an end that could not be announced is announced later', () => {
  it('keeps what failed and sends it on retry(), once', async () => {
    const pub = flakyPublisher();
    const bus = new ChannelEventBus('ch', pub, 1000);
    await expect(bus.publish(ended(1))).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    await expect(bus.publish(ended(2))).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    expect(bus.unsent).toBe(2);

    bus.retry(); // still down: both are kept
    await expect.poll(() => bus.unsent).toBe(2);
    expect(pub.sent).toEqual([]);

    pub.down = false;
    bus.retry();
    await expect.poll(() => pub.sent.length).toBe(2);
    expect(pub.sent.map((m) => (JSON.parse(m) as { hash: string }).hash)).toEqual(['h1', 'h2']);
    expect(bus.unsent).toBe(0);
    bus.retry();
    await Promise.resolve();
    expect(pub.sent).toHaveLength(2);
  });

  it('keeps at most 10,000 unsent events, dropping the oldest', async () => {
    const pub = flakyPublisher();
    const bus = new ChannelEventBus('ch', pub, 1000);
    await Promise.allSettled(Array.from({ length: 10_050 }, (_, i) => bus.publish(ended(i))));
    expect(bus.unsent).toBe(10_000);
    pub.down = false;
    bus.retry();
    await expect.poll(() => pub.sent.length).toBe(10_000);
    expect((JSON.parse(pub.sent[0]!) as { hash: string }).hash).toBe('h50');
  });
});

describe('parseEvent: every kind a node publishes, nothing else', () => {
  it('accepts ended, extended, updated and tokens_revoked as published', () => {
    const events: StoreEvent[] = [
      { kind: 'ended', hash: 'h1', reason: 'revoked', origin: 'a' },
      { kind: 'extended', hash: 'h2', origin: 'a' },
      { kind: 'updated', hash: 'h3', origin: 'a' },
      { kind: 'tokens_revoked', user: 'u-hash_1', origin: 'a' },
    ];
    for (const e of events) expect(parseEvent(JSON.stringify(e))).toEqual(e);
  });

  it('ignores unknown kinds, bad hashes, a missing origin and non-JSON', () => {
    const bad = [
      '{"kind":"moved","hash":"h","origin":"a"}',
      '{"kind":"extended","hash":"not a hash!","origin":"a"}',
      '{"kind":"updated","hash":"h"}',
      '{"kind":"tokens_revoked","user":"a user id","origin":"a"}',
      '{"kind":"tokens_revoked","hash":"h","origin":"a"}',
      '{"kind":"ended","hash":"h","reason":"bored","origin":"a"}',
      'not json',
      'null',
    ];
    for (const m of bad) expect(parseEvent(m), m).toBeUndefined();
  });
});
