import { vi } from 'vitest';

/** One hour, the skew the store tests give a node's clock. */
export const HOUR = 3_600_000;

/** `Date.now` as it reads without any skew. */
export const realNow = Date.now.bind(Date);

/**
 * Runs `fn` as a node whose clock is `offsetMs` off: every `Date.now()` of this process reads so
 * until `fn` settles. For stores that must judge time by their server's clock, not the caller's.
 */
export async function skewed<T>(offsetMs: number, fn: () => Promise<T>): Promise<T> {
  const spy = vi.spyOn(Date, 'now').mockImplementation(() => realNow() + offsetMs);
  try {
    return await fn();
  } finally {
    spy.mockRestore();
  }
}
