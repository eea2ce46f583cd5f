import { hostname } from 'node:os';
import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

/** What every line of a node says about where it comes from. */
export interface LogOrigin {
  /** The node id (GATEWAY_NODE_ID). */
  node?: string;
}

/**
 * The gateway's logger: pino, JSON lines on stderr (stdout carries protocol messages only).
 * Every line carries `node`, `pid` and `hostname`; levels are names (`"level":"warn"`), which
 * log pipelines read without a table; errors go through pino's `err` serializer (type,
 * message, stack and the chain of causes), so callers log `{ err }`, never `err.message`.
 */
export function createLogger(level: string, destination?: DestinationStream, origin: LogOrigin = {}): Logger {
  return pino(
    {
      level,
      base: { svc: 'auth-gateway', node: origin.node, pid: process.pid, hostname: hostname() },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      serializers: { err: pino.stdSerializers.errWithCause },
      // Defence in depth: should a credential ever reach a log call, it is censored.
      redact: {
        paths: ['session_id', 'new_session_id', 'old_session_id', 'token', 'access_token', 'refresh_token', 'secret', '*.session_id', '*.token'],
        censor: '[redacted]',
      },
    },
    destination ?? pino.destination({ dest: 2, sync: true }),
  );
}

/**
 * Who asked for the work a line reports: its connection, whose logger carries the connection
 * id (`conn`). Read only when a line is written: a connection's logger is made on first use.
 */
export interface Requester {
  readonly log: Logger;
}

/** The logger for a line about work `by` asked for: the requester's, else the node's. */
export function logFor(by: Requester | undefined, log: Logger): Logger {
  return by === undefined ? log : by.log;
}

/** A logger that writes nothing: for tests and benchmarks. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/**
 * An audit line: one per security event (a throttle or rate limit tripped, a refresh token
 * reused, a token family or a user's sessions revoked), at info, marked `audit: true` so a log
 * pipeline can route them. Ids appear only as salted references.
 */
export function audit(log: Logger, event: string, fields: Record<string, unknown> = {}): void {
  log.info({ audit: true, event, ...fields }, event);
}
