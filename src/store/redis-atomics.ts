import { createHash } from 'node:crypto';
import type { Atomics } from './keyv-store.js';
import { ParsedReads } from './parsed-reads.js';

/**
 * The few commands the atomics need; a single Redis client and a Redis Cluster client
 * both have them (the cluster routes each call by its first key, and every call here
 * touches exactly one key, so no call ever crosses slots).
 */
export interface RedisCommands {
  get(key: string): Promise<unknown>;
  mGet(keys: string[]): Promise<unknown[]>;
  getDel(key: string): Promise<unknown>;
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
  evalSha(sha: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
  scriptLoad(script: string): Promise<unknown>;
}

/** How Keyv writes and reads a value, so raw commands stay in Keyv's own format. */
export interface KeyvCodec {
  /** The Redis key Keyv uses for `key` (namespace and separator included). */
  redisKey(key: string): string;
  serialize(data: { value: unknown; expires?: number }): string;
  deserialize(raw: string): { value: unknown; expires?: number | null } | undefined;
  now(): number;
}

/**
 * swap: replace an existing value keeping its TTL, and return the old one; nothing is
 * written when the key is absent. Keyv's serialized form ends with `,"expires":N}` when a
 * TTL was set, and the new value carries the same `expires`, so Keyv's own expiry check
 * agrees with Redis' TTL. (`SET key v XX KEEPTTL GET` would do the swap too, but could
 * not carry `expires` over.)
 */
const SWAP = `
local old = redis.call('GET', KEYS[1])
if not old then return false end
local value = ARGV[1]
local expires = string.match(old, ',"expires":(%d+)}$')
if expires then value = string.sub(value, 1, -2) .. ',"expires":' .. expires .. '}' end
redis.call('SET', KEYS[1], value, 'KEEPTTL')
return old`;

/** swap to a new expiry: ARGV[1] carries the new `expires`, ARGV[2] the same time for Redis. */
const SWAP_UNTIL = `
local old = redis.call('GET', KEYS[1])
if not old then return false end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
return old`;

/**
 * swapIf: ARGV[1] is the expected value in Keyv's form without `expires` (`{"value":X}`),
 * ARGV[2] the new one, ARGV[3] `before` ('' for none), ARGV[4] a new expiry ('' to keep it;
 * ARGV[2] then carries that `expires`). The stored form matches when it is ARGV[1], or ARGV[1]
 * with the `,"expires":N` suffix. `before` is compared with Redis' own clock (TIME) while the
 * script runs: the time of the write, not of the call. Returns {0} absent, {1, old} changed,
 * {2, old} too late, {3, old} written.
 */
const SWAP_IF = `
local old = redis.call('GET', KEYS[1])
if not old then return {0} end
local prefix = string.sub(ARGV[1], 1, -2)
local rest = string.sub(old, #prefix + 1)
if string.sub(old, 1, #prefix) ~= prefix or (rest ~= '}' and not string.match(rest, '^,"expires":%d+}$')) then return {1, old} end
if ARGV[3] ~= '' then
  local t = redis.call('TIME')
  if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) >= tonumber(ARGV[3]) then return {2, old} end
end
local value = ARGV[2]
if ARGV[4] ~= '' then
  redis.call('SET', KEYS[1], value, 'PXAT', ARGV[4])
else
  local expires = string.match(old, ',"expires":(%d+)}$')
  if expires then value = string.sub(value, 1, -2) .. ',"expires":' .. expires .. '}' end
  redis.call('SET', KEYS[1], value, 'KEEPTTL')
end
return {3, old}`;

/**
 * claim: SET NX with Redis' own expiry; the value is Keyv's form with the same `expires`,
 * so a plain get agrees. (A script rather than `set` with options: every call here goes
 * through the same two commands, which a single client and a cluster client both have.)
 */
const CLAIM = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0`;

/**
 * Redis' own clock in ms (TIME, read while the script runs), as a whole-number string: the one
 * clock of the index, which every node shares (a node's own clock may be off).
 */
const REDIS_NOW = `
local t = redis.call('TIME')
local now = string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))`;

/** Sets the index key to expire with its last member, so it never outlives its sessions. */
const EXPIRE_WITH_LAST = `
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if top[2] then redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', math.ceil(tonumber(top[2])))) end`;

