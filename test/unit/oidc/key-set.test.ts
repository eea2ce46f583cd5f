/**
 * The IdP's key set fetched by URL: what a failed fetch leaves in the error the logout route
 * logs. fetch() quotes the URL in some of its errors; a credential in it never reaches the log.
 */
import { describe, expect, it } from 'vitest';
import { loadConfig, redactUrlsIn } from '../../../src/config.js';
import { ConfigError } from '../../../src/errors.js';
import { idpKeySet, keySetUnavailable } from '../../../src/oidc/key-set.js';
import { SECRET } from '../harness.js';

const PASSWORD = 'JwksPassw0rdXYZ';
const HEADER = { alg: 'RS256', kid: 'k1' };
const TOKEN = { payload: new Uint8Array(), signature: new Uint8Array() } as unknown as Parameters<ReturnType<typeof idpKeySet>>[1];

/** The error the key set throws for `url`. */
async function failureOf(url: string): Promise<Error> {
  const keys = idpKeySet({ url });
  let thrown: unknown;
  try {
    await keys(HEADER, TOKEN);
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
