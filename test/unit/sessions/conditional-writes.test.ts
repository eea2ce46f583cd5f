/**
 * Writes to a live session (activity, extend_session, update_session) are compare-and-swaps
 * refused once the record's end has passed: an acknowledged change is never overwritten by a
 * stale copy, and a session answered ended is never found live again.
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock.js';
import { GatewayError } from '../../../src/errors.js';
import { sessionKey, type SessionRecord } from '../../../src/sessions/records.js';
import { INVALID } from '../../../src/sessions/session-service.js';
import { createMemoryStore } from '../../../src/store/memory.js';
import type { Store } from '../../../src/store/types.js';
import { failingStore, type FailingStore, type Hold } from '../../helpers/failing-store.js';
import { storeWith } from '../../helpers/store-with.js';
import { makeGateway, settle } from '../harness.js';

const T0 = Date.UTC(2026, 0, 1);

/** Holds the next session write (a swap or a compare-and-swap), once. */
function holdWrite(store: FailingStore, afterInner = false): { reached: Promise<void>; release(): void } {
  const match = (args: readonly unknown[]) => String(args[0]).startsWith('s:');
  const holds: Hold[] = [store.hold('swap', { once: true, afterInner, match }), store.hold('swapIf', { once: true, afterInner, match })];
  return { reached: Promise.race(holds.map((h) => h.reached)), release: () => holds.forEach((h) => h.release()) };
}

