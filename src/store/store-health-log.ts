import type { Logger } from '../log.js';

/**
 * The database's own refusal, when `err` is one that waiting does not cure: SQLSTATE class 42
 * (an existing table of another shape, a missing privilege) or 3F (a schema it will not make).
 * Its message names objects, never a value.
 */
function sqlRefusal(err: unknown): string | undefined {
  const { code, message } = (err ?? {}) as { code?: unknown; message?: unknown };
  if (typeof code !== 'string' || !/^(42|3F)[0-9A-Z]{3}$/.test(code) || typeof message !== 'string') return undefined;
  return `${code}: ${message.slice(0, 200)}`;
}

/**
 * The log of a remote store's health: one line per change of state (down, up), carrying the
 * last error the client reported (a refused password, a refused connection, a time-out), so
 * the line says why, not only that. Per-request failures are counted in the metrics instead.
 */
export class StoreHealthLog {
  readonly #log: Logger | undefined;
  readonly #where: string;
  #cause: unknown;

  constructor(log: Logger | undefined, where: string) {
    this.#log = log;
    this.#where = where;
  }

  /** Remembers the latest failure of the client (connection errors, failed probes). */
  readonly note = (err: unknown): void => {
    this.#cause = err;
  };

  /** `p`, with its failure remembered as the cause. */
  watch<T>(p: Promise<T>): Promise<T> {
    return p.catch((err: unknown) => {
      this.#cause = err;
      throw err;
    });
  }

  #err(fallback: string): { err: unknown } {
    return { err: this.#cause ?? new Error(fallback) };
  }

  notYet(waitedMs: number): void {
    const refusal = sqlRefusal(this.#cause);
    if (refusal !== undefined) {
      // It answered: waiting will not help until an operator changes the database or the URL.
      this.#log?.error(
        { store: this.#where, err: this.#cause },
        `${this.#where} answered, but the gateway's tables cannot be set up (${refusal}): every store operation answers error 11 until they can`,
      );
      return;
    }
    this.#log?.warn(
      { store: this.#where, ...this.#err(`no answer within ${waitedMs} ms`) },
      `${this.#where} is not reachable yet: every store operation answers error 11 until it is`,
    );
  }

  down(timeoutMs: number): void {
    const refusal = sqlRefusal(this.#cause);
    if (refusal !== undefined) {
      // It answers, but not as the gateway needs: the cause is the operator's to remove.
      this.#log?.error(
        { store: this.#where, err: this.#cause },
        `${this.#where} answered, but the gateway's tables cannot be used (${refusal}): answering error 11 until they can (tables that are gone are made again)`,
      );
      return;
    }
    this.#log?.warn(
      { store: this.#where, ...this.#err(`health probe: no answer within ${timeoutMs} ms`) },
      `${this.#where} unreachable: answering error 11 until it returns`,
    );
  }

  timedOut(timeoutMs: number): void {
    this.#log?.warn(
      { store: this.#where, err: new Error(`store operation timed out after ${timeoutMs} ms`) },
      `${this.#where} did not answer in time: answering error 11 until a probe succeeds`,
    );
  }

  up(): void {
    this.#cause = undefined;
    this.#log?.info({ store: this.#where }, `${this.#where} reachable again`);
  }
}
