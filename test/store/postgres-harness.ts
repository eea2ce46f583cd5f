import { randomBytes } from 'node:crypto';
import { openPostgresStore, parsePostgresUrl } from '../../src/store/postgres.js';
import type { KeyvStore } from '../../src/store/keyv-store.js';
import type { StoreHarness } from './contract.js';

/** A schema name no other test uses. */
export function freshSchema(): string {
  return `t_${randomBytes(6).toString('hex')}`;
}

/** A PostgreSQL-backed store in its own schema (nothing shared with any other test). */
export async function postgresStore(url: string, schema: string, o: { timeoutMs?: number; connectWaitMs?: number; sweepMs?: number } = {}): Promise<KeyvStore> {
  const target = { ...parsePostgresUrl(url), schema };
  return openPostgresStore({ target, timeoutMs: o.timeoutMs ?? 1000, connectWaitMs: o.connectWaitMs, sweepMs: o.sweepMs, probeMs: 100 });
}

/** The contract harness on a running PostgreSQL: real time, real server. */
export function postgresHarness(url: string, outage?: StoreHarness['outage']): () => Promise<StoreHarness> {
  return async () => {
    const schema = freshSchema();
    const store = await postgresStore(url, schema);
    return {
      store,
      now: () => Date.now(),
      pass: (ms) => new Promise((r) => setTimeout(r, ms)),
      peer: () => postgresStore(url, schema),
      outage,
      close: () => store.close(),
    };
  };
}