describe('session writes are compare-and-swaps', () => {
  it('an acknowledged update is not lost when a racing update writes a stale copy and a regeneration takes it', async () => {
    const clock = new ManualClock(T0);
    const store = failingStore(createMemoryStore(clock), false);
    const { gateway } = makeGateway({ clock, store });
    const s = await gateway.sessions.create('alice', { n: 0 }, 600);
    // The first update reads the record; its answer waits.
    const read = store.hold('get', { once: true, afterInner: true });
    const first = gateway.sessions.update(s.hash, { by: 'first' });
    await read.reached;
    // A second update reads, writes and is answered meanwhile.
    expect(await gateway.sessions.update(s.hash, { by: 'second' })).toMatchObject({ valid: true });
    // The first one's write is made from the copy it read, and its answer waits; a
    // regeneration moves the session to a new id then.
    const write = holdWrite(store, true);
    read.release();
    await write.reached;
    const regenerated = await gateway.sessions.regenerate(s.sessionId);
    write.release();
    const firstAnswer = await first;
    if (!('sessionId' in regenerated)) throw new Error('regeneration failed');
    const moved = await store.get<SessionRecord>(sessionKey(regenerated.hash));
    // The second update was answered session_updated: the new id carries its data; the first
    // one's write over the stale copy never happened, and it is told the session is gone.
    expect(moved?.d).toEqual({ by: 'second' });
    expect(firstAnswer).toEqual(INVALID);
  });

  it('an extend_session whose index write fails moves nothing: no session outlives what revoke_user_sessions finds', async () => {
    const clock = new ManualClock(T0);
    const store = failingStore(createMemoryStore(clock), false);
    const { gateway } = makeGateway({ clock, store });
    const s = await gateway.sessions.create('alice', undefined, 60);
    store.fail('indexAdd', undefined, 1);
    const err = await gateway.sessions.extend(s.hash, 600).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).wireCode).toBe(11);
    // Past the end it had: answered error 11, the extend must not have moved it unindexed.
    clock.advance(61_000);
    expect(await gateway.sessions.revokeUser('alice')).toBe(0);
    expect(await gateway.sessions.validate(s.sessionId)).toEqual(INVALID);
  });

  it('extend_session racing on one session: the user index keeps the later end, whatever order the writes land in', async () => {
    const clock = new ManualClock(T0);
    const store = failingStore(createMemoryStore(clock), false);
    const { gateway } = makeGateway({ clock, store });
    const s = await gateway.sessions.create('alice', undefined, 60);
    // The shorter extend's first index write waits until the longer extend has been answered.
    const held = store.hold('indexAdd', { once: true, match: (args) => args[0] === 'u:alice' });
    const shorter = gateway.sessions.extend(s.hash, 600);
    await held.reached;
    expect(await gateway.sessions.extend(s.hash, 3600)).toMatchObject({ valid: true, expiresIn: 3600 });
    held.release();
    expect(await shorter).toMatchObject({ valid: true });
    clock.advance(601_000);
    expect((await gateway.sessions.list('alice')).map((l) => l.handle)).toEqual([s.hash]);
    expect(await gateway.sessions.revokeUser('alice')).toBe(1);
    expect(await gateway.sessions.validate(s.sessionId)).toEqual(INVALID);
  });

  it('an update and an extend racing each other both stay (the write made from a stale copy is made again)', async () => {
    const clock = new ManualClock(T0);
    const store = failingStore(createMemoryStore(clock), false);
    const { gateway } = makeGateway({ clock, store });
    const s = await gateway.sessions.create('alice', { n: 0 }, 600);
    const read = store.hold('get', { once: true, afterInner: true });
    const extending = gateway.sessions.extend(s.hash, 3600);
    await read.reached;
    expect(await gateway.sessions.update(s.hash, { n: 1 })).toMatchObject({ valid: true });
    read.release();
    expect(await extending).toMatchObject({ valid: true, end: T0 + 3_600_000 });
    expect(await store.get(sessionKey(s.hash))).toMatchObject({ e: T0 + 3_600_000, d: { n: 1 } });
  });

  it('with an idle timeout, activity read before the idle end and written after it does not revive a session answered ended', async () => {
    const clock = new ManualClock(T0);
    const store = failingStore(createMemoryStore(clock), false);
    const { gateway } = makeGateway({ clock, store, sessionIdleTimeout: 100 });
    const s = await gateway.sessions.create('alice', undefined, 3600);
    clock.advance(99_999);
    // A validate reads the record 1 ms before its idle end; its write of activity waits.
    const write = holdWrite(store);
    const validating = gateway.sessions.validate(s.sessionId);
    await write.reached;
    clock.advance(1);
    // The idle end has come: another request is answered session_invalid.
    expect(await gateway.sessions.validate(s.sessionId)).toEqual(INVALID);
    write.release();
    expect(await validating).toEqual(INVALID);
    // Sent after that answer: still ended.
    clock.advance(1);
    expect(await gateway.sessions.validate(s.sessionId)).toEqual(INVALID);
    expect(await gateway.sessions.peek(s.hash)).toEqual(INVALID);
  });

  it('activity read before the idle end is written over a later activity, not judged ended by the clock', async () => {
    const clock = new ManualClock(T0);
    const store = failingStore(createMemoryStore(clock), false);
    const { gateway } = makeGateway({ clock, store, sessionIdleTimeout: 100 });
    const s = await gateway.sessions.create('alice', undefined, 3600);
    clock.advance(99_998);
    // A validate reads the record 2 ms before its idle end; its answer waits.
    const read = store.hold('get', { once: true, afterInner: true });
    const slow = gateway.sessions.validate(s.sessionId);
    await read.reached;
    // Another validate lands before the end and moves it; then the old end passes.
    expect(await gateway.sessions.validate(s.sessionId)).toMatchObject({ valid: true, end: T0 + 199_998 });
    clock.advance(2);
    read.release();
    // Alive (moved by the other activity): so it answers, and so does every later request.
    expect(await slow).toMatchObject({ valid: true, end: T0 + 200_000 });
    expect(await gateway.sessions.peek(s.hash)).toMatchObject({ valid: true });
  });

  it('extend_session read before the ttl end and written after it does not revive the session', async () => {
    const clock = new ManualClock(T0);
    const store = failingStore(createMemoryStore(clock), false);
    const { gateway } = makeGateway({ clock, store });
    const s = await gateway.sessions.create('alice', undefined, 60);
    clock.advance(59_999);
    const write = holdWrite(store);
    const extending = gateway.sessions.extend(s.hash, 3600);
    await write.reached;
    clock.advance(1);
    expect(await gateway.sessions.peek(s.hash)).toEqual(INVALID);
    write.release();
    expect(await extending).toEqual(INVALID);
    expect(await gateway.sessions.peek(s.hash)).toEqual(INVALID);
  });

  it('a remote read asked before the idle end and answered after it is read again: activity that landed in between counts', async () => {
    const clock = new ManualClock(T0);
    const { gateway: other, store } = makeGateway({ clock, sessionIdleTimeout: 100 });
    const s = await other.sessions.create('alice', undefined, 3600);
    clock.advance(99_999);
    let reads = 0;
    // A store behind a network: the read's answer (the copy before the activity) arrives after
    // the activity landed and after the old idle end.
    const remote = storeWith(store, {
      read: ((_own: Store['read'], key: string) => {
        const copy = store.get(key);
        return (async () => {
          const answer = await copy;
          if (reads++ === 0) {
            expect((await other.sessions.validate(s.sessionId)).valid).toBe(true);
            clock.advance(1);
          }
          return answer;
        })();
      }) as never,
    });
    const { gateway } = makeGateway({ clock, store: remote, sessionIdleTimeout: 100 });
    expect(await gateway.sessions.peek(s.hash)).toMatchObject({ valid: true, end: T0 + 199_999 });
    expect(reads).toBe(1);
    await settle();
  });
});
