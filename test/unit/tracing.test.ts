/**
 * Traces: with a tracer provider registered (here one exporting to memory, as the SDK would
 * to OTLP), one request makes one span named for its type with its outcome, and a child span
 * per store operation; a `traceparent` in the envelope makes it part of the caller's trace.
 * No id of any kind is written into a span.
 */
import { context, propagation, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { setTracing, tracingRequested } from '../../src/tracing.js';
import { Driver, makeGateway, settle } from './harness.js';

const exporter = new InMemorySpanExporter();
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });

beforeAll(async () => {
  provider.register();
  await setTracing(true);
});

afterAll(async () => {
  await setTracing(false);
  await provider.shutdown();
  trace.disable();
  context.disable();
  propagation.disable();
});

beforeEach(() => exporter.reset());

const PARENT_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_SPAN = '00f067aa0ba902b7';

describe('tracing', () => {
  it('one request: a span for the message with type and outcome, children for its store operations', async () => {
    const { gateway } = makeGateway();
    const d = new Driver(gateway);
    d.send({ type: 'create_session', user_id: 'alice' });
    await settle();
    const id = d.out[0]!.body.session_id as string;
    exporter.reset();

    d.input.next({
      ok: true,
      src: 'c1',
      dest: 'gateway',
      body: { type: 'validate_session', msg_id: 9, session_id: id },
      traceparent: `00-${PARENT_TRACE}-${PARENT_SPAN}-01`,
    });
    await settle();
    expect(d.out[1]!.body.type).toBe('session_valid');

    const spans = exporter.getFinishedSpans();
    const message = spans.filter((s) => s.name === 'gateway validate_session');
    expect(message).toHaveLength(1);
    const m = message[0]!;
    expect(m.attributes).toEqual({ 'gateway.message.type': 'validate_session', 'gateway.outcome': 'session_valid' });
    expect(m.spanContext().traceId).toBe(PARENT_TRACE);
    expect(m.parentSpanContext?.spanId).toBe(PARENT_SPAN);
    const store = spans.filter((s) => s.name.startsWith('store '));
    expect(store.length).toBeGreaterThanOrEqual(1);
    for (const s of store) {
      expect(s.parentSpanContext?.spanId).toBe(m.spanContext().spanId);
      expect(s.attributes['db.system']).toBe('memory');
    }
    expect(store.map((s) => s.name)).toContain('store get');
    // No id in any span: names and attribute values are types, outcomes and operation names.
    const text = JSON.stringify(spans.map((s) => [s.name, s.attributes, s.events]));
    expect(text).not.toContain(id);
    await gateway.close();
  });

  it('an error reply is the outcome, and the span is marked as an error; a bad traceparent starts a new trace', async () => {
    const { gateway } = makeGateway();
    const d = new Driver(gateway, { allowed: new Set(['validate_session']) });
    d.input.next({ ok: true, src: 'c1', dest: 'gateway', body: { type: 'create_session', msg_id: 1, user_id: 'u' }, traceparent: 'not-a-traceparent' });
    await settle();
    expect(d.out[0]!.body).toMatchObject({ type: 'error', code: 1001 });
    const [span] = exporter.getFinishedSpans();
    expect(span!.name).toBe('gateway create_session');
    expect(span!.attributes['gateway.outcome']).toBe('error_1001');
    expect(span!.status.code).toBe(2); // SpanStatusCode.ERROR
    expect(span!.parentSpanContext).toBeUndefined();
    await gateway.close();
  });

  it('POST /v1/rpc: the traceparent header makes the request part of the caller trace', async () => {
    const { start, stopAll, SERVICE_KEY } = await import('../ws/helpers.js');
    try {
      const { http } = await start();
      const res = await fetch(`${http}/v1/rpc`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${SERVICE_KEY}`, 'Content-Type': 'application/json', traceparent: `00-${PARENT_TRACE}-${PARENT_SPAN}-01` },
        body: JSON.stringify({ type: 'create_session', user_id: 'u' }),
      });
      expect(res.status).toBe(200);
      const span = exporter.getFinishedSpans().find((x) => x.name === 'gateway create_session');
      expect(span?.spanContext().traceId).toBe(PARENT_TRACE);
      expect(span?.parentSpanContext?.spanId).toBe(PARENT_SPAN);
      expect(span?.attributes['gateway.outcome']).toBe('session_created');
    } finally {
      await stopAll();
    }
  });

  it('POST /oauth2/introspect and /oauth2/revoke: a span each, in the caller trace, with the outcome', async () => {
    const { start, stopAll, SERVICE_KEY } = await import('../ws/helpers.js');
    try {
      const { http } = await start();
      const headers = { Authorization: `Bearer ${SERVICE_KEY}`, traceparent: `00-${PARENT_TRACE}-${PARENT_SPAN}-01` };
      for (const path of ['/oauth2/introspect', '/oauth2/revoke']) {
        const res = await fetch(`${http}${path}`, { method: 'POST', headers, body: new URLSearchParams({ token: 'not-a-token' }) });
        expect(res.status).toBe(200);
      }
      const spans = exporter.getFinishedSpans();
      const introspect = spans.find((x) => x.name === 'gateway oauth2_introspect');
      const revoke = spans.find((x) => x.name === 'gateway oauth2_revoke');
      expect(introspect?.spanContext().traceId).toBe(PARENT_TRACE);
      expect(introspect?.parentSpanContext?.spanId).toBe(PARENT_SPAN);
      expect(introspect?.attributes).toEqual({ 'gateway.message.type': 'oauth2_introspect', 'gateway.outcome': 'inactive' });
      expect(revoke?.spanContext().traceId).toBe(PARENT_TRACE);
      expect(revoke?.attributes['gateway.outcome']).toBe('token_invalid');
    } finally {
      await stopAll();
    }
  });

  it('is requested by the standard variables only', () => {
    expect(tracingRequested({})).toBe(false);
    expect(tracingRequested({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' })).toBe(false);
    expect(tracingRequested({ OTEL_TRACES_EXPORTER: 'otlp' })).toBe(true);
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' })).toBe(true);
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/v1/traces' })).toBe(true);
    expect(tracingRequested({ OTEL_SDK_DISABLED: 'true', OTEL_TRACES_EXPORTER: 'otlp' })).toBe(false);
  });
});

describe('tracing in the CLI (spawned stdio node, OTLP/HTTP to a local collector)', () => {
  it('exports the spans of a request over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set, and flushes before exit', async () => {
    const { createServer } = await import('node:http');
    const { spawn } = await import('node:child_process');
    const { CLI } = await import('../security/spawn.js');
    const posts: { path: string; bytes: number }[] = [];
    const collector = createServer((req, res) => {
      let bytes = 0;
      req.on('data', (c: Buffer) => (bytes += c.length));
      req.on('end', () => {
        posts.push({ path: req.url ?? '', bytes });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r));
    const port = (collector.address() as { port: number }).port;
    try {
      const child = spawn(process.execPath, [CLI, 'stdio'], {
        env: { PATH: process.env.PATH ?? '', OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`, GATEWAY_LOG_LEVEL: 'warn' },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number | null>((r) => child.once('exit', r));
      child.stdin.end(
        `${JSON.stringify({ src: 'c', dest: 'gateway', traceparent: `00-${PARENT_TRACE}-${PARENT_SPAN}-01`, body: { type: 'create_session', msg_id: 1, user_id: 'u' } })}\n`,
      );
      expect(await exited).toBe(0);
      expect(JSON.parse(out).body.type).toBe('session_created');
      expect(posts.map((p) => p.path)).toContain('/v1/traces');
      expect(posts.find((p) => p.path === '/v1/traces')!.bytes).toBeGreaterThan(0);
    } finally {
      collector.close();
    }
  }, 30_000);
});
