/**
 * A stop signal while `serve` or `stdio` is still starting (here: waiting for a store that
 * takes the connection and never answers, which start-up waits 2 s for) ends the process at
 * once with exit 0 and one line saying so, rather than killing it silently.
 */
import { spawn } from 'node:child_process';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitForCount } from '../helpers/wait-for.js';
import { CLI, ensureBuilt } from '../ws/process.js';

const SECRET = 'c0Vq3J9xQ2mK7tYb4nR8sLpW1eHd6uZa5fGj0kXo3cI=';
let silent: Server;
const sockets: Socket[] = [];

beforeAll(async () => {
  ensureBuilt();
  silent = createServer((socket) => sockets.push(socket));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
}, 120_000);
afterAll(() => {
  for (const s of sockets) s.destroy();
  silent?.close();
});

describe('a stop signal during start-up', () => {
  for (const [command, signal] of [
    ['serve', 'SIGTERM'],
    ['stdio', 'SIGINT'],
  ] as const) {
    it(`${command}, ${signal}: one line, exit 0, nothing served`, async () => {
      const child = spawn(process.execPath, [CLI, command], {
        env: {
          PATH: process.env.PATH ?? '',
          GATEWAY_STORE: `redis://127.0.0.1:${(silent.address() as AddressInfo).port}`,
          GATEWAY_JWT_SECRET: SECRET,
          GATEWAY_PORT: '0',
        },
      });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      let stdout = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
        child.once('exit', (code, sig) => resolve({ code, signal: sig })),
      );
      await waitForCount(() => (stderr.includes('auth-gateway starting') ? 1 : 0), 1, 15_000, 'the starting line');
      child.kill(signal);
      expect(await exited).toEqual({ code: 0, signal: null });
      const lines = stderr
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { msg: string; signal?: string });
      expect(lines.at(-1)).toMatchObject({ msg: 'stopping before start-up completed: nothing was served', signal });
      expect(lines.map((l) => l.msg)).not.toContain('listening');
      expect(stdout).toBe('');
    });
  }
});
