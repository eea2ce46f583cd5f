import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock.js';
import { hashSecret } from '../../../src/crypto.js';
import { createMemoryStore } from '../../../src/store/memory.js';
import { GatewayError } from '../../../src/errors.js';
import { failingStore } from '../../helpers/failing-store.js';
import { storeWith } from '../../helpers/store-with.js';
import type { Store } from '../../../src/store/types.js';
import { MAX_FAMILIES_PER_SESSION } from '../../../src/tokens/token-service.js';
import { Driver, makeGateway, settle } from '../harness.js';

const T0 = Date.UTC(2026, 0, 1);

describe('a revoked family stays revoked (memory store, one node)', () => {
  for (const how of ['reuse of R0', 'revoke_token R1'] as const) {
    it(`revoked by ${how}: R1 presented four times at once is refused every time, 30 trials`, async () => {
      const { gateway } = makeGateway({ start: T0 });
      const tokens = gateway.tokens;
      const succeeded: number[] = [];
      for (let trial = 0; trial < 30; trial++) {
        const r0 = await tokens.generate({ sub: `race-${trial}` });
        const r1 = await tokens.refresh(r0.refresh_token);
        if (!('refresh_token' in r1)) throw new Error(`refresh: ${JSON.stringify(r1)}`);
        const revoke = how === 'reuse of R0' ? tokens.refresh(r0.refresh_token) : tokens.revoke(r1.refresh_token);
        expect(await revoke).toEqual(how === 'reuse of R0' ? { error: 'Refresh token already used: its token family is revoked' } : { revoked: true });
        const replies = await Promise.all([1, 2, 3, 4].map(() => tokens.refresh(r1.refresh_token)));
        if (replies.some((r) => 'access_token' in r)) succeeded.push(trial);
        expect(await tokens.verify(r1.access_token)).toEqual({ valid: false, error: 'Token revoked' });
      }
      expect(succeeded, `trials in which a revoked family answered a new pair: ${succeeded.length} of 30`).toEqual([]);
    });
  }
});

describe('two presentations of one refresh token at once (two tabs, two nodes)', () => {
  it('the reuse revokes the family before the winner reads it: the winner still gets token_refreshed, and its pair is dead', async () => {
    const clock = new ManualClock(T0);
    const memory = createMemoryStore(clock);
    const store = failingStore(memory, false);
    const { gateway } = makeGateway({ clock, store });
    const pair = await gateway.tokens.generate({ sub: 'tabs' });
    // The first presentation wins the swap and is held there; the second is a reuse that
    // revokes the family and deletes its records before the winner goes on.
    const gate = store.hold('swap', { afterInner: true, once: true });
    const winning = gateway.tokens.refresh(pair.refresh_token);
    await gate.reached;
    expect(await gateway.tokens.refresh(pair.refresh_token)).toEqual({ error: 'Refresh token already used: its token family is revoked' });
    gate.release();
    const won = await winning;
    expect(won).toHaveProperty('access_token');
    const issued = won as { access_token: string; refresh_token: string };
    expect(await gateway.tokens.verify(issued.access_token)).toEqual({ valid: false, error: 'Token revoked' });
    expect(await gateway.tokens.refresh(issued.refresh_token)).toEqual({ error: 'Refresh token revoked' });
    expect(await gateway.tokens.verify(pair.access_token)).toEqual({ valid: false, error: 'Token revoked' });
    // Nothing of the family is left once its access tokens have expired.
    clock.advance(931_000 + 6_000);
    await settle();
    expect(memory.size()).toBe(0);
  });

  it('a family revoked otherwise meanwhile still refuses the winner', async () => {
    const clock = new ManualClock(T0);
    const store = failingStore(createMemoryStore(clock), false);
    const { gateway } = makeGateway({ clock, store });
    const pair = await gateway.tokens.generate({ sub: 'tabs' });
    const gate = store.hold('swap', { afterInner: true, once: true });
    const winning = gateway.tokens.refresh(pair.refresh_token);
    await gate.reached;
    expect(await gateway.tokens.revoke(pair.refresh_token)).toEqual({ revoked: true });
    gate.release();
    expect(await winning).toEqual({ error: 'Refresh token revoked' });
  });
});

