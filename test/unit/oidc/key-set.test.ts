/**
 * The IdP's key set fetched by URL: what a failed fetch leaves in the error the logout route
 * logs. fetch() quotes the URL in some of its errors; a credential in it never reaches the log.
 */
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JSONWebKeySet } from 'jose';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { loadConfig, redactUrlsIn } from '../../../src/config.js';
import { ConfigError } from '../../../src/errors.js';
import {
  idpKeySet,
  JWKS_COOLDOWN_MS,
  JWKS_RETRY_MS,
  KeySetAnswerRefused,
  KeySetBackoff,
  keySetUnavailable,
  MAX_JWKS_BYTES,
} from '../../../src/oidc/key-set.js';
import { waitForCount } from '../../helpers/wait-for.js';
import { SECRET } from '../harness.js';

const PASSWORD = 'JwksPassw0rdXYZ';
const HEADER = { alg: 'RS256', kid: 'k1' };
const TOKEN = { payload: new Uint8Array(), signature: new Uint8Array() } as unknown as Parameters<ReturnType<typeof idpKeySet>>[1];

/** The error the key set throws for `url`. */
async function failureOf(url: string): Promise<Error> {
  const keys = idpKeySet({ url });
  return thrownBy(keys, HEADER);
}

/** What `keys` throws for a token with `header`. */
async function thrownBy(keys: ReturnType<typeof idpKeySet>, header: { alg: string; kid?: string }): Promise<Error> {
  let thrown: unknown;
  try {
    await keys(header, TOKEN);
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(Error);
  return thrown as Error;
}

describe('the key set fetched by URL', () => {
  it('a fetch error that quotes the URL has its user and password masked, in the message, the stack and the causes', async () => {
    const err = await failureOf(`http://admin:${PASSWORD}@127.0.0.1:1/jwks`);
    expect(keySetUnavailable(err)).toBe(true);
    expect(err.message).toContain('http://***@127.0.0.1:1/jwks');
    expect(err.message).not.toContain(PASSWORD);
    expect(err.stack ?? '').not.toContain(PASSWORD);
    expect(String((err.cause as Error | undefined)?.message ?? '')).not.toContain(PASSWORD);
  });
});

describe('redactUrlsIn', () => {
  it('masks the user and password of every URL in a text, and a password given as an option', () => {
    expect(redactUrlsIn(`Request cannot be constructed from a URL that includes credentials: http://admin:${PASSWORD}@idp:8080/jwks`)).toBe(
      'Request cannot be constructed from a URL that includes credentials: http://***@idp:8080/jwks',
    );
    expect(redactUrlsIn('a https://u@a.example/x and redis://:p@ss@r:6379/0 then b')).toBe('a https://***@a.example/x and redis://***@r:6379/0 then b');
    expect(redactUrlsIn('GET https://idp/jwks?password=Hunter2&x=1 failed')).toBe('GET https://idp/jwks?password=***&x=1 failed');
    expect(redactUrlsIn('GET https://idp/jwks?token=QUERYSECRET&x=1 failed')).toBe('GET https://idp/jwks?token=***&x=1 failed');
    expect(redactUrlsIn('"https://idp/jwks?tenant=t&client_secret=S3cr3t" refused')).toBe('"https://idp/jwks?tenant=t&client_secret=***" refused');
    expect(redactUrlsIn('fetch failed (ECONNREFUSED 127.0.0.1:1)')).toBe('fetch failed (ECONNREFUSED 127.0.0.1:1)');
  });
});

describe('GATEWAY_OIDC_JWKS with a user or password', () => {
  it('is refused at start-up with one line that does not repeat the value', () => {
    const env = { GATEWAY_JWT_SECRET: SECRET, GATEWAY_OIDC_ISSUER: 'https://idp', GATEWAY_OIDC_AUDIENCE: 'app' };
    for (const jwks of [`http://admin:${PASSWORD}@127.0.0.1:1/jwks`, `https://${PASSWORD}@idp.example/certs`, `https://:${PASSWORD}@idp.example/certs`]) {
      expect(() => loadConfig({ ...env, GATEWAY_OIDC_JWKS: jwks }), jwks).toThrow(
        new ConfigError('GATEWAY_OIDC_JWKS must not hold a user name or password: a JWK Set is public, and fetch() refuses such a URL'),
      );
    }
  });
});

/** One public key, made once for the file. */
async function publicSet(): Promise<JSONWebKeySet> {
  const { publicKey } = await generateKeyPair('ES256');
  return { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] };
}
let testSet: Promise<JSONWebKeySet> | undefined;

