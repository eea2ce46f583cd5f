import { GatewayError } from '../errors.js';
import type { Logger } from '../log.js';
import type { PipelineServices } from './services.js';

/**
 * Any failure of a request of `type` as the GatewayError its caller is answered with: a
 * GatewayError keeps its code, anything else is INTERNAL (the cause kept for the log only).
 * Failures are counted in the metrics and sampled in the log (see LogBudget): an outage
 * fails every request, and one line per request would be a log storm.
 */
export function failureOf(gateway: PipelineServices, log: Logger, type: string, err: unknown): GatewayError {
  if (err instanceof GatewayError) {
    if (err.code === 'UNAVAILABLE') {
      gateway.observer.storeError?.();
      gateway.sampledLog.hit('store unavailable', () =>
        log.warn({ err, type }, 'requests failing: store unavailable (sampled; count in gateway_store_errors_total)'),
      );
    }
    return err;
  }
  gateway.sampledLog.hit('internal error', () => log.error({ err, type }, 'internal error while serving a message (sampled)'), { level: 'error' });
  return new GatewayError('INTERNAL', 'Internal error', { cause: err });
}
