/** Polls `list` (bounded) until an item matches `pred`; throws after `timeoutMs`. */
export async function waitForItem<T>(list: readonly T[], pred: (item: T) => boolean, timeoutMs: number, what = 'item'): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const found = list.find(pred);
    if (found !== undefined) return found;
    if (performance.now() > deadline) throw new Error(`no matching ${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/**
 * Polls `count()` until it reaches `atLeast`; throws after `timeoutMs`, naming how far it got.
 * For tests that need some work done before they act: wait for a count, not for a time.
 */
export async function waitForCount(count: () => number, atLeast: number, timeoutMs: number, what = 'items'): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const n = count();
    if (n >= atLeast) return n;
    if (performance.now() > deadline) throw new Error(`only ${n} of ${atLeast} ${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