/** How the test endpoint answers `/jwks`. */
type Mode = 'set' | 'failing' | 'stream' | 'declared-large' | 'redirect';

/**
 * A key set endpoint of the test's own: the set, a 500, a body that streams without end (until
 * the reader goes away, bounded at 64 MiB), a Content-Length over the limit with nothing sent,
 * or a 302 to `/jwks-elsewhere` (which serves the set, and counts its requests).
 */
async function endpoint() {
  const set = await (testSet ??= publicSet());
  const state = { mode: 'set' as Mode, requests: 0, elsewhere: 0, streamed: 0, closed: 0 };
  const sendSet = (res: ServerResponse) => res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(set));
  const server = createServer((req, res) => {
    res.on('close', () => state.closed++);
    if (req.url === '/jwks-elsewhere') {
      state.elsewhere++;
      return sendSet(res);
    }
    state.requests++;
    if (state.mode === 'set') return sendSet(res);
    if (state.mode === 'failing') return res.writeHead(500).end();
    if (state.mode === 'redirect') return res.writeHead(302, { Location: '/jwks-elsewhere?secret=Loc4tionS3cret' }).end();
    if (state.mode === 'declared-large')
      return res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': String(MAX_JWKS_BYTES + 1) }).flushHeaders();
    // A body without end, chunked: 64 KiB at a time while the reader takes them.
    res.writeHead(200, { 'Content-Type': 'application/json' });
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    const pump = () => {
      while (!res.destroyed && state.streamed < 64 * MAX_JWKS_BYTES) {
        state.streamed += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      res.end();
    };
    res.write('{"keys":[');
    pump();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`;
  return { url, state };
}

const servers: ReturnType<typeof createServer>[] = [];
afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(
    servers.splice(0).map(
      (s) =>
        new Promise<void>((resolve) => {
          s.close(() => resolve());
          s.closeAllConnections();
        }),
    ),
  );
});

/** A key set on `url` with a clock the test moves and a log it reads. */
function keySet(url: string) {
  let t = 1_000_000;
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'trace' }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
  const keys = idpKeySet({ url }, { now: () => t, log });
  return { keys, lines, advance: (ms: number) => (t += ms) };
}

const KNOWN = { alg: 'ES256', kid: 'k1' };
const UNKNOWN = { alg: 'ES256', kid: 'k-forged' };

/** jose keeps its refetch cooldown on the wall clock: only Date is moved, past it. */
function pastJoseCooldown(): void {
  vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + JWKS_COOLDOWN_MS + 1_000 });
}

describe('the key set endpoint answers more than MAX_JWKS_BYTES', () => {
  it('a body that streams past the limit is cut off there (the connection closed), the set fetched before kept, one log line', async () => {
    const idp = await endpoint();
    const { keys, lines } = keySet(idp.url);
    expect(await keys(KNOWN, TOKEN)).toBeDefined();
    idp.state.mode = 'stream';
    pastJoseCooldown();
    const err = await thrownBy(keys, UNKNOWN);
    expect(err).toBeInstanceOf(KeySetAnswerRefused);
    expect((err as KeySetAnswerRefused).code).toBe('too_large');
    expect(keySetUnavailable(err)).toBe(true);
    expect(err.message).toBe(`the identity provider's key set answer is larger than ${MAX_JWKS_BYTES} bytes: refused`);
    // The reader went away soon after the limit: far from the 64 MiB the endpoint would send.
    await waitForCount(() => idp.state.closed, 2, 5_000, 'closed answers');
    expect(idp.state.streamed).toBeLessThan(16 * MAX_JWKS_BYTES);
    // The set fetched before still serves its keys.
    expect(await keys(KNOWN, TOKEN)).toBeDefined();
    expect(idp.state.requests).toBe(2);
    const failed = lines.filter((l) => l.event === 'jwks fetch failed');
    expect(failed).toEqual([
      expect.objectContaining({
        jwks: idp.url,
        kept: true,
        err: expect.objectContaining({ type: 'KeySetAnswerRefused', message: expect.stringContaining('larger than 1048576 bytes') }),
      }),
    ]);
  });

  it('a declared Content-Length over the limit is refused before any byte of the body is awaited', async () => {
    const idp = await endpoint();
    idp.state.mode = 'declared-large';
    const { keys } = keySet(idp.url);
    // Awaiting the body would end in the fetch's time limit (JWKSTimeout), 5 s from now.
    const err = await thrownBy(keys, KNOWN);
    expect(err).toBeInstanceOf(KeySetAnswerRefused);
    expect((err as KeySetAnswerRefused).code).toBe('too_large');
  });
});

