import { WebSocket } from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { browser, eventually, settle, start, stopAll } from './helpers.js';

afterEach(stopAll);

describe('heartbeat spread over the interval', () => {
  it('pings each link once per interval, a few at a time, and cuts none that answer', async () => {
    const { server, clock } = await start({}, { heartbeatMs: 30_000 });
    const peers = Array.from({ length: 30 }, () => browser(server.url));
    await Promise.all(peers.map((p) => p.opened));
    const pings = peers.map(() => 0);
    peers.forEach((p, i) => p.ws.on('ping', () => pings[i]!++));
    const links = [...server.links];
    expect(links).toHaveLength(30);
    // No await between steps: a pinged link stays "not alive" until its pong is read.
    let pinged = 0;
    let most = 0;
    for (let t = 0; t < 300; t++) {
      clock.advance(100);
      const now = links.filter((l) => !l.alive).length;
      most = Math.max(most, now - pinged);
      pinged = now;
    }
    expect(pinged).toBe(30); // every link pinged within one interval
    expect(most).toBeLessThanOrEqual(1); // never all at once: 30 links over 300 slices
    await eventually(() => expect(pings.every((n) => n === 1)).toBe(true));
    await eventually(() => expect(links.every((l) => l.alive)).toBe(true));
    clock.advance(30_000); // the second round: each answered, none is cut
    await eventually(() => expect(pings.every((n) => n === 2)).toBe(true));
    await settle(50);
    for (const p of peers) expect(p.ws.readyState).toBe(WebSocket.OPEN);
  });

  it('GATEWAY_HEARTBEAT_INTERVAL sets the interval: each link is pinged once in each 2 s', async () => {
    const { server, clock } = await start({ GATEWAY_HEARTBEAT_INTERVAL: '2' }, { heartbeatMs: undefined });
    const peers = Array.from({ length: 5 }, () => browser(server.url));
    await Promise.all(peers.map((p) => p.opened));
    const pings = peers.map(() => 0);
    peers.forEach((p, i) => p.ws.on('ping', () => pings[i]!++));
    const links = [...server.links];
    for (let round = 1; round <= 2; round++) {
      for (let t = 0; t < 200; t++) clock.advance(10);
      await eventually(() => expect(pings).toEqual([round, round, round, round, round]));
      await eventually(() => expect(links.every((l) => l.alive)).toBe(true));
    }
    for (const p of peers) expect(p.ws.readyState).toBe(WebSocket.OPEN);
  });
});
