import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, ROOT } from '../ws/process.js';
import { ARGS } from '../e2e/browser.js';
import { CHROMIUM } from '../helpers/required.js';

/**
 * The package as a user gets it: `npm pack`, then `npm install <tarball>` into an empty
 * project, then each way in that the README shows, run from that project: the CLI through
 * npx, the Node client, the embedding API, and the browser module in Chromium. The README's
 * snippets are the files of examples/, which this test runs as they are.
 */

const run = promisify(execFile);
/** npm install from the warm cache takes 20-60 s on two busy cores; pack and install get far more. */
const INSTALL_TIMEOUT_MS = 300_000;
const EXAMPLES = ['backend.mjs', 'browser.js', 'embed.mjs', 'middleware.mjs'];
/** What the middleware example imports besides the package (the version the repository tests with). */
const EXPRESS = `express@${(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> }).devDependencies.express}`;

const scratch = mkdtempSync(join(tmpdir(), 'auth-gateway-pack-'));
const app = join(scratch, 'app');
const serviceKey = randomBytes(32).toString('base64');
const children = new Set<ChildProcess>();
let browser: Browser | undefined;

/** Starts `cmd` in the scratch project, in its own process group (so npx's child goes with it). */
function start(cmd: string, args: string[], env: Record<string, string> = {}): { child: ChildProcess; out: () => string; exited: Promise<number | null> } {
  const child = spawn(cmd, args, { cwd: app, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  children.add(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      children.delete(child);
      resolve(code);
    }),
  );
  return { child, out: () => out, exited };
}

/** Resolves with the first match of `re` in what `p` prints (rejects when it exits first or after `ms`). */
function waitFor(p: ReturnType<typeof start>, re: RegExp, ms = 30_000): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`not seen within ${ms} ms: ${re}\n${p.out()}`)), ms);
    const check = () => {
      const m = re.exec(p.out());
      if (m) done(undefined, m);
    };
    const done = (err?: Error, m?: RegExpExecArray) => {
      clearTimeout(timer);
      p.child.stdout!.off('data', check);
      p.child.stderr!.off('data', check);
      if (err) reject(err);
      else resolve(m!);
    };
    p.child.stdout!.on('data', check);
    p.child.stderr!.on('data', check);
    void p.exited.then((code) => done(new Error(`exited (${code}) before printing ${re}:\n${p.out()}`)));
    check();
  });
}

/** Runs a command in the scratch project to its end; stdin from `input`. */
async function complete(
  cmd: string,
  args: string[],
  o: { env?: Record<string, string>; input?: string } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(cmd, args, { cwd: app, env: { ...process.env, ...o.env }, stdio: ['pipe', 'pipe', 'pipe'] });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin.end(o.input ?? '');
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  children.delete(child);
  return { code, stdout, stderr };
}

let served: ReturnType<typeof start>;
let url: string;
let http: string;

beforeAll(async () => {
  ensureBuilt();
  // The build is done (and current): pack it as it is rather than have prepack rebuild it under other tests.
  await run('npm', ['pack', '--ignore-scripts', '--pack-destination', scratch], { cwd: ROOT, timeout: INSTALL_TIMEOUT_MS });
  const tarball = readdirSync(scratch).find((f) => f.endsWith('.tgz'));
  expect(tarball, 'npm pack wrote no tarball').toBeDefined();
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'scratch', private: true, type: 'module' }));
  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', join(scratch, tarball!), EXPRESS], { cwd: app, timeout: INSTALL_TIMEOUT_MS });
  for (const f of EXAMPLES) writeFileSync(join(app, f), readFileSync(join(ROOT, 'examples', f)));

  served = start('npx', ['auth-gateway', 'serve', '--dev'], { GATEWAY_PORT: '0', GATEWAY_SERVICE_KEY: serviceKey, GATEWAY_EXPIRY_WARNING: '60' });
  url = (await waitFor(served, /"url":"(ws:\/\/[^"]+)"/))[1]!;
  http = url.replace(/^ws/, 'http').replace(/\/$/, '');
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
}, INSTALL_TIMEOUT_MS + 60_000);

afterAll(async () => {
  await browser?.close();
  await Promise.all(
    [...children].map((c) => {
      const gone = new Promise((r) => c.once('exit', r));
      // The whole group: npx runs the CLI as its own child.
      if (c.pid !== undefined) {
        try {
          process.kill(-c.pid, 'SIGKILL');
        } catch {
          c.kill('SIGKILL');
        }
      }
      return gone;
    }),
  );
  // The installed project's node_modules: as slow to delete as to install on two busy cores.
  rmSync(scratch, { recursive: true, force: true });
}, INSTALL_TIMEOUT_MS);