describe('token families of one session (exchange_session)', () => {
  async function sessionWithExchanges(n: number) {
    const t = makeGateway({ start: T0 });
    const d = new Driver(t.gateway);
    const sid = (await d.call({ type: 'create_session', user_id: 'alice' })).session_id as string;
    const pairs: Record<string, unknown>[] = [];
    for (let i = 0; i < n; i++) {
      const g = await d.call({ type: 'exchange_session', session_id: sid });
      expect(g.type).toBe('token_generated');
      pairs.push(g);
      t.clock.advance(1);
    }
    return { ...t, d, sid, pairs };
  }

  /** A session of `user` (ttl 60 s) on a store whose operations a test can hold, and its driver. */
  async function sessionOnHeldStore(user: string) {
    const clock = new ManualClock(T0);
    const store = failingStore(createMemoryStore(clock), false);
    const { gateway } = makeGateway({ clock, store });
    const d = new Driver(gateway);
    const sid = (await d.call({ type: 'create_session', user_id: user, ttl: 60 })).session_id as string;
    return { clock, store, gateway, d, sid };
  }

  it('an extend_session landing while an exchange writes its binding: the tokens live until the new end', async () => {
    const { clock, store, gateway, d, sid } = await sessionOnHeldStore('frank');
    // The exchange has read the session (end: 60 s) and its write of the binding is held while
    // an extend from another connection (another node) moves the end to 3600 s.
    const gate = store.hold('indexAdd', { once: true, match: (args) => String(args[0]).startsWith('be:') });
    const exchange = d.send({ type: 'exchange_session', session_id: sid });
    await gate.reached;
    expect(await new Driver(gateway).call({ type: 'extend_session', session_id: sid, ttl: 3600 })).toMatchObject({
      type: 'session_extended',
      expires_in: 3600,
    });
    gate.release();
    await settle(10);
    const pair = d.reply(exchange);
    expect(pair.type).toBe('token_generated');
    clock.advance(120_000);
    expect(await d.call({ type: 'validate_session', session_id: sid })).toMatchObject({ type: 'session_valid' });
    expect(await gateway.tokens.verify(pair.access_token as string)).toMatchObject({ valid: true });
    expect(await gateway.tokens.refresh(pair.refresh_token as string)).toHaveProperty('access_token');
  });

  it('an exchange that read the end before an extend and then fails: the tokens of an earlier exchange live until the extended end', async () => {
    const { clock, store, gateway, d, sid } = await sessionOnHeldStore('emma');
    const earlier = await d.call({ type: 'exchange_session', session_id: sid });
    expect(earlier.type).toBe('token_generated');
    // A second exchange has read the session (end: 60 s); its first write of the binding is
    // held while an extend from another connection (another node) moves the end to 3600 s,
    // and every later write of the binding fails (the store went away, or the node died).
    const marker = (args: readonly unknown[]) => /^be?:/.test(String(args[0]));
    const first = store.hold('set', { once: true, match: marker });
    const second = store.hold('indexAdd', { once: true, match: marker });
    const exchange = d.send({ type: 'exchange_session', session_id: sid });
    await Promise.race([first.reached, second.reached]);
    expect(await new Driver(gateway).call({ type: 'extend_session', session_id: sid, ttl: 3600 })).toMatchObject({
      type: 'session_extended',
      expires_in: 3600,
    });
    await settle(10);
    for (const op of ['swap', 'set', 'indexAdd'] as const) store.fail(op);
    first.release();
    second.release();
    await settle(10);
    expect(d.reply(exchange)).toMatchObject({ type: 'error', code: 11 });
    store.restore();
    // Past the end the exchange read, before the one the extend was answered with.
    clock.advance(120_000);
    expect(await d.call({ type: 'validate_session', session_id: sid })).toMatchObject({ type: 'session_valid' });
    expect(await gateway.tokens.verify(earlier.access_token as string)).toMatchObject({ valid: true });
    expect(await gateway.tokens.refresh(earlier.refresh_token as string)).toHaveProperty('access_token');
  });

  it("two extend_session racing: the first one's write of the binding lands last, and the tokens still live until the later end", async () => {
    const { clock, store, gateway, d, sid } = await sessionOnHeldStore('gina');
    const pair = await d.call({ type: 'exchange_session', session_id: sid });
    // The first extend's write of the binding (made before its record) is held until the
    // second extend is answered: it lands last, with the earlier end.
    const gate = store.hold('indexAdd', { once: true, match: (args) => String(args[0]).startsWith('be:') });
    const first = d.send({ type: 'extend_session', session_id: sid, ttl: 120 });
    await gate.reached;
    expect(await new Driver(gateway).call({ type: 'extend_session', session_id: sid, ttl: 3600 })).toMatchObject({
      type: 'session_extended',
      expires_in: 3600,
    });
    gate.release();
    await settle(10);
    expect(d.reply(first)).toMatchObject({ type: 'session_extended' });
    clock.advance(300_000);
    expect(await d.call({ type: 'validate_session', session_id: sid })).toMatchObject({ type: 'session_valid' });
    expect(await gateway.tokens.verify(pair.access_token as string)).toMatchObject({ valid: true });
  });

  it('an extend_session whose move of the binding fails: the tokens live until the end the session was answered to have', async () => {
    const clock = new ManualClock(T0);
    let failing = 0;
    const store = storeWith(createMemoryStore(clock), {
      indexAdd: (own, ...args: Parameters<Store['indexAdd']>) =>
        args[0].startsWith('be:') && failing-- > 0 ? Promise.reject(GatewayError.unavailable(new Error('refused'))) : own(...args),
    });
    const { gateway } = makeGateway({ clock, store });
    const d = new Driver(gateway);
    const sid = (await d.call({ type: 'create_session', user_id: 'hana', ttl: 60 })).session_id as string;
    const pair = await d.call({ type: 'exchange_session', session_id: sid });
    expect(pair.type).toBe('token_generated');
    // The marker's move fails: the extend is answered error 11, and its retry moves both.
    failing = 1;
    expect(await d.call({ type: 'extend_session', session_id: sid, ttl: 3600 })).toMatchObject({ type: 'error', code: 11 });
    expect(failing).toBe(0);
    expect(await d.call({ type: 'extend_session', session_id: sid, ttl: 3600 })).toMatchObject({ type: 'session_extended', expires_in: 3600 });
    await settle(10);
    clock.advance(120_000);
    expect(await d.call({ type: 'validate_session', session_id: sid })).toMatchObject({ type: 'session_valid' });
    expect(await gateway.tokens.verify(pair.access_token as string)).toMatchObject({ valid: true });
    expect(await gateway.tokens.refresh(pair.refresh_token as string)).toHaveProperty('access_token');
  });

  it(`at most ${MAX_FAMILIES_PER_SESSION} live families: each exchange past that revokes the oldest, access tokens included`, async () => {
    const extra = 9;
    const { gateway, pairs } = await sessionWithExchanges(MAX_FAMILIES_PER_SESSION + extra);
    const old = pairs.slice(0, extra);
    const kept = pairs.slice(extra);
    for (const p of old) {
      expect(await gateway.tokens.verify(p.access_token as string)).toEqual({ valid: false, error: 'Token revoked' });
      expect(await gateway.tokens.refresh(p.refresh_token as string)).toEqual({ error: 'Refresh token revoked' });
    }
    for (const p of kept) expect((await gateway.tokens.verify(p.access_token as string)).valid).toBe(true);
    // Each of the kept ones still rotates (in order: the cap counts families, not tokens).
    for (const p of kept) expect(await gateway.tokens.refresh(p.refresh_token as string)).toHaveProperty('access_token');
  });

  it('the store holds a bounded amount per session whatever the number of exchanges, and nothing once the session ended and its access tokens expired', async () => {
    const { gateway, clock, store, d, sid } = await sessionWithExchanges(200);
    // Past the access tokens' life (900 s + 30 s tolerance) and one sweep of the memory store.
    clock.advance(931_000 + 6_000);
    await settle();
    // The session, its user index, its binding marker and family index, the user's index of
    // families, and per kept family: its record, its refresh token and its index of refresh tokens.
    const perSession = 5 + 3 * MAX_FAMILIES_PER_SESSION;
    expect(store.size()).toBeLessThanOrEqual(perSession);
    expect(await d.call({ type: 'destroy_session', session_id: sid })).toMatchObject({ type: 'session_destroyed' });
    await settle();
    clock.advance(931_000 + 6_000);
    await settle();
    expect(store.size()).toBe(0);
    await gateway.close();
  });
});

