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

/** A publisher that counts `listeners` on the channel, `readers` of them also on its groups channel. */
function countingPublisher(listeners: number, readers: number | 'fails') {
  const sent: string[] = [];
  const p: Publisher & { sent: string[] } = {
    sent,
    publish: (_channel, message) => (sent.push(message), Promise.resolve(1)),
    subscribers: (channels) =>
      readers === 'fails' ? Promise.reject(new Error('NOPERM')) : Promise.resolve({ [channels[0]!]: listeners, [channels[1]!]: readers }),
  };
  return p;
}

const kinds = (sent: string[]) => sent.map((m) => (JSON.parse(m) as { kind: string }).kind);

describe('ChannelEventBus: the ends of one turn go out together where every listener reads them', () => {
  it('sends one ended_many for the ends of one turn, by reason, when every listener is on the groups channel', async () => {
    const pub = countingPublisher(3, 3);
    const bus = new ChannelEventBus('ch', pub, 1000);
    expect(bus.groupsChannel).toBe('ch:ended_many');
    const revoked = (n: number): StoreEvent => ({ kind: 'ended', hash: `r${n}`, reason: 'revoked', origin: 'node-a' });
    await Promise.all([bus.publish(revoked(1)), bus.publish(revoked(2)), bus.publish(ended(3)), bus.publish(revoked(4))]);
    expect(pub.sent.map((m) => JSON.parse(m) as unknown)).toEqual([
      { kind: 'ended_many', hashes: ['r1', 'r2', 'r4'], reason: 'revoked', origin: 'node-a' },
      { kind: 'ended', hash: 'h3', reason: 'destroyed', origin: 'node-a' },
    ]);
  });

  it('sends at most 128 hashes per message', async () => {
    const pub = countingPublisher(2, 2);
    const bus = new ChannelEventBus('ch', pub, 1000);
    await Promise.all(Array.from({ length: 300 }, (_, i) => bus.publish(ended(i))));
    const sizes = pub.sent.map((m) => (JSON.parse(m) as { hashes: string[] }).hashes.length);
    expect(sizes).toEqual([128, 128, 44]);
  });

  it('sends one message per end while a listener is not on the groups channel (an older node), or the count fails', async () => {
    for (const [listeners, readers] of [
      [3, 2],
      [0, 0],
      [3, 'fails'],
    ] as const) {
      const pub = countingPublisher(listeners, readers);
      const bus = new ChannelEventBus('ch', pub, 1000);
      await Promise.all([bus.publish(ended(1)), bus.publish(ended(2))]);
      expect(kinds(pub.sent), `${listeners}/${readers}`).toEqual(['ended', 'ended']);
    }
  });

  it('sends at once where the backend cannot count listeners (PostgreSQL, Redis Cluster)', () => {
    const pub = flakyPublisher();
    pub.down = false;
    const bus = new ChannelEventBus('ch', pub, 1000);
    void bus.publish(ended(1));
    expect(kinds(pub.sent)).toEqual(['ended']);
  });

  it('flush() sends what was gathered without waiting for the turn to end', async () => {
    const pub = countingPublisher(1, 1);
    const bus = new ChannelEventBus('ch', pub, 1000);
    const published = [bus.publish(ended(1)), bus.publish(ended(2))];
    await bus.flush();
    expect(kinds(pub.sent)).toEqual(['ended_many']);
    await Promise.all(published);
  });

  it('a group that could not be sent is kept and sent again by retry(); its publishers hear UNAVAILABLE', async () => {
    let down = true;
    const sent: string[] = [];
    const pub: Publisher = {
      publish: (_c, m) => (down ? Promise.reject(new Error('connection lost')) : (sent.push(m), Promise.resolve(1))),
      subscribers: (channels) => Promise.resolve({ [channels[0]!]: 2, [channels[1]!]: 2 }),
    };
    const bus = new ChannelEventBus('ch', pub, 1000);
    const results = await Promise.allSettled([bus.publish(ended(1)), bus.publish(ended(2))]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(bus.unsent).toBe(1);
    down = false;
    bus.retry();
    await expect.poll(() => sent.length).toBe(1);
    expect(JSON.parse(sent[0]!)).toEqual({ kind: 'ended_many', hashes: ['h1', 'h2'], reason: 'destroyed', origin: 'node-a' });
  });

  it('hands listeners one ended event per hash of an ended_many, and still reads the single ended of older nodes', () => {
    const bus = new ChannelEventBus('ch', countingPublisher(1, 1), 1000);
    const heard: StoreEvent[] = [];
    bus.subscribe((e) => heard.push(e));
    bus.deliver('{"kind":"ended_many","hashes":["a1","b2"],"reason":"revoked","origin":"node-b"}');
    bus.deliver('{"kind":"ended","hash":"c3","reason":"destroyed","origin":"node-c"}');
    expect(heard).toEqual([
      { kind: 'ended', hash: 'a1', reason: 'revoked', origin: 'node-b' },
      { kind: 'ended', hash: 'b2', reason: 'revoked', origin: 'node-b' },
      { kind: 'ended', hash: 'c3', reason: 'destroyed', origin: 'node-c' },
    ]);
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
    const group = { kind: 'ended_many', hashes: ['h1', 'h2'], reason: 'revoked', origin: 'a' };
    expect(parseEvent(JSON.stringify(group))).toEqual(group);
  });

  it('ignores unknown kinds, bad hashes, a missing origin and non-JSON', () => {
    const bad = [
      '{"kind":"moved","hash":"h","origin":"a"}',
      '{"kind":"extended","hash":"not a hash!","origin":"a"}',
      '{"kind":"updated","hash":"h"}',
      '{"kind":"tokens_revoked","user":"a user id","origin":"a"}',
      '{"kind":"tokens_revoked","hash":"h","origin":"a"}',
      '{"kind":"ended","hash":"h","reason":"bored","origin":"a"}',
      '{"kind":"ended_many","hashes":["h1","not a hash!"],"reason":"revoked","origin":"a"}',
      '{"kind":"ended_many","hashes":"h1","reason":"revoked","origin":"a"}',
      '{"kind":"ended_many","hashes":["h1"],"reason":"bored","origin":"a"}',
      '{"kind":"ended_many","hashes":["h1"],"reason":"revoked"}',
      `{"kind":"ended_many","hashes":${JSON.stringify(Array.from({ length: 129 }, (_, i) => `h${i}`))},"reason":"revoked","origin":"a"}`,
      'not json',
      'null',
    ];
    for (const m of bad) expect(parseEvent(m), m).toBeUndefined();
  });
});
