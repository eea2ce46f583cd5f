import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createConnection } from 'node:net';
import { freePort, sleep, start, stop } from './proc.js';

/** Sends one inline command and resolves with the first reply line. */
function command(port, line) {
  return new Promise((resolve, reject) => {
    const s = createConnection(port, '127.0.0.1');
    let out = '';
    s.on('data', (d) => {
      out += d;
      if (out.includes('\r\n')) {
        s.destroy();
        resolve(out.split('\r\n')[0]);
      }
    });
    s.on('error', reject);
    s.write(`${line}\r\n`);
  });
}

/**
 * The bench's own redis-server on a free port (never 6379): nothing persisted, its files
 * in a temporary folder. Resolves once it answers PING.
 */
export async function startRedis() {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'gw-bench-redis-'));
  const child = start('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--logfile', '']);
  for (let i = 0; ; i++) {
    try {
      if ((await command(port, 'PING')) === '+PONG') break;
    } catch {
      // not up yet
    }
    if (i > 100 || child.exitCode !== null) throw new Error(`redis-server did not start: ${child.stderrTail()}`);
    await sleep(50);
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    pid: child.pid,
    flush: () => command(port, 'FLUSHALL'),
    stop: async () => {
      await stop(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** One redis-server per bench run, shared by rows 4 and 5. */
export async function sharedRedis(ctx) {
  if (!ctx.redis) {
    ctx.redis = await startRedis();
    ctx.cleanups.push(() => ctx.redis.stop());
  }
  return ctx.redis;
}
