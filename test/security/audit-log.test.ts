/**
 * The audit log (OWASP logging, ASVS V16 / V7): a full workload through a real stdio node at
 * GATEWAY_LOG_LEVEL=trace. Every life-cycle event is logged as a pino JSON line, with salted
 * references in place of ids, and no session id, token, jti, family id, store key or secret
 * appears anywhere in stderr, nor on stdout outside the replies that carry them by design.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, spawnStdio, type Envelope, type StdioNode } from './spawn.js';

const SECRET = '8XwZo3HzmXrKKv12OebtC9Z7Cx3QlaImJnyytuqNHzE=';

let node: StdioNode;
const secrets = new Set<string>();
const refs = new Set<string>();
let exitCode: number | null = null;

function keep(label: string, value: unknown): void {
  if (typeof value !== 'string' || value.length < 12) throw new Error(`${label}: expected a secret value, got ${String(value)}`);
  secrets.add(value);
}

/** An access token: itself, its payload and signature segments, its jti. */
function keepToken(token: unknown): void {
  keep('access token', token);
  const [, p, s] = (token as string).split('.') as [string, string, string];
  keep('payload segment', p);
  keep('signature', s);
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
  keep('jti', claims.jti);
  if (claims.sid_hash !== undefined) keep('binding claim', claims.sid_hash);
}

/** A refresh token: itself, its family id and its secret part. */
function keepRefresh(token: unknown): void {
  keep('refresh token', token);
  const [fam, rest] = (token as string).split('.');
  keep('family', fam);
  keep('refresh secret', rest);
}

