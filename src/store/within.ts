/**
 * Waits for `p` at most `ms`; true when it settled successfully in time. The timer is
 * cleared either way and never keeps the process alive. As in Deadlines, the time limit gives
 * up only once the sockets of the turn in which it passes have been read (`setImmediate`):
 * an answer that came in time is not failed because this process was busy.
 */
export async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => setImmediate(() => resolve(false)), ms);
    timer.unref();
  });
  try {
    return await Promise.race([
      p.then(
        () => true,
        () => false,
      ),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
