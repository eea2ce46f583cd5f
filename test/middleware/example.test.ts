import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SERVICE_KEY } from '../ws/helpers.js';
import { ensureBuilt, killAll, ROOT, spawnServer } from '../ws/process.js';

/**
 * examples/middleware.mjs (the README's "complete Express application"), run from the
 * repository against a gateway process: what its error handler answers when a helper throws.
 */

const children = new Set<ChildProcess>();
afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await killAll();
});

/** Runs the example; resolves with where it listens. */
function startExample(gatewayUrl: string): Promise<string> {
  const child = spawn(process.execPath, [join(ROOT, 'examples', 'middleware.mjs')], {
    cwd: ROOT,
    env: { ...process.env, GATEWAY_URL: gatewayUrl, GATEWAY_SERVICE_KEY: SERVICE_KEY, PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the example did not start: ${out}`)), 15_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /app listening at (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the example exited (${code}): ${out}`));
    });
  });
}

/** No stack trace, no error name: a short text/plain answer. */
async function expectPlain(r: Response, status: number, text: string): Promise<void> {
  expect(r.status).toBe(status);
  expect(r.headers.get('content-type')).toMatch(/^text\/plain/);
  expect(await r.text()).toBe(text);
}

describe('examples/middleware.mjs: helper errors as answers', () => {
  it('a second /promote of one cookie gets 401, a login while the gateway is down 503 with Retry-After; never a stack trace', async () => {
    ensureBuilt();
    const gateway = await spawnServer({ GATEWAY_SERVICE_KEY: SERVICE_KEY });
    const at = await startExample(gateway.url);
    const login = await fetch(`${at}/login`, { method: 'POST', body: new URLSearchParams({ user: 'alice' }), redirect: 'manual' });
    expect(login.status).toBe(303);
    const cookie = { cookie: login.headers.getSetCookie()[0]!.split(';')[0]! };
    expect((await fetch(`${at}/me`, { headers: cookie })).status).toBe(200); // cached: the promotions below pass the middleware
    const promotions = await Promise.all(Array.from({ length: 4 }, () => fetch(`${at}/promote`, { method: 'POST', headers: cookie })));
    expect(promotions.filter((r) => r.status === 200)).toHaveLength(1);
    // The others: refused by the middleware (the old id already ended) or by regenerate (NO_SESSION), the same way.
    for (const r of promotions.filter((p) => p.status !== 200)) await expectPlain(r, 401, 'Not signed in');

    gateway.child.kill('SIGKILL');
    await gateway.exited;
    // Once the example has seen the link close, its middleware answers 503.
    await expect.poll(async () => (await fetch(`${at}/me`, { headers: cookie })).status, { timeout: 10_000 }).toBe(503);
    const down = await fetch(`${at}/login`, { method: 'POST', body: new URLSearchParams({ user: 'bob' }), redirect: 'manual' });
    expect(down.headers.get('retry-after')).toBe('1');
    await expectPlain(down, 503, 'Session service unavailable');
  }, 60_000);

  it('a login without a user name is refused (400), whatever the body, and signs nobody in', async () => {
    ensureBuilt();
    const gateway = await spawnServer({ GATEWAY_SERVICE_KEY: SERVICE_KEY });
    const at = await startExample(gateway.url);
    const refused = 'The gateway refused the request: Field "user_id" must be a non-empty string of at most 256 characters';
    for (const init of [
      { body: new URLSearchParams() },
      { body: new URLSearchParams({ name: 'alice' }) },
      { body: '{"user":"alice"}', headers: { 'content-type': 'application/json' } },
      {},
    ]) {
      const r = await fetch(`${at}/login`, { method: 'POST', redirect: 'manual', ...init });
      expect(r.headers.getSetCookie(), JSON.stringify(init)).toEqual([]);
      await expectPlain(r, 400, refused);
    }
  }, 60_000);
});
