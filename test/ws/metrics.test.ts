import { afterEach, describe, expect, it } from 'vitest';
import { browser, createSession, eventually, fetchRaw, service, start, startWithStoreDouble, stopAll } from './helpers.js';

afterEach(stopAll);

/** The value of one series in a Prometheus text exposition. */
function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('/metrics', () => {
  it('reports connections, messages by type and outcome, latency, pushes, refusals and store errors', async () => {
    const { server, http, clock, store } = await startWithStoreDouble({ GATEWAY_EXPIRY_WARNING: '1' });
    const sid = await createSession(server.url, 2);
    const s = service(server.url);
    const b = browser(server.url, { cookie: `sid=${sid}` });
    const b2 = browser(server.url);
    await Promise.all([s.opened, b.opened, b2.opened]);
    await s.call('validate_session', { session_id: sid });
    await s.call('validate_session', { session_id: 'nope' });
    await b2.call('create_session', { user_id: 'x' }); // 1001
    b2.send('not json'); // 12
    await b2.next();
    await browser(server.url, { origin: 'http://evil.example' }).opened.catch(() => undefined); // 403
    // A store failure: answered with 11 and counted.
    store.fail('get');
    expect((await s.call('validate_session', { session_id: sid })).code).toBe(11);
    store.restore('get');
    clock.advance(1000); // warning
    await b.next();
    clock.advance(1000); // end
    await b.closed;

    const r = await fetchRaw(`${http}/metrics`);
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const t = r.body;
    expect(value(t, 'gateway_connections_opened_total{role="browser",bound="true"}')).toBe(1);
    expect(value(t, 'gateway_messages_total{type="validate_session",outcome="session_valid"}')).toBe(1);
    expect(value(t, 'gateway_messages_total{type="validate_session",outcome="session_invalid"}')).toBe(1);
    expect(value(t, 'gateway_messages_total{type="validate_session",outcome="error_11"}')).toBe(1);
    expect(value(t, 'gateway_messages_total{type="create_session",outcome="error_1001"}')).toBe(1);
    expect(value(t, 'gateway_messages_total{type="invalid",outcome="error_12"}')).toBe(1);
    expect(value(t, 'gateway_message_duration_seconds_count{type="validate_session"}')).toBeGreaterThanOrEqual(2);
    expect(t).toMatch(/gateway_message_duration_seconds_bucket\{le="0\.001",type="validate_session"\} \d+/);
    expect(value(t, 'gateway_pushes_total{type="session_expiring"}')).toBe(1);
    expect(value(t, 'gateway_pushes_total{type="session_expired"}')).toBe(1);
    expect(value(t, 'gateway_upgrades_refused_total{status="403"}')).toBe(1);
    expect(value(t, 'gateway_store_errors_total')).toBeGreaterThanOrEqual(1);
    await eventually(async () => {
      const now = (await fetchRaw(`${http}/metrics`)).body;
      expect(value(now, 'gateway_connections_closed_total{reason="session_ended"}')).toBe(1);
      expect(value(now, 'gateway_connections{role="service"}')).toBe(1);
      expect(value(now, 'gateway_connections{role="browser"}')).toBe(1); // b2; b was closed
    });
  });

  it('reports build info, store health, followed sessions, subscriptions, bound connections, push lateness and drain state', async () => {
    const { server, http, clock, store } = await startWithStoreDouble();
    const scrape = async () => (await fetchRaw(`${http}/metrics`)).body;
    let t = await scrape();
    expect(t).toMatch(/^gateway_build_info\{version="\d+\.\d+\.\d+[^"]*",node="gateway"\} 1$/m);
    expect(value(t, 'gateway_store_up')).toBe(1);
    expect(value(t, 'gateway_drain_state')).toBe(0);
    expect(value(t, 'gateway_sessions_followed')).toBe(0);
    expect(value(t, 'gateway_subscriptions')).toBe(0);
    expect(value(t, 'gateway_bound_connections')).toBe(0);

    const a = await createSession(server.url, 2);
    const b = await createSession(server.url, 3600);
    const s = service(server.url);
    await s.opened;
    expect((await s.call('subscribe_session', { session_id: a })).type).toBe('subscribed');
    expect((await s.call('subscribe_session', { session_id: b })).type).toBe('subscribed');
    expect((await s.call('subscribe_session', { session_id: b }, 'c2')).type).toBe('subscribed');
    const bound = browser(server.url, { cookie: `sid=${a}` });
    await bound.opened;
    t = await scrape();
    expect(value(t, 'gateway_sessions_followed')).toBe(2);
    expect(value(t, 'gateway_subscriptions')).toBe(4);
    expect(value(t, 'gateway_bound_connections')).toBe(1);

    store.down = true;
    expect(value(await scrape(), 'gateway_store_up')).toBe(0);
    store.down = false;
    expect(value(await scrape(), 'gateway_store_up')).toBe(1);

    // Session a reaches its end: its two followers are told, and how late is observed once.
    clock.advance(2000);
    await bound.closed;
    await eventually(async () => {
      t = await scrape();
      expect(value(t, 'gateway_push_lateness_seconds_count')).toBe(1);
      expect(value(t, 'gateway_sessions_followed')).toBe(1);
      expect(value(t, 'gateway_subscriptions')).toBe(2);
      expect(value(t, 'gateway_bound_connections')).toBe(0);
    });
  });

  it('includes the process metrics when asked (the CLI default)', async () => {
    const { http } = await start({}, { processMetrics: true });
    const t = (await fetchRaw(`${http}/metrics`)).body;
    expect(t).toContain('process_resident_memory_bytes');
    expect(t).toContain('nodejs_eventloop_lag_seconds');
  });
});

describe('gateway_drain_state', () => {
  it('0 serving, 1 during the de-registration delay, 2 while connections are closed', async () => {
    const { server, clock } = await start();
    const state = async () => value(await server.metrics.text(), 'gateway_drain_state');
    expect(await state()).toBe(0);
    const drained = server.drain({ delayMs: 1000, windowMs: 0 });
    expect(await state()).toBe(1);
    clock.advance(1000);
    await drained;
    expect(await state()).toBe(2);
  });
});