describe('the key set endpoint answers a redirect', () => {
  it('is not followed: a failed fetch, logged as such without the Location, the set fetched before kept', async () => {
    const idp = await endpoint();
    const { keys, lines } = keySet(idp.url);
    expect(await keys(KNOWN, TOKEN)).toBeDefined();
    idp.state.mode = 'redirect';
    pastJoseCooldown();
    const err = await thrownBy(keys, UNKNOWN);
    expect(err).toBeInstanceOf(KeySetAnswerRefused);
    expect((err as KeySetAnswerRefused).code).toBe('redirect');
    expect(keySetUnavailable(err)).toBe(true);
    expect(err.message).toBe("the identity provider's key set answered 302 (a redirect, not followed): set GATEWAY_OIDC_JWKS to the URL that serves the set");
    expect(idp.state.elsewhere).toBe(0);
    expect(await keys(KNOWN, TOKEN)).toBeDefined();
    const failed = lines.filter((l) => l.event === 'jwks fetch failed');
    expect(failed).toEqual([expect.objectContaining({ err: expect.objectContaining({ message: expect.stringContaining('302 (a redirect, not followed)') }) })]);
    expect(JSON.stringify(lines)).not.toContain('Loc4tionS3cret');
  });

  it('a first fetch redirected leaves no set: every token is answered as unavailable', async () => {
    const idp = await endpoint();
    idp.state.mode = 'redirect';
    const { keys } = keySet(idp.url);
    expect(await thrownBy(keys, KNOWN)).toBeInstanceOf(KeySetAnswerRefused);
    expect(idp.state.elsewhere).toBe(0);
  });
});

describe('while a refetch of the set waits after a failure', () => {
  it('a token whose key the set fetched before holds is served from it; one naming a key it lacks is unavailable, without a request', async () => {
    const idp = await endpoint();
    const { keys, advance } = keySet(idp.url);
    expect(await keys(KNOWN, TOKEN)).toBeDefined();
    expect(idp.state.requests).toBe(1);
    // A forged token naming an unknown key, past jose's cooldown: a refetch, which fails.
    idp.state.mode = 'failing';
    pastJoseCooldown();
    expect(keySetUnavailable(await thrownBy(keys, UNKNOWN))).toBe(true);
    expect(idp.state.requests).toBe(2);
    // The wait after that failure: valid tokens are still judged by the keys already had.
    for (let i = 0; i < 3; i++) expect(await keys(KNOWN, TOKEN)).toBeDefined();
    expect(await thrownBy(keys, UNKNOWN)).toBeInstanceOf(KeySetBackoff);
    expect(idp.state.requests).toBe(2);
    advance(JWKS_RETRY_MS);
    expect(keySetUnavailable(await thrownBy(keys, UNKNOWN))).toBe(true);
    expect(idp.state.requests).toBe(3);
    expect(await keys(KNOWN, TOKEN)).toBeDefined();
  });

  it('a set never fetched: every token is unavailable (KeySetBackoff) during the wait', async () => {
    const idp = await endpoint();
    idp.state.mode = 'failing';
    const { keys } = keySet(idp.url);
    expect(keySetUnavailable(await thrownBy(keys, KNOWN))).toBe(true);
    expect(await thrownBy(keys, KNOWN)).toBeInstanceOf(KeySetBackoff);
    expect(idp.state.requests).toBe(1);
  });
});