describe('exchanges of one session racing its cap', () => {
  it(`40 at once, 20 trials: every family answered and then revoked has its access token refused too, and ${MAX_FAMILIES_PER_SESSION} stay live`, async () => {
    const { gateway, clock } = makeGateway({ start: T0 });
    const d = new Driver(gateway);
    for (let trial = 0; trial < 20; trial++) {
      const sid = (await d.call({ type: 'create_session', user_id: `cap-${trial}` })).session_id as string;
      const v = await gateway.sessions.validate(sid);
      if (!v.valid) throw new Error('session not valid');
      const claim = await gateway.tokens.bind(v.hash, v.record.e);
      // Begun 1 ms apart, all in flight together.
      const answers = await Promise.allSettled(
        Array.from({ length: 40 }, () => {
          clock.advance(1);
          return gateway.tokens.generate({ sub: `cap-${trial}` }, claim);
        }),
      );
      const pairs = answers.flatMap((a) => (a.status === 'fulfilled' ? [a.value] : []));
      // An exchange that gave up says so (1002), it never answers dead tokens.
      for (const a of answers) if (a.status === 'rejected') expect(a.reason).toMatchObject({ code: 'RATE_LIMITED' });
      const live = await Promise.all(pairs.map(async (p) => (await gateway.tokens.verify(p.access_token)).valid));
      const refreshable = await Promise.all(pairs.map(async (p) => (await gateway.tokens.inspectRefresh(p.refresh_token)) !== undefined));
      expect(live, `trial ${trial}: access token valid <=> refresh token live`).toEqual(refreshable);
      expect(live.filter(Boolean), `trial ${trial}`).toHaveLength(MAX_FAMILIES_PER_SESSION);
      // The session's index lists exactly its live families.
      expect(await gateway.store.indexMembers(`bf:${claim}`, clock.now()), `trial ${trial}`).toHaveLength(MAX_FAMILIES_PER_SESSION);
    }
  });

  it('a session that ends while its exchange issues: session_invalid, and nothing of the family it began works', async () => {
    const { gateway } = makeGateway({ start: T0 });
    const d = new Driver(gateway);
    const sid = (await d.call({ type: 'create_session', user_id: 'ending' })).session_id as string;
    const exchange = d.send({ type: 'exchange_session', session_id: sid });
    // The destroy lands while the exchange is under way (both in flight at once).
    expect(await d.call({ type: 'destroy_session', session_id: sid }, 'c2')).toMatchObject({ type: 'session_destroyed' });
    await settle(10);
    const reply = d.reply(exchange);
    const answered = reply.type === 'token_generated' ? 'tokens' : 'session_invalid';
    expect(['tokens', 'session_invalid']).toContain(answered);
    // Either way, nothing of the session works now.
    const works = reply.type === 'token_generated' ? (await gateway.tokens.verify(reply.access_token as string)).valid : false;
    expect(works).toBe(false);
  });

  for (const end of ['destroy_session', 'regenerate_session'] as const) {
    it(`a ${end} between the exchange's look at the session and its family's listing under it: session_invalid, never (dead) tokens`, async () => {
      const clock = new ManualClock(T0);
      const store = failingStore(createMemoryStore(clock), false);
      const { gateway } = makeGateway({ clock, store });
      const d = new Driver(gateway);
      // Another connection: on one connection, requests naming one session are served in order.
      const other = new Driver(gateway);
      const sid = (await d.call({ type: 'create_session', user_id: 'ending' })).session_id as string;
      // The exchange found the session live; its binding marker is on the way to the store.
      const gate = store.hold('indexAdd', { once: true, match: (args) => String(args[0]).startsWith('be:') });
      const exchange = d.send({ type: 'exchange_session', session_id: sid });
      await gate.reached;
      const ending = end === 'destroy_session' ? { type: end, session_id: sid } : { type: end, old_session_id: sid };
      expect((await other.call(ending)).type).toBe(end === 'destroy_session' ? 'session_destroyed' : 'session_regenerated');
      gate.release();
      await settle(10);
      // docs/protocol.md: "a session that ends meanwhile answers session_invalid".
      expect(d.reply(exchange)).toMatchObject({ type: 'session_invalid' });
      // And nothing of a family begun for it is left live under the session's binding.
      const claim = gateway.tokens.bindingFor(gateway.sessions.hashOf(sid));
      const listed = await store.indexMembers(`bf:${claim}`, clock.now());
      const live = await Promise.all(listed.map(async (f) => (await store.get(`rf:${f}`)) !== undefined));
      expect(live.filter(Boolean)).toEqual([]);
    });
  }
});
describe('a rotation the store fails half-way (error 11) leaves the token usable', () => {
  // Each operation the rotation makes after spending the token, failed once in turn: the
  // refresh is answered UNAVAILABLE, and the client's retry of the same token rotates (no
  // reuse, no revocation).
  for (const op of ['indexMembers', 'get', 'set', 'indexAdd'] as const) {
    it(`${op} failing after the spend: the retry rotates and the family lives`, async () => {
      const clock = new ManualClock(T0);
      const store = failingStore(createMemoryStore(clock), false);
      const { gateway } = makeGateway({ clock, store });
      const pair = await gateway.tokens.generate({ sub: 'dana' });
      const gate = store.hold('swap', { afterInner: true, once: true });
      const refreshing = gateway.tokens.refresh(pair.refresh_token).then(
        () => 'answered',
        (e: unknown) => (e instanceof GatewayError ? e.wireCode : e),
      );
      await gate.reached;
      store.fail(op, undefined, 1);
      gate.release();
      expect(await refreshing).toBe(11);
      expect(store.failures).toBe(1);
      const retried = await gateway.tokens.refresh(pair.refresh_token);
      expect(retried).toHaveProperty('access_token');
      expect((await gateway.tokens.verify(pair.access_token)).valid).toBe(true);
      // Single use still holds: the token that was retried is now spent.
      expect(await gateway.tokens.refresh(pair.refresh_token)).toEqual({ error: 'Refresh token already used: its token family is revoked' });
    });
  }

  it('not put back over a family revoked meanwhile: the retry is refused, also once its causes expire', async () => {
    const clock = new ManualClock(T0);
    const store = failingStore(createMemoryStore(clock), false);
    const { gateway } = makeGateway({ clock, store });
    const pair = await gateway.tokens.generate({ sub: 'erin' });
    const gate = store.hold('swap', { afterInner: true, once: true });
    const refreshing = gateway.tokens.refresh(pair.refresh_token).catch((e: unknown) => e);
    await gate.reached;
    await gateway.revokeUserTokens('erin', Math.floor(T0 / 1000));
    store.fail('indexMembers', undefined, 1);
    gate.release();
    expect(await refreshing).toBeInstanceOf(GatewayError);
    expect(store.failures).toBe(1);
    expect(await gateway.tokens.refresh(pair.refresh_token)).toEqual({ error: 'Refresh token revoked' });
    clock.advance((900 + 30 + 1) * 1000);
    expect(await gateway.tokens.refresh(pair.refresh_token)).toEqual({ error: 'Invalid refresh token' });
  });
});

