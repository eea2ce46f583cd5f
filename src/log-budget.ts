import type { Clock, TimerHandle } from './clock.js';
import type { Logger } from './log.js';

/** The level of a budget's summary line: that of the lines it stands for. */
export type SummaryLevel = 'debug' | 'info' | 'warn' | 'error';

/** How the lines of one `hit` are marked, and so their summary. */
export interface HitOptions {
  /** The lines are audit lines (see `audit` in log.ts): so is their summary. */
  audit?: boolean;
  /** The summary's level (default: `info` for audit lines, which are written at info; else `warn`). */
  level?: SummaryLevel;
}

/** Lines of one kind written per interval before the rest are only counted. */
export const LOG_BUDGET_LINES = 10;
/** The interval of the budget (ms). */
export const LOG_BUDGET_INTERVAL_MS = 10_000;

interface Window {
  /** When the interval began (ms). */
  start: number;
  written: number;
  suppressed: number;
  /** The summary's timer, armed at the first line left out. */
  summary: TimerHandle | undefined;
  /** The lines are audit lines: so is their summary. */
  audit: boolean;
  level: SummaryLevel;
}

/**
 * A budget for lines that come in floods: those a client can make the gateway write (a
 * connection closed for a flood, a rate limit tripped, a refused upgrade) and recurring
 * failures (every request failing while the store is away). Per kind, the first `lines` of
 * each interval are written, the rest counted, and one summary line at the end of the
 * interval says how many were left out. Many connections (from many addresses) tripping the
 * same limit at once write a bounded number of lines, however many they are; the metrics
 * still count every one. A budget of one line per interval is a sampled log.
 *
 * Memory: one entry per kind, and kinds are the gateway's own texts (no client's value).
 */
export class LogBudget {
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #lines: number;
  readonly #intervalMs: number;
  readonly #windows = new Map<string, Window>();

  constructor(o: { log: Logger; clock: Clock; lines?: number; intervalMs?: number }) {
    const lines = o.lines ?? LOG_BUDGET_LINES;
    const intervalMs = o.intervalMs ?? LOG_BUDGET_INTERVAL_MS;
    if (!Number.isSafeInteger(lines) || lines < 0) throw new RangeError('The lines option must be a non-negative integer.');
    if (!Number.isSafeInteger(intervalMs) || intervalMs < 1) throw new RangeError('The intervalMs option must be a positive integer.');
    this.#log = o.log;
    this.#clock = o.clock;
    this.#lines = lines;
    this.#intervalMs = intervalMs;
  }

  /** Calls `write` when lines of `kind` are left in this interval, else counts the line as suppressed. */
  hit(kind: string, write: () => void, o?: HitOptions): void {
    const now = this.#clock.now();
    let w = this.#windows.get(kind);
    if (w !== undefined && now - w.start >= this.#intervalMs) {
      // Over (its summary's timer, if any, has not run yet: it is written now, in order).
      this.#summarize(kind, w);
      w = undefined;
    }
    if (w === undefined) {
      w = { start: now, written: 0, suppressed: 0, summary: undefined, audit: o?.audit === true, level: o?.level ?? (o?.audit === true ? 'info' : 'warn') };
      this.#windows.set(kind, w);
    }
    if (w.written < this.#lines) {
      w.written++;
      write();
      return;
    }
    if (w.suppressed++ === 0) {
      const window = w;
      w.summary = this.#clock.setTimer(() => this.#summarize(kind, window), w.start + this.#intervalMs - now);
    }
  }

  /** Ends `w`'s interval: one line with the count left out, if any. */
  #summarize(kind: string, w: Window): void {
    w.summary?.cancel();
    w.summary = undefined;
    if (this.#windows.get(kind) === w) this.#windows.delete(kind);
    const suppressed = w.suppressed;
    if (suppressed === 0) return;
    w.suppressed = 0;
    const fields = { event: 'log lines suppressed', line: kind, suppressed, interval_ms: this.#intervalMs };
    this.#log[w.level](w.audit ? { audit: true, ...fields } : fields, `${suppressed} more "${kind}" lines in ${this.#intervalMs / 1000} s were not written`);
  }
}