/**
 * indexAdd: ZADD score=expiry, unless the member is there with a later one and ARGV[3] is not
 * '1' (shorten); prune what expired by Redis' clock, expire the key with its last member. A
 * comparison in the script rather than ZADD GT (Redis 6.2+): older servers run it too.
 */
const INDEX_ADD = `
local current = redis.call('ZSCORE', KEYS[1], ARGV[2])
if ARGV[3] == '1' or not current or tonumber(current) < tonumber(ARGV[1]) then redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2]) end
${REDIS_NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
${EXPIRE_WITH_LAST}
return 1`;

const INDEX_REMOVE = `
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
${EXPIRE_WITH_LAST}
end
return 1`;

/** indexMembers: prune what expired by Redis' clock, return the rest (score > now). */
const INDEX_MEMBERS = `
${REDIS_NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')`;

/** Reads waiting to go out together as one MGET. */
interface ReadBatch {
  keys: string[];
  waiters: { resolve: (value: unknown) => void; reject: (err: unknown) => void }[];
}

/** Reads made in one tick go together, up to this many keys per MGET. */
const MAX_BATCH = 512;

interface Script {
  source: string;
  sha: string;
}

function script(source: string): Script {
  return { source, sha: createHash('sha1').update(source).digest('hex') };
}

const SCRIPTS = {
  swap: script(SWAP),
  swapUntil: script(SWAP_UNTIL),
  swapIf: script(SWAP_IF),
  claim: script(CLAIM),
  indexAdd: script(INDEX_ADD),
  indexRemove: script(INDEX_REMOVE),
  indexMembers: script(INDEX_MEMBERS),
};

/**
 * Store operations Keyv has no word for, done atomically by Redis itself: GETDEL for
 * take, Lua scripts (run whole, with nothing interleaved) for swap and the sorted-set
 * index. Scripts go by EVALSHA and fall back to EVAL once per node that lacks them.
 */
export class RedisAtomics implements Atomics {
  readonly #redis: RedisCommands;
  readonly #codec: KeyvCodec;
  readonly #batchReads: boolean;
  #batch: ReadBatch | undefined;
  readonly #parsed: ParsedReads<{ value: unknown; expires?: number | null } | undefined>;

  /** `batchReads`: only on a single Redis (a cluster cannot MGET across slots). */
  constructor(redis: RedisCommands, codec: KeyvCodec, o: { batchReads?: boolean } = {}) {
    this.#redis = redis;
    this.#codec = codec;
    this.#batchReads = o.batchReads ?? false;
    this.#parsed = new ParsedReads((raw) => codec.deserialize(raw));
  }

