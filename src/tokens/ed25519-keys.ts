import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { MAX_KEY_FILE_BYTES, readAtMost } from '../config-files.js';
import { ConfigError } from '../errors.js';

/** An Ed25519 signing key with its public half as published in the JWK Set. */
export interface Ed25519Key {
  /** RFC 7638 JWK thumbprint: stable for the key, so every node derives the same `kid`. */
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** The public JWK (RFC 8037): `{kty: "OKP", crv: "Ed25519", x, kid, alg: "EdDSA", use: "sig"}`. */
  jwk: Record<string, string>;
}

/** Wraps a private Ed25519 key with its kid and public JWK. */
export function ed25519Key(privateKey: KeyObject): Ed25519Key {
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new ConfigError('GATEWAY_JWT_ED25519_KEY must hold an Ed25519 private key');
  const publicKey = createPublicKey(privateKey);
  const x = publicKey.export({ format: 'jwk' }).x;
  if (typeof x !== 'string') throw new ConfigError('GATEWAY_JWT_ED25519_KEY: cannot export the public key');
  // RFC 7638 section 3.2: the required members in lexical order, no whitespace.
  const kid = createHash('sha256')
    .update(JSON.stringify({ crv: 'Ed25519', kty: 'OKP', x }))
    .digest('base64url');
  return { kid, privateKey, publicKey, jwk: { kty: 'OKP', crv: 'Ed25519', x, kid, alg: 'EdDSA', use: 'sig' } };
}

/** A fresh key for this process only (tokens stop verifying after a restart). */
export function generateEd25519Key(): Ed25519Key {
  return ed25519Key(generateKeyPairSync('ed25519').privateKey);
}

/**
 * Reads PEM files (PKCS#8 Ed25519 private keys), one path or a comma-separated list:
 * the first key signs, all are published and verify (rotation). One clear line on error,
 * naming the file, never its content.
 */
export function loadEd25519Keys(paths: string[]): Ed25519Key[] {
  const keys: Ed25519Key[] = [];
  for (const path of paths) {
    let bytes: Buffer;
    try {
      bytes = readAtMost(path, MAX_KEY_FILE_BYTES);
    } catch (err) {
      throw new ConfigError(`GATEWAY_JWT_ED25519_KEY: cannot read "${path}" (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    if (bytes.length > MAX_KEY_FILE_BYTES)
      throw new ConfigError(`GATEWAY_JWT_ED25519_KEY: "${path}" holds more than ${MAX_KEY_FILE_BYTES} bytes: not a PEM private key`);
    const pem = bytes.toString('utf8');
    let key: KeyObject;
    try {
      key = createPrivateKey(pem);
    } catch {
      throw new ConfigError(`GATEWAY_JWT_ED25519_KEY: "${path}" is not a PEM private key`);
    }
    if (key.asymmetricKeyType !== 'ed25519') {
      throw new ConfigError(`GATEWAY_JWT_ED25519_KEY: "${path}" holds a ${key.asymmetricKeyType ?? 'unknown'} key, not Ed25519`);
    }
    const k = ed25519Key(key);
    if (keys.some((o) => o.kid === k.kid)) throw new ConfigError(`GATEWAY_JWT_ED25519_KEY: "${path}" repeats a key`);
    keys.push(k);
  }
  return keys;
}
