/**
 * The gateway as an attacker meets it: configured from GATEWAY_* variables through
 * loadConfig/createApp, spoken to in JSON lines through the stdio transport (PassThrough
 * streams, in process), on a ManualClock so that expiry is tested without sleeping.
 */
import { constants, createHmac, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { createApp } from '../../src/app.js';
import { ManualClock } from '../../src/clock.js';
import { loadConfig } from '../../src/config.js';
import type { Gateway } from '../../src/gateway.js';
import { createLogger, silentLogger, type Logger } from '../../src/log.js';
import { runStdio } from '../../src/transports/stdio.js';

export const SECRET = 'bD5QHADs5XMfmePslrVbCX87SNk5OC50ltUuKN/DUvw=';
export const OTHER_SECRET = '5PiHU3DrjlUkSLzVqQgZs3zKvKBjTShfnZ9X/OvUCD8=';

export type Body = Record<string, unknown> & { type: string };
export interface Envelope {
  src: string;
  dest: string;
  body: Body;
}

/** A logger that keeps its JSON lines, for tests that read the log. */
export function captureLogger(level = 'trace'): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: createLogger(level, { write: (s: string) => void lines.push(s) }), lines };
}

/** Lets queued promise callbacks and a few macrotask turns run. */
export async function settle(turns = 4): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((r) => setImmediate(r));
}

export interface Harness {
  gateway: Gateway;
  clock: ManualClock;
  /** Every message the gateway wrote, in order. */
  out: Envelope[];
  /** Sends a request from `src` and resolves with its one reply body. */
  call(body: Body, src?: string): Promise<Body>;
  /** Writes one raw line. */
  line(text: string): void;
  /** Messages to `dest` that answer nothing (pushes). */
  pushesTo(dest: string): Envelope[];
  close(): Promise<void>;
}

/** Starts a gateway with `env` on top of a fixed HS256 secret. */
export async function startGateway(env: Record<string, string | undefined> = {}, o: { clock?: ManualClock; log?: Logger } = {}): Promise<Harness> {
  const clock = o.clock ?? new ManualClock();
  const config = loadConfig({ GATEWAY_JWT_SECRET: SECRET, GATEWAY_LOG_SALT: 'aKzd3LJaQQ0Rtk9hwfjcfNnq40LxeqJMvnA3HaaEg2o=', ...env });
  const { gateway } = await createApp(config, { clock, log: o.log ?? silentLogger() });
  const input = new PassThrough();
  const output = new PassThrough();
  const out: Envelope[] = [];
  const waiting = new Map<number, (b: Body) => void>();
  let rest = '';
  output.on('data', (chunk: Buffer) => {
    rest += chunk.toString('utf8');
    let nl: number;
    while ((nl = rest.indexOf('\n')) >= 0) {
      const m = JSON.parse(rest.slice(0, nl)) as Envelope;
      rest = rest.slice(nl + 1);
      out.push(m);
      const id = m.body.in_reply_to;
      if (typeof id === 'number') waiting.get(id)?.(m.body);
    }
  });
  const done = runStdio(gateway, input, output, { maxMessageBytes: config.maxMessageBytes });
  let seq = 0;
  return {
    gateway,
    clock,
    out,
    call(body, src = 'c1') {
      const msg_id = ++seq;
      return new Promise<Body>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no reply to ${body.type} (msg_id ${msg_id})`)), 5000);
        waiting.set(msg_id, (b) => {
          clearTimeout(t);
          waiting.delete(msg_id);
          resolve(b);
        });
        input.write(`${JSON.stringify({ src, dest: 'gateway', body: { ...body, msg_id } })}\n`);
      });
    },
    line(text) {
      input.write(`${text}\n`);
    },
    pushesTo(dest) {
      return out.filter((m) => m.dest === dest && m.body.in_reply_to === undefined);
    },
    async close() {
      input.end();
      await done;
      await gateway.close();
    },
  };
}

export const b64url = (v: unknown): string => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** A JWS compact token: HMAC for HS*, node:crypto signatures for RS/PS/ES/EdDSA. */
export function jwt(header: Record<string, unknown>, payload: Record<string, unknown> | string, key: string | Buffer | KeyObject = SECRET): string {
  const head = `${b64url(header)}.${b64url(payload)}`;
  const alg = String(header.alg);
  const hmac = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' }[alg];
  if (hmac)
    return `${head}.${createHmac(hmac, key as string | Buffer)
      .update(head)
      .digest('base64url')}`;
  const k = key as KeyObject;
  const hash = alg === 'EdDSA' ? null : `sha${alg.slice(2)}`;
  const opts = alg.startsWith('PS')
    ? { key: k, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }
    : alg.startsWith('ES')
      ? { key: k, dsaEncoding: 'ieee-p1363' as const }
      : k;
  return `${head}.${cryptoSign(hash, Buffer.from(head), opts).toString('base64url')}`;
}

/** Claims a gateway-issued token would carry, at the clock's time. */
export function claims(clock: ManualClock, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const iat = Math.floor(clock.now() / 1000);
  return { sub: 'user123', iat, exp: iat + 900, jti: `jti-${Math.random().toString(36).slice(2)}`, ...extra };
}

/** Decodes a token's payload segment (no checks). */
export function payloadOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

/** Decodes a token's header segment (no checks). */
export function headerOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

/** The runner's `$malleate`: same signature bytes, other text (flips a spare low bit of the last character). */
export function malleate(token: string): string {
  const abc = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  return token.slice(0, -1) + abc[abc.indexOf(token.at(-1)!) ^ 1];
}