/** A session id and the store key derived from it (also its list handle). */
function keepSession(id: unknown): void {
  keep('session id', id);
  keep(
    'session store hash',
    createHash('sha256')
      .update(id as string)
      .digest('base64url'),
  );
}

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error('dist/cli.js is missing: run `make build` (or `npx tsc -p .`) first');
  node = spawnStdio({ GATEWAY_JWT_SECRET: SECRET, GATEWAY_LOG_LEVEL: 'trace', GATEWAY_SESSION_IDLE_TIMEOUT: '0' });
  keep('secret', SECRET);
  const call = node.call.bind(node);

  expect((await call({ type: 'init', node_id: 'n1', node_ids: ['n1'] })).type).toBe('init_ok');
  // Sessions: create, validate, subscribe, regenerate, exchange, list, destroy by handle, revoke, destroy.
  const a1 = await call({ type: 'create_session', user_id: 'alice', data: { theme: 'dark' } });
  keepSession(a1.session_id);
  const a2 = await call({ type: 'create_session', user_id: 'alice' });
  keepSession(a2.session_id);
  const b1 = await call({ type: 'create_session', user_id: 'bob', ttl: 60 });
  keepSession(b1.session_id);
  const b2 = await call({ type: 'create_session', user_id: 'bob' });
  keepSession(b2.session_id);
  expect((await call({ type: 'validate_session', session_id: a1.session_id })).type).toBe('session_valid');
  expect((await call({ type: 'subscribe_session', session_id: a1.session_id }, 'watcher')).type).toBe('subscribed');
  const r = await call({ type: 'regenerate_session', old_session_id: a1.session_id });
  keepSession(r.new_session_id);
  expect((await call({ type: 'validate_session', session_id: a1.session_id })).type).toBe('session_invalid');

  // Tokens bound to the session: verify, refresh, reuse (family revoked).
  const x = await call({ type: 'exchange_session', session_id: r.new_session_id });
  keepToken(x.access_token);
  keepRefresh(x.refresh_token);
  expect((await call({ type: 'verify_token', token: x.access_token })).type).toBe('token_valid');
  const xr = await call({ type: 'refresh_token', refresh_token: x.refresh_token });
  keepToken(xr.access_token);
  keepRefresh(xr.refresh_token);
  expect((await call({ type: 'refresh_token', refresh_token: x.refresh_token })).type).toBe('token_invalid');
  expect((await call({ type: 'verify_token', token: xr.access_token })).type).toBe('token_invalid');

  // Unbound tokens: generate, verify, revoke access, revoke refresh.
  const g = await call({ type: 'generate_access_token', payload: { sub: 'carol', roles: ['user'] } });
  keepToken(g.access_token);
  keepRefresh(g.refresh_token);
  expect((await call({ type: 'verify_token', token: g.access_token })).type).toBe('token_valid');
  expect((await call({ type: 'revoke_token', token: g.access_token })).type).toBe('token_revoked');
  expect((await call({ type: 'verify_token', token: g.access_token })).type).toBe('token_invalid');
  expect((await call({ type: 'revoke_token', token: g.refresh_token })).type).toBe('token_revoked');
  expect((await call({ type: 'refresh_token', refresh_token: g.refresh_token })).type).toBe('token_invalid');
  // A token bound to a session that then ends.
  const y = await call({ type: 'exchange_session', session_id: a2.session_id });
  keepToken(y.access_token);
  keepRefresh(y.refresh_token);

  // Forgeries carrying real material: tampered claims, wrong key.
  const [h64, p64, s64] = (g.access_token as string).split('.');
  const tampered = `${h64}.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p64!, 'base64url').toString()), sub: 'root' })).toString('base64url')}.${s64}`;
  keep('tampered token', tampered);
  expect((await call({ type: 'verify_token', token: tampered })).type).toBe('token_invalid');
  expect((await call({ type: 'verify_token', token: `${x.access_token as string}x` })).type).toBe('token_invalid');

  // Bad messages that carry ids: unknown type, wrong field types, broken JSON, oversized.
  expect((await call({ type: 'launch_rockets', session_id: a2.session_id, token: g.access_token })).type).toBe('error');
  expect((await call({ type: 'validate_session', session_id: 1, note: a2.session_id })).type).toBe('error');
  expect((await call({ type: 'refresh_token', refresh_token: [xr.refresh_token] })).type).toBe('error');
  node.write(`{"src":"c1","dest":"gateway","body":{"type":"validate_session","session_id":"${a2.session_id as string}"\n`);
  node.write(
    `${JSON.stringify({ src: 'c1', dest: 'gateway', body: { type: 'validate_session', msg_id: 9999, session_id: `${a2.session_id as string}${'z'.repeat(70_000)}` } })}\n`,
  );

  // Lists and ends.
  const list = await call({ type: 'list_sessions', user_id: 'alice' });
  expect(list.type).toBe('sessions');
  // Every one of alice's sessions ends by its handle (the list's order is not the creation order).
  const handles = (list.sessions as { handle: string }[]).map((s) => s.handle);
  expect(handles).toHaveLength(2);
  for (const handle of handles) expect((await call({ type: 'destroy_session_handle', user_id: 'alice', handle })).type).toBe('session_destroyed');
  expect((await call({ type: 'revoke_user_sessions', user_id: 'bob', except_session_id: b2.session_id })).type).toBe('sessions_revoked');
  expect((await call({ type: 'destroy_session', session_id: b2.session_id })).type).toBe('session_destroyed');
  expect((await call({ type: 'destroy_session', session_id: r.new_session_id })).type).toBe('session_destroyed');
  expect((await call({ type: 'verify_token', token: y.access_token })).type).toBe('token_invalid');
  expect((await call({ type: 'unsubscribe_session', session_id: a1.session_id }, 'watcher')).type).toBe('unsubscribed');
  exitCode = await node.end();
  for (const l of node.stderr) {
    for (const v of Object.values(JSON.parse(l) as Record<string, unknown>)) if (typeof v === 'string' && /^[A-Za-z0-9_-]{16}$/.test(v)) refs.add(v);
  }
}, 30_000);

afterAll(() => node?.kill());

