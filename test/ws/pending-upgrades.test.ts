/**
 * Upgrades whose session cookie is being checked against the store count against
 * GATEWAY_MAX_CONNECTIONS_PER_ADDRESS, as open connections do: while the store is slow, one
 * address cannot hold any number of half-done upgrades (a socket, a request and a store read
 * each). Past the cap, 429 with Retry-After at once, before the store is asked.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { waitForCount } from '../helpers/wait-for.js';
import { browser, createSession, startWithStoreDouble, stopAll } from './helpers.js';

afterEach(stopAll);

const CAP = 3;
const TRIES = 10;

describe('upgrades waiting for their cookie check', () => {
  it('count against the per-address cap: past it, 429 at once, and the store is asked no more than the cap', async () => {
    const { server, store } = await startWithStoreDouble({ GATEWAY_MAX_CONNECTIONS_PER_ADDRESS: String(CAP) });
    const sid = await createSession(server.url);
    // The store answers no read of the session until told: every cookie check waits.
    const hold = store.hold('get', { match: (args) => String(args[0]).startsWith('s:') });
    const peers = Array.from({ length: TRIES }, () => browser(server.url, { cookie: `sid=${sid}` }));
    const outcomes: string[] = [];
    for (const p of peers)
      p.opened.then(
        () => outcomes.push('open'),
        (err: Error) => outcomes.push(err.message),
      );
    // Refused while the others still wait for the store.
    await waitForCount(() => outcomes.filter((o) => o === 'HTTP 429').length, TRIES - CAP, 5000, '429 answers');
    expect(hold.entered).toBe(CAP);
    expect(outcomes).toEqual(Array.from({ length: TRIES - CAP }, () => 'HTTP 429'));
    hold.release();
    await waitForCount(() => outcomes.length, TRIES, 5000, 'upgrade outcomes');
    expect(outcomes.filter((o) => o === 'open')).toHaveLength(CAP);
    // The checks that ended left the count: the address has its cap of open connections, no more.
    await expect(browser(server.url, { cookie: `sid=${sid}` }).opened).rejects.toThrow('HTTP 429');
    await peers.find((p) => p.ws.readyState === 1)!.terminate();
    await waitForCount(() => (server.gateway.hub.subscribers(server.gateway.sessions.hashOf(sid)) < CAP ? 1 : 0), 1, 5000, 'closed connection');
    await browser(server.url, { cookie: `sid=${sid}` }).opened;
  });
});
