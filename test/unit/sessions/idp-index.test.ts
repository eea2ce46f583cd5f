/**
 * A session's entries in the identity provider's indexes (by the IdP's `sid` and by its `sub`,
 * read by back-channel logout) leave with the session, however it ends: destroy, regenerate
 * (the old id), revoke, a back-channel logout by the other claim, idle end. Left behind, they
 * would stay until the session's absolute end, one stale member per login. On the memory store
 * and on Redis, where the indexes live in the store.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock.js';
import { hashSecret } from '../../../src/crypto.js';
import { idpSidIndexKey, idpSubIndexKey } from '../../../src/sessions/records.js';
import { createMemoryStore } from '../../../src/store/memory.js';
import type { Store } from '../../../src/store/types.js';
import { hasRedisServer, RedisServer } from '../../helpers/redis-server.js';
import { freshNamespace, redisStore } from '../../store/redis-harness.js';
import { makeGateway, type TestGateway } from '../harness.js';

const server = hasRedisServer() ? await RedisServer.start() : undefined;
afterAll(async () => server?.stop());

const SID = 'idp-sid-4Kq';
const SUB = 'idp-sub-9Tz';
const sidIndex = idpSidIndexKey(hashSecret(SID));
const subIndex = idpSubIndexKey(hashSecret(SUB));

type Open = (clock: ManualClock) => Promise<Store>;

function suite(name: string, open: Open | undefined): void {
  describe.skipIf(open === undefined)(`identity provider indexes (${name})`, () => {
    const make = async (idleTimeout = 0): Promise<TestGateway> => {
      const clock = new ManualClock(Date.now());
      const store = await open!(clock);
      return makeGateway({ clock, store, sessionIdleTimeout: idleTimeout });
    };
    const members = async ({ store, clock }: TestGateway) => ({
      sid: (await store.indexMembers(sidIndex, clock.now())).sort(),
      sub: (await store.indexMembers(subIndex, clock.now())).sort(),
    });
    const login = (t: TestGateway, user = 'erin') => t.gateway.sessions.create(user, undefined, 3600, { sid: SID, sub: SUB });

    it('destroy removes the session from both indexes', async () => {
      const t = await make();
      try {
        const a = await login(t);
        const b = await login(t);
        expect(await members(t)).toEqual({ sid: [a.hash, b.hash].sort(), sub: [a.hash, b.hash].sort() });
        expect(await t.gateway.sessions.destroy(a.sessionId)).toBe(true);
        expect(await members(t)).toEqual({ sid: [b.hash], sub: [b.hash] });
      } finally {
        await t.store.close();
      }
    });

    it('regenerate moves the entries to the new id: the old one leaves both indexes', async () => {
      const t = await make();
      try {
        const a = await login(t);
        const r = await t.gateway.sessions.regenerate(a.sessionId);
        if (!('hash' in r)) throw new Error(`regeneration failed: ${r.error}`);
        expect(await members(t)).toEqual({ sid: [r.hash], sub: [r.hash] });
      } finally {
        await t.store.close();
      }
    });

    it('revoke_user_sessions removes every ended session from both indexes', async () => {
      const t = await make();
      try {
        await login(t);
        await login(t);
        const kept = await login(t);
        expect(await t.gateway.sessions.revokeUser('erin', kept.sessionId)).toBe(2);
        expect(await members(t)).toEqual({ sid: [kept.hash], sub: [kept.hash] });
      } finally {
        await t.store.close();
      }
    });

    it('a back-channel logout by sid removes the sessions from the subject index too', async () => {
      const t = await make();
      try {
        await login(t);
        await login(t);
        expect(await t.gateway.sessions.endByIdp({ sid: SID })).toBe(2);
        expect(await members(t)).toEqual({ sid: [], sub: [] });
      } finally {
        await t.store.close();
      }
    });
  });
}

suite('memory', async (clock) => createMemoryStore(clock));
suite('redis', server === undefined ? undefined : async () => redisStore(server.url, freshNamespace()));

describe('identity provider indexes (memory, time)', () => {
  it('an idle end found by the expiry check removes the session from both indexes, before its absolute end', async () => {
    const clock = new ManualClock(Date.now());
    const t = makeGateway({ clock, store: createMemoryStore(clock), sessionIdleTimeout: 60 });
    const a = await t.gateway.sessions.create('erin', undefined, 3600, { sid: SID, sub: SUB });
    clock.advance(61_000);
    expect(await t.gateway.sessions.checkExpiry(a.hash)).toEqual({ ended: 'idle' });
    expect(await t.store.indexMembers(sidIndex, clock.now())).toEqual([]);
    expect(await t.store.indexMembers(subIndex, clock.now())).toEqual([]);
  });
});
