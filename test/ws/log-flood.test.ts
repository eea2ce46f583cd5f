/**
 * Lines a hostile client can make the gateway write are bounded: of each kind (a 1008 close for
 * a flood, a rate limit tripped), the first 10 of every 10 s are written, and the rest are
 * counted and reported in one summary line when the 10 s are over. Many connections tripping
 * the same limit at once write a dozen lines, not one each.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { browser, start, stopAll, type Peer } from './helpers.js';

afterEach(stopAll);

/** The documented bound (docs/security.md, "Log volume"). */
const LINES = 10;
const INTERVAL_MS = 10_000;
const CONNECTIONS = 40;

interface Line {
  level: number;
  msg: string;
  event?: string;
  line?: string;
  suppressed?: number;
  audit?: boolean;
  conn?: string;
}

function capture(): { log: pino.Logger; lines: Line[] } {
  const lines: Line[] = [];
  const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l) as Line) });
  return { log, lines };
}

async function openAll(url: string): Promise<Peer[]> {
  const peers = Array.from({ length: CONNECTIONS }, () => browser(url));
  await Promise.all(peers.map((p) => p.opened));
  return peers;
}

describe('log lines a hostile client can cause', () => {
  it('a burst of 1008 closes for malformed floods writes 10 lines, then one summary with the count left out', async () => {
    const { log, lines } = capture();
    const { server, clock } = await start({ GATEWAY_MALFORMED_LIMIT: '1' }, { log });
    const text = 'closing a connection that keeps sending malformed messages (1008)';
    const peers = await openAll(server.url);
    for (const p of peers) {
      p.send('[');
      p.send('[');
    }
    const closes = await Promise.all(peers.map((p) => p.closed));
    expect(closes.every((c) => c.code === 1008 && c.reason === 'Too many malformed messages')).toBe(true);
    expect(lines.filter((l) => l.msg === text)).toHaveLength(LINES);
    // Each written line still names its connection.
    expect(new Set(lines.filter((l) => l.msg === text).map((l) => l.conn)).size).toBe(LINES);
    expect(lines.filter((l) => l.event === 'log lines suppressed')).toEqual([]);

    clock.advance(INTERVAL_MS);
    expect(lines.filter((l) => l.event === 'log lines suppressed')).toEqual([
      expect.objectContaining({ level: 40, line: text, suppressed: CONNECTIONS - LINES }),
    ]);

    // A new interval: the next close is written again.
    const late = browser(server.url);
    await late.opened;
    late.send('[');
    late.send('[');
    expect((await late.closed).code).toBe(1008);
    expect(lines.filter((l) => l.msg === text)).toHaveLength(LINES + 1);
  });

  it('a burst of rate limits tripped writes 10 audit lines, then one audit summary with the count left out', async () => {
    const { log, lines } = capture();
    const { server, clock } = await start({ GATEWAY_RATE_LIMIT: '1' }, { log });
    const peers = await openAll(server.url);
    for (const p of peers) {
      p.post('unsubscribe_session', { session_id: 'x' });
      p.post('unsubscribe_session', { session_id: 'x' });
    }
    await Promise.all(peers.map((p) => p.count(2)));
    const refused = peers.flatMap((p) => p.messages).filter((m) => m.body.code === 1002);
    expect(refused).toHaveLength(CONNECTIONS);
    const tripped = () => lines.filter((l) => l.msg === 'rate limit tripped');
    expect(tripped()).toHaveLength(LINES);
    expect(tripped().every((l) => l.audit === true)).toBe(true);

    clock.advance(INTERVAL_MS);
    expect(lines.filter((l) => l.event === 'log lines suppressed')).toEqual([
      expect.objectContaining({ audit: true, line: 'rate limit tripped', suppressed: CONNECTIONS - LINES }),
    ]);
  });
});