describe('a spend that times out (error 11) and that the store carries out after all', () => {
  /**
   * A token issued on one node (`issuer`), refreshed on another whose store spends it but
   * answers after the time limit: the refresh is rejected (error 11) and the late answer
   * is handed to `late` when `land` is called.
   */
  async function lateSpend(sub: string) {
    const clock = new ManualClock(T0);
    const memory = createMemoryStore(clock);
    const { gateway: issuer } = makeGateway({ clock, store: memory });
    const pair = await issuer.tokens.generate({ sub });
    let doLate: (() => Promise<void>) | undefined;
    const slow = storeWith(memory, {
      swap: (swap: Store['swap'], key: string, value: unknown, expiresAt?: number, late?: (old: unknown) => void) => {
        doLate = async () => late?.(await swap(key, value, expiresAt));
        return Promise.reject(GatewayError.unavailable(new Error('store operation timed out after 800 ms')));
      },
    });
    const { gateway } = makeGateway({ clock, store: slow });
    await expect(gateway.tokens.refresh(pair.refresh_token)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    const land = async () => {
      await doLate!();
      await settle();
    };
    return { issuer, pair, land };
  }

  it('puts the token back when the late answer comes: the retry rotates, the family lives', async () => {
    const { issuer, pair, land } = await lateSpend('fay');
    await land();
    const retried = await issuer.tokens.refresh(pair.refresh_token);
    expect(retried).toHaveProperty('access_token');
    expect((await issuer.tokens.verify(pair.access_token)).valid).toBe(true);
    // Single use still holds.
    expect(await issuer.tokens.refresh(pair.refresh_token)).toEqual({ error: 'Refresh token already used: its token family is revoked' });
  });

  it('puts nothing back when the late spend found the token already spent (a use elsewhere won it)', async () => {
    const { issuer, pair, land } = await lateSpend('gil');
    // Another node rotates the token before the late spend lands.
    const rotated = await issuer.tokens.refresh(pair.refresh_token);
    expect(rotated).toHaveProperty('refresh_token');
    await land();
    // The family goes on from the rotation that won; the token it spent stays spent.
    expect(await issuer.tokens.refresh((rotated as { refresh_token: string }).refresh_token)).toHaveProperty('access_token');
    expect(await issuer.tokens.refresh(pair.refresh_token)).toEqual({ error: 'Refresh token already used: its token family is revoked' });
  });
});

describe('inspect: what introspection says of a refresh token, without spending it', () => {
  const refreshKey = (token: string) => `rt:${hashSecret(token)}`;

  it('a family whose revocation has recorded its cause but not yet deleted its records is inactive', async () => {
    const clock = new ManualClock(T0);
    const store = failingStore(createMemoryStore(clock), false);
    const { gateway } = makeGateway({ clock, store });
    const pair = await gateway.tokens.generate({ sub: 'alice' });
    expect(await gateway.tokens.inspectRefresh(pair.refresh_token)).toEqual({ exp: T0 / 1000 + 1_209_600, sub: 'alice' });
    // The revocation stops at its first delete: the cause is in the store, the records are not gone.
    const gate = store.hold('delete');
    const revoking = gateway.tokens.revoke(pair.refresh_token);
    await gate.reached;
    expect(await store.get(refreshKey(pair.refresh_token))).toBeDefined();
    expect(await gateway.tokens.inspectRefresh(pair.refresh_token)).toBeUndefined();
    gate.release();
    expect(await revoking).toEqual({ revoked: true });
    expect(await gateway.tokens.inspectRefresh(pair.refresh_token)).toBeUndefined();
  });

  it("a family revoke_user_tokens could not reach (not in the user's index) is inactive by the user's mark", async () => {
    const { gateway, store } = makeGateway({ start: T0 });
    const pair = await gateway.tokens.generate({ sub: 'bob' });
    const fam = pair.refresh_token.split('.')[0]!;
    // As when the family was started on another node while the revocation read the index.
    await store.indexRemove('uf:bob', fam);
    await gateway.revokeUserTokens('bob', T0 / 1000);
    expect(await store.get(refreshKey(pair.refresh_token))).toBeDefined();
    expect(await gateway.tokens.inspectRefresh(pair.refresh_token)).toBeUndefined();
    // refresh_token agrees.
    expect(await gateway.tokens.refresh(pair.refresh_token)).toEqual({ error: 'Refresh token revoked' });
  });

  it("a bound token's exp is the earlier of its own and its session's end as of now: it follows an extend and the idle timeout", async () => {
    const { gateway, clock } = makeGateway({ start: T0, sessionIdleTimeout: 600, refreshTokenTtl: 86_400 });
    const d = new Driver(gateway);
    const sid = (await d.call({ type: 'create_session', user_id: 'dora', ttl: 3600 })).session_id as string;
    const pair = await d.call({ type: 'exchange_session', session_id: sid });
    const refresh = pair.refresh_token as string;
    // Idle timeout (600 s) before the session's ttl (3,600 s) and the token's lifetime (a day).
    expect(await gateway.tokens.inspectRefresh(refresh)).toEqual({ exp: T0 / 1000 + 600, sub: 'dora' });
    clock.advance(300_000);
    expect((await d.call({ type: 'validate_session', session_id: sid })).type).toBe('session_valid');
    expect(await gateway.tokens.inspectRefresh(refresh)).toEqual({ exp: T0 / 1000 + 900, sub: 'dora' });
    // Activity until the ttl is nearer than the idle timeout: the ttl decides.
    for (let i = 0; i < 10; i++) {
      clock.advance(300_000);
      expect((await d.call({ type: 'validate_session', session_id: sid })).type).toBe('session_valid');
    }
    expect(await gateway.tokens.inspectRefresh(refresh)).toEqual({ exp: T0 / 1000 + 3600, sub: 'dora' });
    // Extended: the ttl is no longer nearer than the idle timeout.
    expect((await d.call({ type: 'extend_session', session_id: sid, ttl: 172_800 })).type).toBe('session_extended');
    expect(await gateway.tokens.inspectRefresh(refresh)).toEqual({ exp: T0 / 1000 + 3300 + 600, sub: 'dora' });
    // Past its end, nothing: the token is refused.
    clock.advance(600_000);
    expect(await gateway.tokens.inspectRefresh(refresh)).toBeUndefined();
    expect(await gateway.tokens.refresh(refresh)).toEqual({ error: 'Session ended' });
  });

  it("a bound token whose session outlives it: the token's own lifetime; an unbound token's is its own", async () => {
    const { gateway } = makeGateway({ start: T0, refreshTokenTtl: 86_400 });
    const d = new Driver(gateway);
    const sid = (await d.call({ type: 'create_session', user_id: 'erin', ttl: 172_800 })).session_id as string;
    const pair = await d.call({ type: 'exchange_session', session_id: sid });
    expect(await gateway.tokens.inspectRefresh(pair.refresh_token as string)).toEqual({ exp: T0 / 1000 + 86_400, sub: 'erin' });
    const unbound = await gateway.tokens.generate({ sub: 'erin' });
    expect(await gateway.tokens.inspectRefresh(unbound.refresh_token)).toEqual({ exp: T0 / 1000 + 86_400, sub: 'erin' });
  });

  it('a record of an earlier version (no expiry kept): exp from the family; a record past its exp is inactive whatever the store keeps', async () => {
    const { gateway, store, clock } = makeGateway({ start: T0, accessTokenTtl: 60, refreshTokenTtl: 600 });
    const pair = await gateway.tokens.generate({ sub: 'carol' });
    const { e, ...legacy } = (await store.get<Record<string, unknown>>(refreshKey(pair.refresh_token)))!;
    expect(e).toBe(T0 / 1000 + 600);
    await store.set(refreshKey(pair.refresh_token), legacy, 600_000);
    expect(await gateway.tokens.inspectRefresh(pair.refresh_token)).toEqual({ exp: T0 / 1000 + 600, sub: 'carol' });
    clock.advance(599_000);
    expect(await gateway.tokens.inspectRefresh(pair.refresh_token)).toEqual({ exp: T0 / 1000 + 600, sub: 'carol' });
    // The expiry written in the record decides, not how long the store happens to keep it.
    await store.set(refreshKey(pair.refresh_token), { ...legacy, e: T0 / 1000 + 599 }, 600_000);
    expect(await gateway.tokens.inspectRefresh(pair.refresh_token)).toBeUndefined();
  });
});
