import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

/** The gateway's logger: pino, JSON lines on stderr (stdout carries protocol messages only). */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { svc: 'auth-gateway' },
      timestamp: pino.stdTimeFunctions.isoTime,
      // Defence in depth: should a credential ever reach a log call, it is censored.
      redact: {
        paths: ['session_id', 'new_session_id', 'old_session_id', 'token', 'access_token', 'refresh_token', 'secret', '*.session_id', '*.token'],
        censor: '[redacted]',
      },
    },
    destination ?? pino.destination({ dest: 2, sync: true }),
  );
}

/** A logger that writes nothing: for tests and benchmarks. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
