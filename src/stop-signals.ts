import type { Logger } from './log.js';

/** What a running command does on its first stop signal, and the line a second one logs. */
export interface StopHandling {
  onStop(signal: NodeJS.Signals): void;
  /** Logged when a second signal exits at once with 1. */
  secondSignal: string;
}

/**
 * SIGTERM and SIGINT for `serve` and `stdio`, taken from the moment their configuration is
 * read. Until `running` is called a signal exits 0 at once, saying so in one line: start-up is
 * cut short, and nothing has been served or read yet. After it, the first signal is handed to
 * `onStop` and a second exits 1 at once.
 */
export function takeStopSignals(log: Logger): { running(handling: StopHandling): void } {
  let handling: StopHandling | undefined;
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    if (handling === undefined) {
      log.info({ signal }, 'stopping before start-up completed: nothing was served');
      process.exit(0);
    }
    if (++signals > 1) {
      log.warn({ signal }, handling.secondSignal);
      process.exit(1);
    }
    handling.onStop(signal);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return { running: (h) => void (handling = h) };
}
