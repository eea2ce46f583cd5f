/**
 * What an on-call engineer sees of a Redis outage: Redis killed for 5 s while service
 * connections validate without pause. The log gets a handful of lines (down with its cause,
 * sampled request failures, up), not one per failed request; the metrics count every failure,
 * /metrics says the store is down then up, and the duration histogram holds the time the
 * failed requests took (not 0 s).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisServer } from '../helpers/redis-server.js';
import { required } from '../helpers/required.js';
import { waitForCount } from '../helpers/wait-for.js';
import { SECRET } from '../security/harness.js';
import { spawnServe, type ServeNode } from '../security/spawn.js';
import { Client, sleep, Tally } from './client.js';

const SERVICE_KEY = 'oYbSjbiRYxFxmpeJQcYLbeBrz467CmS4ARkJti/GQxQ=';
const OUTAGE_MS = 5000;
/** Down (with cause), a sampled request-failure line or two, up: a handful. */
const MAX_LINES = 8;

const redisPresent = required('redis-server');
let redis: RedisServer | undefined;
let server: ServeNode | undefined;

beforeAll(async () => {
  if (!redisPresent) return;
  redis = await RedisServer.start();
  server = await spawnServe({
    GATEWAY_STORE: redis.url,
    GATEWAY_JWT_SECRET: SECRET,
    GATEWAY_SERVICE_KEY: SERVICE_KEY,
    GATEWAY_STORE_TIMEOUT_MS: '500',
    GATEWAY_LOG_LEVEL: 'info',
  });
}, 30_000);

afterAll(async () => {
  await server?.stop();
  await redis?.stop();
});

/** One series' value from the Prometheus text, 0 when absent. */
function sample(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

describe.skipIf(!redisPresent)('a 5 s Redis outage under load', () => {
  it('writes a handful of log lines, counts every failure, and times the failures', async () => {
    const metricsUrl = `http://127.0.0.1:${server!.port}/metrics`;
    const scrape = () => fetch(metricsUrl).then((r) => r.text());
    const clients = await Promise.all([0, 1, 2, 3].map(() => Client.open(server!.url, SERVICE_KEY)));
    const id = (await clients[0]!.call({ type: 'create_session', user_id: 'u' }))!.session_id as string;
    expect(sample(await scrape(), 'gateway_store_up')).toBe(1);

    const tally = new Tally();
    let running = true;
    const load = clients.map(async (c) => {
      while (running) await c.call({ type: 'validate_session', session_id: id }, 5000, tally);
    });
    await waitForCount(() => tally.answered, 200, 30_000, 'answers before the outage');

    const before = server!.stderr.length;
    const errorsBefore = tally.byType['error 11'] ?? 0;
    await redis!.crash();
    await waitForCount(() => tally.byType['error 11'] ?? 0, errorsBefore + 1, 30_000, 'error 11 answers');
    const early = await scrape();
    expect(sample(early, 'gateway_store_up')).toBe(0);
    await sleep(OUTAGE_MS);
    const late = await scrape();
    const failed = (tally.byType['error 11'] ?? 0) - errorsBefore;
    await redis!.restart();
    const validBefore = tally.byType.session_valid ?? 0;
    // The session was in a store without persistence: back, Redis answers session_invalid.
    await waitForCount(() => (tally.byType.session_invalid ?? 0) + (tally.byType.session_valid ?? 0) - validBefore, 50, 30_000, 'answers after the outage');
    running = false;
    await Promise.all(load);
    const text = await scrape();
    for (const c of clients) c.close();

    const lines = server!.stderr.slice(before).map((l) => JSON.parse(l) as Record<string, unknown>);
    console.log(
      `outage of ${OUTAGE_MS} ms: ${failed} requests answered error 11, ${lines.length} log lines:\n${lines.map((l) => `  ${l.level} ${l.msg}`).join('\n')}`,
    );
    expect(failed).toBeGreaterThan(100);
    expect(lines.length).toBeLessThanOrEqual(MAX_LINES);
    const down = lines.find(
      (l) =>
        l.msg === 'Redis unreachable: answering error 11 until it returns' ||
        l.msg === 'Redis did not answer in time: answering error 11 until a probe succeeds',
    );
    expect(down, 'a line saying the store is down').toBeDefined();
    expect(down!.err, 'with its cause').toMatchObject({ type: expect.any(String), message: expect.any(String), stack: expect.any(String) });
    expect(lines.some((l) => l.msg === 'Redis reachable again')).toBe(true);
    // Sampled: the first failure of the 10 s interval is written, the rest counted (the count
    // comes in a summary line when the interval ends): one line, two if the failures outlasted one interval.
    const failing = lines.filter((l) => l.level === 'warn' && (l.msg as string).startsWith('requests failing: store unavailable'));
    expect(failing.length).toBeGreaterThanOrEqual(1);
    expect(failing.length).toBeLessThanOrEqual(2);

    expect(sample(text, 'gateway_store_up')).toBe(1);
    expect(sample(text, 'gateway_store_errors_total')).toBeGreaterThanOrEqual(failed);
    const errors = sample(text, 'gateway_messages_total{type="validate_session",outcome="error_11"}');
    expect(errors).toBeGreaterThanOrEqual(failed);
    // Every request is in the histogram, failures included, with the time it took: more than 0.
    const count = sample(text, 'gateway_message_duration_seconds_count{type="validate_session"}');
    expect(count).toBe(
      sample(text, 'gateway_messages_total{type="validate_session",outcome="session_valid"}') +
        sample(text, 'gateway_messages_total{type="validate_session",outcome="session_invalid"}') +
        errors,
    );
    // Between two scrapes inside the outage, only failures were answered: the histogram grew by
    // as many observations as error replies, and by more than 0 s.
    const delta = (series: string) => sample(late, series) - sample(early, series);
    expect(delta('gateway_message_duration_seconds_count{type="validate_session"}')).toBe(
      delta('gateway_messages_total{type="validate_session",outcome="error_11"}'),
    );
    expect(delta('gateway_message_duration_seconds_count{type="validate_session"}')).toBeGreaterThan(0);
    expect(delta('gateway_message_duration_seconds_sum{type="validate_session"}')).toBeGreaterThan(0);
    expect(sample(text, 'gateway_store_operation_duration_seconds_count{op="get",outcome="ok"}')).toBeGreaterThan(0);
    expect(sample(text, 'gateway_store_operation_duration_seconds_count{op="get",outcome="error"}')).toBeGreaterThan(0);
  }, 120_000);
});

describe.skipIf(!redisPresent)('a wrong Redis password', () => {
  it('is said in the log line that the store is not reachable, as its cause', async () => {
    const locked = await RedisServer.start();
    try {
      expect(await locked.command('CONFIG SET requirepass the-right-password')).toMatch(/^\+OK/);
      const node = await spawnServe({
        GATEWAY_STORE: `redis://:the-wrong-password@127.0.0.1:${locked.port}`,
        GATEWAY_JWT_SECRET: SECRET,
        GATEWAY_SERVICE_KEY: SERVICE_KEY,
      });
      try {
        const line = node.stderr
          .map((l) => JSON.parse(l) as { msg: string; err?: { message: string } })
          .find((l) => l.msg.startsWith('Redis is not reachable yet'));
        expect(line, node.stderr.join('\n')).toBeDefined();
        expect(line!.err?.message).toMatch(/WRONGPASS|invalid username-password/);
        expect(node.stderr.join('\n')).not.toContain('the-wrong-password');
      } finally {
        await node.stop();
      }
    } finally {
      await locked.stop();
    }
  }, 60_000);
});
