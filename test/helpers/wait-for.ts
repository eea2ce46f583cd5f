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
