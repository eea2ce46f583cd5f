/**
 * Heap in use after two full collections. V8's gc is exposed at run time (no --expose-gc flag on
 * the test runner needed), so a heap check always runs and asserts: never `if (global.gc)`.
 */
export async function heapAfterGc(): Promise<number> {
  const { setFlagsFromString } = await import('node:v8');
  const { runInNewContext } = await import('node:vm');
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}