describe('the npm package, installed into an empty project', () => {
  it('README.md shows the examples this test runs, verbatim', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    for (const f of EXAMPLES) expect(readme, `examples/${f} in README.md`).toContain(readFileSync(join(ROOT, 'examples', f), 'utf8').trim());
  });

  it('declares engines, exports, types and files', () => {
    const pkg = JSON.parse(readFileSync(join(app, 'node_modules', 'auth-gateway', 'package.json'), 'utf8')) as Record<string, unknown>;
    expect(pkg.engines).toEqual({ node: '>=20.12' });
    expect(Object.keys(pkg.exports as object)).toEqual(expect.arrayContaining(['.', './client', './middleware']));
    expect(pkg.types).toBe('./dist/index.d.ts');
    // What a user runs and reads; not the sources, tests or benchmarks.
    const files = readdirSync(join(app, 'node_modules', 'auth-gateway'));
    expect(files).toEqual(expect.arrayContaining(['README.md', 'client', 'dist', 'package.json']));
    for (const dir of ['src', 'test', 'bench', 'scripts', 'examples']) expect(files).not.toContain(dir);
    expect(readdirSync(join(app, 'node_modules', 'auth-gateway', 'client'))).toEqual(['demo']);
  });

  it('`npx auth-gateway serve` answers /healthz and serves the demo', async () => {
    const health = await fetch(`${http}/healthz`);
    expect(health.status).toBe(200);
    const page = await fetch(`${http}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('/client/demo/demo.js');
  });

  it('the other commands run through npx: stdio, schema, connect, --help', async () => {
    const line = (body: object) => `${JSON.stringify({ src: 'c1', dest: 'gateway', body })}\n`;
    const stdio = await complete('npx', ['auth-gateway', 'stdio'], {
      input: line({ type: 'init', msg_id: 1, node_id: 'n1', node_ids: ['n1'] }),
      env: { GATEWAY_LOG_LEVEL: 'warn' },
    });
    expect(stdio.code, stdio.stderr).toBe(0);
    expect(JSON.parse(stdio.stdout)).toEqual({ src: 'gateway', dest: 'c1', body: { type: 'init_ok', in_reply_to: 1 } });

    const schema = await complete('npx', ['auth-gateway', 'schema']);
    expect(schema.code, schema.stderr).toBe(0);
    expect(Object.keys(JSON.parse(schema.stdout) as object).sort()).toEqual(['envelope', 'pushes', 'replies', 'requests']);

    const connect = await complete('npx', ['auth-gateway', 'connect', url], {
      input: line({ type: 'create_session', msg_id: 7, user_id: 'via-connect' }),
      env: { GATEWAY_SERVICE_KEY: serviceKey },
    });
    expect(connect.code, connect.stderr).toBe(0);
    expect(JSON.parse(connect.stdout)).toMatchObject({ body: { type: 'session_created', in_reply_to: 7 } });

    const help = await complete('npx', ['auth-gateway', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('usage: auth-gateway');
  }, 120_000);

  it("`auth-gateway/client` in Node: the README's backend example creates, validates and revokes a session", async () => {
    const r = await complete('node', ['backend.mjs'], { env: { GATEWAY_URL: url, GATEWAY_SERVICE_KEY: serviceKey } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^valid: user-42, 3600 s left\nrevoked 1\n$/);
  }, 60_000);

  it('`auth-gateway`, `auth-gateway/client` and `auth-gateway/middleware` come with types that type-check a strict TypeScript consumer', async () => {
    writeFileSync(
      join(app, 'check.ts'),
      [
        "import { GatewayClient, ErrorCodes, type SessionCreated, type SessionValid, type SessionInvalid } from 'auth-gateway/client';",
        "import { startGateway, replySchemas, type RunningGateway } from 'auth-gateway';",
        "import { GatewaySessions, GatewaySessionError, fastifySessions, type GatewaySession, type SessionRequest } from 'auth-gateway/middleware';",
        "import { createServer } from 'node:http';",
        'export async function check(c: GatewayClient): Promise<string> {',
        "  const created: SessionCreated = await c.createSession('u', { ttl: 60 });",
        '  const v: SessionValid | SessionInvalid = await c.validateSession(created.session_id);',
        '  const code: 12 = ErrorCodes.MALFORMED;',
        '  const g: RunningGateway = await startGateway({ port: 0 });',
        '  await g.close();',
        '  return `${v.type} ${code} ${Object.keys(replySchemas).length}`;',
        '}',
        '// @ts-expect-error: the types are real, not any: a user id is a string',
        'export const wrong = (c: GatewayClient) => c.createSession(42);',
        'export function serve(sessions: GatewaySessions): void {',
        '  const required = sessions.middleware();',
        '  const plugin = fastifySessions(sessions);',
        '  createServer((req, res) =>',
        '    required(req, res, (err) => {',
        '      const s: GatewaySession | null | undefined = (req as SessionRequest).session;',
        "      const code: 'UNAVAILABLE' | 'NO_SESSION' | 'REFUSED' | undefined = err instanceof GatewaySessionError ? err.code : undefined;",
        '      res.end(`${s?.user_id ?? code} ${s?.expires_in ?? 0} ${typeof plugin}`);',
        '    }),',
        '  );',
        '  // @ts-expect-error: login needs a user id',
        '  void sessions.login(createServer as never, { ttl: 60 });',
        '}',
        '',
      ].join('\n'),
    );
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const flags = ['--noEmit', '--strict', '--target', 'es2022', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--skipLibCheck'];
    const types = ['--typeRoots', join(ROOT, 'node_modules', '@types'), '--types', 'node'];
    const r = await complete('node', [tsc, ...flags, ...types, 'check.ts']);
    expect(r.stdout + r.stderr).toBe('');
    expect(r.code).toBe(0);
  }, 60_000);

  it("`auth-gateway/middleware`: the README's Express example logs in, serves the session, promotes, and logs out everywhere", async () => {
    const example = start('node', ['middleware.mjs'], { GATEWAY_URL: url, GATEWAY_SERVICE_KEY: serviceKey, PORT: '0' });
    const at = (await waitFor(example, /app listening at (http:\/\/\S+)/))[1]!;
    const login = await fetch(`${at}/login`, { method: 'POST', body: new URLSearchParams({ user: 'alice' }), redirect: 'manual' });
    expect(login.status).toBe(303);
    const line = login.headers.getSetCookie().find((c) => c.startsWith('sid='))!;
    // The middleware rounds the cookie's end up, plus a spare second: it never runs out before the session.
    expect(line).toMatch(/^sid=[A-Za-z0-9_-]{43}; Max-Age=3601; Path=\/; HttpOnly; SameSite=Lax$/);
    const cookie = { cookie: line.split(';')[0]! };
    expect(await (await fetch(`${at}/me`, { headers: cookie })).json()).toEqual({ user_id: 'alice', data: { role: 'reader' }, expires_in: expect.any(Number) });
    const promoted = await fetch(`${at}/promote`, { method: 'POST', headers: cookie });
    expect(await promoted.json()).toMatchObject({ user_id: 'alice', data: { role: 'admin' } });
    const fresh = { cookie: promoted.headers.getSetCookie()[0]!.split(';')[0]! };
    expect((await fetch(`${at}/me`, { headers: cookie })).status).toBe(401);
    expect(await (await fetch(`${at}/logout-everywhere`, { method: 'POST', headers: fresh })).json()).toEqual({ ended: 1 });
    expect((await fetch(`${at}/me`, { headers: fresh })).status).toBe(401);
    example.child.kill('SIGTERM');
    await example.exited;
  }, 60_000);

  it("`startGateway`: the README's embedding example serves, and stops on SIGTERM", async () => {
    const embedded = start('node', ['embed.mjs'], { GATEWAY_PORT: '0' });
    const at = (await waitFor(embedded, /gateway listening at (ws:\/\/\S+)/))[1]!;
    expect((await fetch(`${at.replace(/^ws/, 'http')}healthz`)).status).toBe(200);
    embedded.child.kill('SIGTERM');
    expect(await embedded.exited).toBe(0);
  }, 60_000);

  it("the browser module: the README's browser example is told the bound session's warning and end, in Chromium", async () => {
    // The example runs as a module in a page of the gateway's origin, so the session cookie goes
    // with the upgrade. The page is one the gateway serves (a fulfilled route would count as a
    // public page, which Chromium keeps from loopback); bypassCSP admits the inline module.
    const context = await browser!.newContext({ bypassCSP: true });
    // Long enough for the page to open and connect before the end on a busy machine: a page
    // that connects after it sees a dead cookie, not the end.
    const login = await context.request.post(`${http}/autosession`, { data: { ttl: 8 } });
    expect(login.status()).toBe(201);
    const page = await context.newPage();
    const logged: string[] = [];
    const errors: string[] = [];
    page.on('console', (m) => {
      // The bare page has no icon: Chromium's request for one is no error of the example.
      if (m.location().url.endsWith('/favicon.ico')) return;
      (m.type() === 'error' ? errors : logged).push(m.text());
    });
    page.on('pageerror', (e) => errors.push(e.message));
    const ended = page.waitForEvent('console', { predicate: (m) => m.text().startsWith('Session ended'), timeout: 30_000 });
    await page.goto(`${http}/healthz`);
    await page.addScriptTag({ type: 'module', content: readFileSync(join(app, 'browser.js'), 'utf8') });
    await ended;
    expect(logged).toEqual([expect.stringMatching(/^Your session ends in [1-8] s$/), 'Session ended: ttl']);
    // The gateway closes the bound socket with 4001; Chromium reports no other error.
    expect(errors).toEqual([]);
    await context.close();
  }, 45_000);

  it('the browser module: the demo page loads it from the installed package and connects, in Chromium', async () => {
    const page = await browser!.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${http}/`);
    await page.locator('#connection', { hasText: 'open' }).waitFor({ timeout: 15_000 });
    await page.fill('#ttl', '600');
    await page.click('#login');
    await page.locator('#user', { hasText: 'demo-user' }).waitFor({ timeout: 15_000 });
    await page.click('#logout');
    await page.locator('#notice', { hasText: 'reason: destroyed' }).waitFor({ state: 'visible', timeout: 15_000 });
    expect(errors).toEqual([]);
    await page.close();
  }, 45_000);
});
