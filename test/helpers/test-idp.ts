/**
 * An identity provider of the tests' own, for back-channel logout: key pairs made here
 * (RS256, ES256, EdDSA), their public JWK Set served on a local HTTP port (requests counted)
 * or written to a file, and signed logout tokens on demand.
 *
 *   const idp = await startTestIdp();
 *   const gw = await start({ ...idp.gatewayEnv });            // GATEWAY_OIDC_* for the gateway
 *   create_session { user_id, idp_sid: 'sid-1', idp_sub: 'sub-1' }
 *   await postLogoutToken(gatewayHttpUrl, await idp.logoutToken({ sid: 'sid-1' }));  // 200
 */
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JSONWebKeySet, type JWK } from 'jose';

export const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

export type IdpAlg = 'RS256' | 'ES256' | 'EdDSA';

/**
 * Claims of a logout token. Defaults: `iss`, `aud`, `iat` (the IdP's clock), a fresh `jti` and
 * the back-channel logout `events`. A claim given as `undefined` is left out of the token.
 */
export interface LogoutClaims {
  sid?: string;
  sub?: string;
  iss?: string;
  aud?: string | string[];
  iat?: number;
  exp?: number;
  jti?: string;
  events?: unknown;
  nonce?: string;
  [claim: string]: unknown;
}

export interface SignOptions {
  /** Which of the IdP's keys signs (default RS256). */
  alg?: IdpAlg;
  /** Sign with a key of that alg that the JWK Set does not hold (a `kid` the gateway has never seen). */
  unpublished?: boolean;
}

export interface TestIdp {
  /** `iss` of its tokens. */
  readonly issuer: string;
  /** The `aud` it puts in its tokens (the gateway's client id at this IdP). */
  readonly audience: string;
  /** Where it serves its public JWK Set. */
  readonly jwksUrl: string;
  /** Its public JWK Set. */
  readonly jwks: JSONWebKeySet;
  /** Requests its JWK Set endpoint has served. */
  readonly jwksRequests: number;
  /** While true, its JWK Set endpoint answers 500 (requests still counted). */
  jwksFailing: boolean;
  /** The three GATEWAY_OIDC_* settings that point a gateway at this IdP (JWKS by URL). */
  readonly gatewayEnv: Record<string, string>;
  /** The IdP's clock, ms since epoch (option `now`; default Date.now): its tokens' `iat`. */
  now(): number;
  /** The same, in unix seconds. */
  seconds(): number;
  /** A signed logout token. */
  logoutToken(claims?: LogoutClaims, o?: SignOptions): Promise<string>;
  /** Writes the public JWK Set to `path` (for GATEWAY_OIDC_JWKS as a file). */
  writeJwksFile(path: string): void;
  /** Key rotation: the JWK Set now also holds the keys `unpublished: true` signs with. */
  publishNewKeys(): void;
  close(): Promise<void>;
}

interface IdpKey {
  kid: string;
  alg: IdpAlg;
  privateKey: CryptoKey;
  jwk: JWK;
}

async function makeKey(alg: IdpAlg): Promise<IdpKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, alg === 'EdDSA' ? { crv: 'Ed25519' } : {});
  const kid = `${alg.toLowerCase()}-${randomUUID().slice(0, 8)}`;
  return { kid, alg, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

/** Starts the IdP's JWK Set endpoint on 127.0.0.1 and makes its keys. */
export async function startTestIdp(o: { audience?: string; now?: () => number } = {}): Promise<TestIdp> {
  const algs: IdpAlg[] = ['RS256', 'ES256', 'EdDSA'];
  const published = await Promise.all(algs.map(makeKey));
  const unpublished = await Promise.all(algs.map(makeKey));
  const jwks: JSONWebKeySet = { keys: published.map((k) => k.jwk) };
  let jwksRequests = 0;
  const server: Server = createServer((req, res) => {
    if (req.url === '/jwks') {
      jwksRequests++;
      if (idp.jwksFailing) return res.writeHead(500).end();
      const body = JSON.stringify(jwks);
      res.writeHead(200, { 'Content-Type': 'application/jwk-set+json', 'Content-Length': Buffer.byteLength(body) });
      return res.end(body);
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const issuer = `${base}/realms/test`;
  const audience = o.audience ?? 'auth-gateway-test';
  const jwksUrl = `${base}/jwks`;
  const idp: TestIdp = {
    issuer,
    audience,
    jwksUrl,
    jwks,
    get jwksRequests() {
      return jwksRequests;
    },
    jwksFailing: false,
    gatewayEnv: { GATEWAY_OIDC_ISSUER: issuer, GATEWAY_OIDC_AUDIENCE: audience, GATEWAY_OIDC_JWKS: jwksUrl },
    now: o.now ?? (() => Date.now()),
    seconds: () => Math.floor(idp.now() / 1000),
    async logoutToken(claims: LogoutClaims = {}, s: SignOptions = {}): Promise<string> {
      const alg = s.alg ?? 'RS256';
      const key = (s.unpublished ? unpublished : published).find((k) => k.alg === alg)!;
      const defaults: LogoutClaims = {
        iss: issuer,
        aud: audience,
        iat: idp.seconds(),
        jti: randomUUID(),
        events: { [BACKCHANNEL_LOGOUT_EVENT]: {} },
      };
      const payload: Record<string, unknown> = { ...defaults, ...claims };
      for (const [name, value] of Object.entries(payload)) if (value === undefined) delete payload[name];
      return new SignJWT(payload).setProtectedHeader({ alg, kid: key.kid, typ: 'logout+jwt' }).sign(key.privateKey);
    },
    writeJwksFile(path: string) {
      writeFileSync(path, JSON.stringify(jwks));
    },
    publishNewKeys() {
      jwks.keys = [...published, ...unpublished].map((k) => k.jwk);
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  return idp;
}

/** What the gateway answered to a back-channel logout call. */
export interface LogoutAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** The body as text ('' for the 200). */
  text: string;
}

/**
 * POSTs to `${gatewayHttpUrl}/oidc/backchannel-logout` as an IdP does: the form-encoded
 * `logout_token` (or, with `raw`, exactly that body and content type).
 */
export function postLogoutToken(
  gatewayHttpUrl: string,
  token: string,
  raw?: { body: string | Buffer; contentType?: string; query?: string },
): Promise<LogoutAnswer> {
  const body = raw?.body ?? new URLSearchParams({ logout_token: token }).toString();
  const contentType = raw === undefined ? 'application/x-www-form-urlencoded' : raw.contentType;
  return new Promise((resolve, reject) => {
    const req = request(
      `${gatewayHttpUrl}/oidc/backchannel-logout${raw?.query ?? ''}`,
      { method: 'POST', headers: { ...(contentType !== undefined && { 'Content-Type': contentType }), 'Content-Length': Buffer.byteLength(body) } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
