import { NOT_REPEATED } from './config.js';
import { ConfigError } from './errors.js';
import { VERSION } from './version.js';

/**
 * OpenTelemetry tracing. The gateway speaks only `@opentelemetry/api`, and loads it (with the
 * span helpers of tracing-spans.ts) only when tracing is turned on; the SDK is imported when
 * the operator turns tracing on with the standard variables. A gateway without them loads
 * neither and pays one test per message.
 *
 * Spans name types and outcomes, never ids: a session id or token is a credential.
 */
export type Spans = typeof import('./tracing-spans.js');

let spans: Spans | undefined;

/** The span helpers while tracing is on (startTracing, or a test's own provider); undefined when off. */
export function activeSpans(): Spans | undefined {
  return spans;
}

/** Turns the spans on or off; the provider is whatever is registered with `@opentelemetry/api`. */
export async function setTracing(enabled: boolean): Promise<void> {
  spans = enabled ? await import('./tracing-spans.js') : undefined;
}

/** The operator asked for traces: OTEL_TRACES_EXPORTER names an exporter, or an OTLP endpoint is set. */
export function tracingRequested(env: Record<string, string | undefined>): boolean {
  if ((env.OTEL_SDK_DISABLED ?? '').toLowerCase() === 'true') return false;
  const exporter = (env.OTEL_TRACES_EXPORTER ?? '').trim();
  if (exporter !== '') return exporter !== 'none';
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

/** Refuses, with one ConfigError line, what startTracing would refuse (`auth-gateway config` checks it too). */
export function checkTracingEnv(env: Record<string, string | undefined>): void {
  if (!tracingRequested(env)) return;
  const exporterName = (env.OTEL_TRACES_EXPORTER ?? 'otlp').trim() || 'otlp';
  // Console would write spans to stdout, which carries the protocol of `stdio`.
  if (exporterName !== 'otlp') throw new ConfigError(`OTEL_TRACES_EXPORTER must be otlp or none (got ${JSON.stringify(exporterName.slice(0, 40))})`);
  // The exporter drops spans to an endpoint that is not a URL without a word: refused here.
  for (const name of ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT']) {
    const v = env[name]?.trim();
    if (v === undefined || v === '') continue;
    const url = URL.canParse(v) ? new URL(v) : undefined;
    if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:'))
      throw new ConfigError(`${name} must be an http or https URL, e.g. http://collector:4318 (${NOT_REPEATED})`);
    // The exporter's own errors may quote its URL: credentials go in OTEL_EXPORTER_OTLP_HEADERS.
    if (url.username !== '' || url.password !== '')
      throw new ConfigError(`${name} must not hold a user name or password: give the collector's credentials in OTEL_EXPORTER_OTLP_HEADERS`);
  }
}

/**
 * Loads the SDK and registers a provider exporting over OTLP/HTTP (the exporter reads
 * OTEL_EXPORTER_OTLP_* itself), when `tracingRequested`; stopTracing flushes it.
 */
export async function startTracing(env: Record<string, string | undefined>, nodeId: string): Promise<void> {
  if (!tracingRequested(env)) return;
  checkTracingEnv(env);
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
  await setTracing(true);
  shutdown = () => provider.shutdown();
}

let shutdown: (() => Promise<void>) | undefined;

/** Flushes and stops the tracing startTracing began (before the process exits). */
export async function stopTracing(): Promise<void> {
  const stop = shutdown;
  shutdown = undefined;
  spans = undefined;
  if (stop === undefined) return;
  // The last spans are flushed, but a collector that does not answer does not hold the exit
  // (the exporter's own time limit is 10 s).
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([stop().catch(() => {}), new Promise<void>((resolve) => (timer = setTimeout(resolve, FLUSH_AT_EXIT_MS)))]);
  clearTimeout(timer);
}

/** How long stopTracing waits for the last spans to reach the collector. */
const FLUSH_AT_EXIT_MS = 1000;