  /**
   * Loads every script into the server (a single server: called on each connection, before any
   * command of this node, so a restarted server knows them too). A script the server does not
   * know costs a second round trip at its first use (NOSCRIPT, then EVAL), and the write that
   * needs it goes out behind whatever this node sent meanwhile: the put-back of a refresh token
   * that a late answer asks for (see RefreshFamilies.refresh) must not go out behind a retry.
   */
  async loadScripts(): Promise<void> {
    await Promise.all(Object.values(SCRIPTS).map((s) => this.#redis.scriptLoad(s.source)));
  }

  async #run(s: Script, key: string, args: string[]): Promise<unknown> {
    const options = { keys: [this.#codec.redisKey(key)], arguments: args };
    try {
      return await this.#redis.evalSha(s.sha, options);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return this.#redis.eval(s.source, options);
    }
  }

  /**
   * The value in Keyv's stored form; `key` given for a read (see ParsedReads). Redis' own
   * expiry decides what is live: it answers no key past its TTL, and every write sets the TTL
   * with the value (Keyv's `PX`, the scripts' `PX`, `PXAT` or `KEEPTTL`). Keyv's `expires`,
   * written from a node's clock, is not compared with this node's: a node whose clock runs
   * ahead would take a session (GETDEL deletes it) and report nothing there, ending it unannounced.
   */
  #decode(raw: unknown, key?: string): unknown {
    if (typeof raw !== 'string') return undefined;
    const data = key === undefined ? this.#codec.deserialize(raw) : this.#parsed.parse(key, raw);
    if (data === undefined || data === null) return undefined;
    return data.value;
  }

  /**
   * Keyv's get without Keyv: the same key, format and expiry check, minus its hooks, stats
   * and wrappers, which are CPU on every read for nothing used here (KeyvStore uses this for
   * `get`). With `batchReads`, the reads made in one tick go out as one MGET (each still gets
   * its own value or error): the per-command cost, in the client and in Redis, is paid once.
   */
  read(key: string): Promise<unknown> {
    const redisKey = this.#codec.redisKey(key);
    if (!this.#batchReads) return this.#redis.get(redisKey).then((raw) => this.#decode(raw, redisKey));
    let b = this.#batch;
    if (b === undefined) {
      const batch: ReadBatch = { keys: [], waiters: [] };
      b = this.#batch = batch;
      process.nextTick(() => this.#flush(batch));
    }
    b.keys.push(redisKey);
    if (b.keys.length >= MAX_BATCH) this.#batch = undefined;
    const waiters = b.waiters;
    return new Promise((resolve, reject) => waiters.push({ resolve, reject }));
  }

  #flush(b: ReadBatch): void {
    if (this.#batch === b) this.#batch = undefined;
    const fail = (err: unknown) => {
      for (const w of b.waiters) w.reject(err);
    };
    const done = (raws: unknown[]) => {
      for (let i = 0; i < b.waiters.length; i++) {
        const w = b.waiters[i]!;
        try {
          w.resolve(this.#decode(raws[i], b.keys[i]));
        } catch (err) {
          w.reject(err);
        }
      }
    };
    try {
      if (b.keys.length === 1) this.#redis.get(b.keys[0]!).then((raw) => done([raw]), fail);
      else this.#redis.mGet(b.keys).then(done, fail);
    } catch (err) {
      fail(err);
    }
  }

  async take(key: string): Promise<unknown> {
    return this.#decode(await this.#redis.getDel(this.#codec.redisKey(key)));
  }

  async swap(key: string, value: unknown, expiresAt?: number): Promise<unknown> {
    if (expiresAt !== undefined) {
      const at = Math.ceil(expiresAt);
      return this.#decode(await this.#run(SCRIPTS.swapUntil, key, [this.#codec.serialize({ value, expires: at }), String(at)]));
    }
    const old = await this.#run(SCRIPTS.swap, key, [this.#codec.serialize({ value })]);
    return this.#decode(old);
  }

  async swapIf(key: string, expected: unknown, value: unknown, o: { expiresAt?: number; before?: number }): Promise<{ swapped: boolean; old: unknown }> {
    const at = o.expiresAt === undefined ? undefined : Math.ceil(o.expiresAt);
    const args = [
      this.#codec.serialize({ value: expected }),
      this.#codec.serialize(at === undefined ? { value } : { value, expires: at }),
      o.before === undefined ? '' : String(Math.floor(o.before)),
      at === undefined ? '' : String(at),
    ];
    const reply = (await this.#run(SCRIPTS.swapIf, key, args)) as [number, string?];
    if (Number(reply[0]) === 3) return { swapped: true, old: expected };
    return { swapped: false, old: reply[1] === undefined ? undefined : this.#decode(reply[1]) };
  }

  async claim(key: string, ttlMs: number, value: unknown): Promise<boolean> {
    const stored = this.#codec.serialize({ value, expires: Math.ceil(this.#codec.now() + ttlMs) });
    return Number(await this.#run(SCRIPTS.claim, key, [stored, String(ttlMs)])) === 1;
  }

  async indexAdd(key: string, member: string, expiresAt: number, shorten: boolean): Promise<void> {
    await this.#run(SCRIPTS.indexAdd, key, [String(Math.ceil(expiresAt)), member, shorten ? '1' : '0']);
  }

  async indexRemove(key: string, member: string): Promise<void> {
    await this.#run(SCRIPTS.indexRemove, key, [member]);
  }

  /** Members live by Redis' clock: the caller's `now` is its own clock's, and is not used. */
  async indexMembers(key: string, _now: number): Promise<string[]> {
    const members = await this.#run(SCRIPTS.indexMembers, key, []);
    return Array.isArray(members) ? members.map(String) : [];
  }
}
