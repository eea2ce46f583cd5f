import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type Span } from '@opentelemetry/api';
import { ConfigError } from './errors.js';
import { VERSION } from './version.js';

/**
 * OpenTelemetry tracing. The gateway speaks only `@opentelemetry/api`; the SDK is imported
 * (dynamically) when the operator turns tracing on with the standard variables, so a gateway
 * without them loads nothing more and pays one boolean test per message.
 *
 * Spans name types and outcomes, never ids: a session id or token is a credential.
 */
const tracer = trace.getTracer('auth-gateway', VERSION);
let on = false;

/** True once a tracer provider is installed (startTracing, or a test's own). */
export function tracingOn(): boolean {
  return on;
}

/** Turns the spans on or off; the provider is whatever is registered with `@opentelemetry/api`. */
export function setTracing(enabled: boolean): void {
  on = enabled;
}

/** W3C Trace Context, version 00 (https://www.w3.org/TR/trace-context/#traceparent-header). */
const TRACEPARENT = /^[\da-f]{2}-[\da-f]{32}-[\da-f]{16}-[\da-f]{2}$/;

/** The context a message's span starts in: its `traceparent` when well-formed, else the active one. */
export function parentContext(traceparent: unknown): Context {
  if (typeof traceparent !== 'string' || !TRACEPARENT.test(traceparent)) return context.active();
  return propagation.extract(ROOT_CONTEXT, { traceparent });
}

/** Starts the span of one request (`gateway <type>`), a child of `parent`. */
export function startMessageSpan(type: string, parent: Context): Span {
  return tracer.startSpan(`gateway ${type}`, { kind: SpanKind.SERVER, attributes: { 'gateway.message.type': type } }, parent);
}

/** Ends a request's span with its outcome (reply type or `error_<code>`). */
export function endMessageSpan(span: Span, outcome: string): void {
  span.setAttribute('gateway.outcome', outcome);
  if (outcome.startsWith('error_')) span.setStatus({ code: SpanStatusCode.ERROR });
  span.end();
}

/** Runs `fn` with `span` as the active span (store operations inside become its children). */
export function withSpan<T>(parent: Context, span: Span, fn: () => T): T {
  return context.with(trace.setSpan(parent, span), fn);
}

/** Wraps a store operation in a child span of the active one (`store <op>`). */
export function traceStore<T>(kind: string, op: string, run: () => Promise<T>): Promise<T> {
  const span = tracer.startSpan(`store ${op}`, { kind: SpanKind.CLIENT, attributes: { 'db.system': kind, 'db.operation': op } });
  return run().then(
    (v) => (span.end(), v),
    (err: unknown) => {
      span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
      throw err;
    },
  );
}

/** The operator asked for traces: OTEL_TRACES_EXPORTER names an exporter, or an OTLP endpoint is set. */
export function tracingRequested(env: Record<string, string | undefined>): boolean {
  if ((env.OTEL_SDK_DISABLED ?? '').toLowerCase() === 'true') return false;
  const exporter = (env.OTEL_TRACES_EXPORTER ?? '').trim();
  if (exporter !== '') return exporter !== 'none';
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

/**
 * Loads the SDK and registers a provider exporting over OTLP/HTTP (the exporter reads
 * OTEL_EXPORTER_OTLP_* itself), when `tracingRequested`; stopTracing flushes it.
 */
export async function startTracing(env: Record<string, string | undefined>, nodeId: string): Promise<void> {
  if (!tracingRequested(env)) return;
  const exporterName = (env.OTEL_TRACES_EXPORTER ?? 'otlp').trim() || 'otlp';
  // Console would write spans to stdout, which carries the protocol of `stdio`.
  if (exporterName !== 'otlp') throw new ConfigError(`OTEL_TRACES_EXPORTER must be otlp or none (got ${JSON.stringify(exporterName.slice(0, 40))})`);
  const [{ NodeTracerProvider, BatchSpanProcessor }, { OTLPTraceExporter }, { resourceFromAttributes }] = await Promise.all([
    import('@opentelemetry/sdk-trace-node'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
  ]);
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': env.OTEL_SERVICE_NAME || 'auth-gateway', 'service.version': VERSION, 'service.instance.id': nodeId }),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
  });
  provider.register();
  on = true;
  shutdown = () => provider.shutdown();
}

let shutdown: (() => Promise<void>) | undefined;

/** Flushes and stops the tracing startTracing began (before the process exits). */
export async function stopTracing(): Promise<void> {
  const stop = shutdown;
  shutdown = undefined;
  on = false;
  await stop?.().catch(() => {});
}
