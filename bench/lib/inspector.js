// A full garbage collection in another process, through the DevTools protocol of a process
// started with `--inspect=127.0.0.1:<port>`: so that a memory reading counts what the process
// holds, not how far its heap had grown since the last collection.
import { WebSocket } from 'ws';
import { sleep } from './proc.js';

/**
 * Collects every unreachable object in the process inspected on `port`, then waits `settleMs`
 * for the pages freed to be handed back to the system (V8 unmaps some on a background thread).
 * @param {number} port
 */
export async function collectGarbage(port, settleMs = 500) {
  const targets = /** @type {{ webSocketDebuggerUrl: string }[]} */ (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json());
  const url = targets[0]?.webSocketDebuggerUrl;
  if (url === undefined) throw new Error(`no inspector target on port ${port}`);
  const ws = new WebSocket(url);
  try {
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const answered = new Promise((resolve, reject) => {
      ws.on('message', (data) => {
        const m = JSON.parse(data.toString());
        if (m.id !== 1) return;
        if (m.error) reject(new Error(`HeapProfiler.collectGarbage: ${m.error.message}`));
        else resolve(undefined);
      });
      ws.once('close', () => reject(new Error('the inspector closed before answering')));
    });
    ws.send(JSON.stringify({ id: 1, method: 'HeapProfiler.collectGarbage' }));
    await answered;
  } finally {
    ws.close();
  }
  await sleep(settleMs);
}
