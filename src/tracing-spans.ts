import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type Span } from '@opentelemetry/api';
import { VERSION } from './version.js';

/** The spans of requests and store operations; loaded by tracing.ts only when tracing is on. */
const tracer = trace.getTracer('auth-gateway', VERSION);

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