describe('audit log of a full workload (spawned stdio node, trace level)', () => {
  it('the node exited 0 and logged JSON lines only', () => {
    expect(exitCode).toBe(0);
    expect(node.stderr.length).toBeGreaterThan(20);
    for (const line of node.stderr) {
      const entry = JSON.parse(line) as Record<string, unknown>;
      expect(entry).toMatchObject({
        svc: 'auth-gateway',
        level: expect.stringMatching(/^(trace|debug|info|warn|error|fatal)$/),
        time: expect.any(String),
        msg: expect.any(String),
        node: 'gateway',
        pid: node.proc.pid,
        hostname: expect.any(String),
      });
    }
  });

  it('every session and token life-cycle event is there', () => {
    const events = new Set(node.stderr.map((l) => (JSON.parse(l) as { event?: string; msg: string }).event ?? (JSON.parse(l) as { msg: string }).msg));
    for (const e of [
      'session created',
      'session regenerated',
      'session ended',
      'user sessions revoked',
      'tokens issued',
      'tokens refreshed',
      'token family revoked',
      'token revoked',
      'token refused',
      'token verified',
      'bound tokens revoked',
    ]) {
      expect(events, e).toContain(e);
    }
  });

  it('security events are audit lines at info', () => {
    const audited = node.stderr.map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e.audit === true);
    const names = new Set(audited.map((e) => e.event));
    for (const e of ['user sessions revoked', 'token family revoked', 'refresh token reuse detected']) expect(names, e).toContain(e);
    for (const e of audited) expect(e.level).toBe('info');
  });

  it('the connection is logged open and closed (debug) under one id, which its lines carry', () => {
    const entries = node.stderr.map((l) => JSON.parse(l) as Record<string, unknown>);
    const opened = entries.filter((e) => e.event === 'connection opened');
    const closed = entries.filter((e) => e.event === 'connection closed');
    expect(opened).toHaveLength(1);
    expect(closed).toHaveLength(1);
    expect(opened[0]).toMatchObject({ level: 'debug', transport: 'stdio', conn: expect.stringMatching(/^c\d+$/) });
    expect(closed[0]!.conn).toBe(opened[0]!.conn);
  });

  it("the lines of the connection's requests carry its id, audit lines included", () => {
    const entries = node.stderr.map((l) => JSON.parse(l) as Record<string, unknown>);
    const conn = entries.find((e) => e.event === 'connection opened')!.conn;
    const caused = [
      'session created',
      'session regenerated',
      'session ended',
      'user sessions revoked',
      'tokens issued',
      'tokens refreshed',
      'token revoked',
      'token refused',
      'token verified',
      'refresh token reuse detected',
    ];
    const lines = entries.filter((e) => caused.includes(e.event as string));
    expect(new Set(lines.map((e) => e.event))).toEqual(new Set(caused));
    for (const e of lines) expect(e, String(e.event)).toMatchObject({ conn });
    // The reuse's revocation is this connection's doing; a bound session's end revokes its families on its own.
    expect(entries.filter((e) => e.event === 'token family revoked' && e.reason === 'refresh token reused')).toEqual([expect.objectContaining({ conn })]);
  });

  it('ids appear as salted references, not as values or store keys', () => {
    const created = node.stderr.map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e.event === 'session created');
    expect(created).toHaveLength(4);
    for (const e of created) expect(e.session).toMatch(/^[A-Za-z0-9_-]{16}$/);
    // The same session keeps the same reference through its life (traceable), different sessions differ.
    expect(new Set(created.map((e) => e.session)).size).toBe(4);
    expect(refs.size).toBeGreaterThan(4);
  });

  it('no session id, token, jti, family, store key or secret in any log line', () => {
    expect(secrets.size).toBeGreaterThan(40);
    const log = node.stderr.join('\n');
    for (const s of secrets) expect(log.includes(s), `log leaks a value of length ${s.length}`).toBe(false);
  });

  it('stdout holds protocol messages only; no error or push text carries a secret', () => {
    for (const line of node.stdout) {
      const m = JSON.parse(line) as Envelope;
      expect(typeof m.src).toBe('string');
      expect(typeof m.body.type).toBe('string');
      const isReply = typeof m.body.in_reply_to === 'number';
      const isPush = !isReply && typeof m.body.msg_id === 'number';
      const isUnaddressedError = m.body.type === 'error' && !isReply;
      expect(isReply || isPush || isUnaddressedError).toBe(true);
      if (m.body.type === 'error' || m.body.type === 'token_invalid' || m.body.type === 'session_invalid') {
        for (const s of secrets) expect(line.includes(s), `${m.body.type} echoes a secret`).toBe(false);
      }
    }
    // The pushes to the watcher name only the session it subscribed to.
    const pushes = node.stdout.map((l) => JSON.parse(l) as Envelope).filter((m) => m.dest === 'watcher' && m.body.in_reply_to === undefined);
    expect(pushes.map((m) => m.body.reason)).toEqual(['regenerated']);
  });
});
