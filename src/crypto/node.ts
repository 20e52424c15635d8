/**
 * The fast crypto provider: node:crypto (OpenSSL) on the hot path, @noble where node:crypto lacks
 * a primitive (keyed BLAKE2s with a 16-byte digest, XChaCha20-Poly1305).
 *
 * Measured facts this file relies on (Node 20, OpenSSL 3.0; see test/crypto/providers.test.ts):
 * - `createHash('blake2s256', { key })` silently ignores the key, so the keyed MAC uses @noble.
 * - A raw X25519 private key imports through JWK. The JWK `x` member is required by Node but is
 *   not checked against `d` (OpenSSL derives the public key from the private one), so a
 *   placeholder is passed and the real public key is derived once afterwards.
 * - OpenSSL clamps the scalar and masks the top bit of u exactly as RFC 7748 says (the §5.2
 *   vectors, whose scalars are unclamped and whose second u has the top bit set, pass), so the
 *   private bytes are imported as they are.
 * - `diffieHellman` throws for a low-order peer key instead of returning zeros.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  diffieHellman,
} from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import type { AeadKey, CryptoProvider, X25519PrivateKey } from '../core/crypto.ts';
import { mac, xopen, xseal } from './noble-shared.ts';
import { isAllZero } from '../core/bytes.ts';
import { WireweaveError } from '../core/errors.ts';

const KEY_LEN = 32;
const TAG_LEN = 16;

/** base64url of 32 zero bytes: the placeholder JWK `x` (Node requires it, OpenSSL ignores it). */
const PLACEHOLDER_X = Buffer.alloc(KEY_LEN).toString('base64url');
/** PKCS#8 DER prefix of an X25519 private key (RFC 8410); fallback when a JWK import is refused. */
const PKCS8_X25519_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

class NodeX25519PrivateKey implements X25519PrivateKey {
  readonly publicKey: Uint8Array;
  readonly keyObject: KeyObject;
  constructor(keyObject: KeyObject, publicKey: Uint8Array) {
    this.keyObject = keyObject;
    this.publicKey = publicKey;
  }
}

class NodeAeadKey implements AeadKey {
  declare readonly __brand: 'AeadKey';
  readonly keyObject: KeyObject;
  constructor(keyObject: KeyObject) {
    this.keyObject = keyObject;
  }
}

function importX25519Private(raw: Uint8Array): KeyObject {
  const d = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64url');
  try {
    return createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d, x: PLACEHOLDER_X }, format: 'jwk' });
  } catch {
    // A Node that validates `x` against `d` would refuse the placeholder: fall back to DER.
    const der = Buffer.concat([PKCS8_X25519_PREFIX, raw]);
    try {
      return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    } finally {
      der.fill(0);
    }
  }
}

function asNodeAeadKey(key: AeadKey): NodeAeadKey {
  if (!(key instanceof NodeAeadKey)) throw new TypeError('nodeCrypto: AeadKey was not made by nodeCrypto.aeadKey');
  return key;
}

function asNodePrivateKey(key: X25519PrivateKey): NodeX25519PrivateKey {
  if (!(key instanceof NodeX25519PrivateKey)) {
    throw new TypeError('nodeCrypto: X25519PrivateKey was not made by nodeCrypto.x25519PrivateKey');
  }
  return key;
}

/** A plain Uint8Array view of a Buffer (same memory), so results compare equal to Uint8Arrays. */
function view(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}


/** Scratch nonce: 4 zero bytes ‖ counter as little-endian u64. createCipheriv copies it. */
const nonce = Buffer.alloc(12);
function setNonce(counterLo: number, counterHi: number): Buffer {
  nonce.writeUInt32LE(0, 0);
  nonce.writeUInt32LE(counterLo >>> 0, 4);
  nonce.writeUInt32LE(counterHi >>> 0, 8);
  return nonce;
}

export const nodeCrypto: CryptoProvider = {
  name: 'node',

  hash(parts) {
    const h = createHash('blake2s256');
    for (const p of parts) h.update(p);
    return view(h.digest());
  },

  hmac(key, data) {
    return view(createHmac('blake2s256', key).update(data).digest());
  },

  mac,

  x25519PrivateKey(privateKey) {
    if (privateKey.length !== KEY_LEN) throw new RangeError('X25519 private key must be 32 bytes');
    const keyObject = importX25519Private(privateKey);
    const jwk = createPublicKey(keyObject).export({ format: 'jwk' });
    if (typeof jwk.x !== 'string') throw new WireweaveError('ERR_CRYPTO', 'nodeCrypto: could not derive the X25519 public key');
    const publicKey = new Uint8Array(Buffer.from(jwk.x, 'base64url'));
    return new NodeX25519PrivateKey(keyObject, publicKey);
  },

  x25519(privateKey, publicKey) {
    const priv = asNodePrivateKey(privateKey);
    if (publicKey.length !== KEY_LEN) return null;
    let shared: Buffer;
    try {
      const x = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString('base64url');
      const pub = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x }, format: 'jwk' });
      shared = diffieHellman({ privateKey: priv.keyObject, publicKey: pub });
    } catch {
      return null; // OpenSSL refuses low-order points (all-zero result)
    }
    if (shared.length !== KEY_LEN || isAllZero(shared)) return null;
    return view(shared);
  },

  aeadKey(key) {
    if (key.length !== KEY_LEN) throw new RangeError('ChaCha20-Poly1305 key must be 32 bytes');
    return new NodeAeadKey(createSecretKey(key));
  },

  seal(key, counterLo, counterHi, plaintext, ad, out, outOffset) {
    const k = asNodeAeadKey(key);
    const total = plaintext.length + TAG_LEN;
    if (outOffset < 0 || outOffset + total > out.length) throw new RangeError('seal: output buffer too small');
    const cipher = createCipheriv('chacha20-poly1305', k.keyObject, setNonce(counterLo, counterHi), {
      authTagLength: TAG_LEN,
    });
    cipher.setAAD(ad, { plaintextLength: plaintext.length });
    // update() reads the whole plaintext before anything is written to `out`, so in place is safe.
    const body = cipher.update(plaintext);
    const tail = cipher.final();
    out.set(body, outOffset);
    if (tail.length > 0) out.set(tail, outOffset + body.length);
    out.set(cipher.getAuthTag(), outOffset + plaintext.length);
    return total;
  },

  open(key, counterLo, counterHi, ciphertext, ad, out, outOffset) {
    const k = asNodeAeadKey(key);
    if (ciphertext.length < TAG_LEN) return false;
    const len = ciphertext.length - TAG_LEN;
    if (outOffset < 0 || outOffset + len > out.length) return false;
    try {
      const decipher = createDecipheriv('chacha20-poly1305', k.keyObject, setNonce(counterLo, counterHi), {
        authTagLength: TAG_LEN,
      });
      // setAuthTag copies the tag, so overwriting the ciphertext later (in place) cannot change it.
      decipher.setAuthTag(ciphertext.subarray(len));
      decipher.setAAD(ad, { plaintextLength: len });
      const body = decipher.update(ciphertext.subarray(0, len));
      const tail = decipher.final(); // throws when the tag does not verify
      out.set(body, outOffset);
      if (tail.length > 0) out.set(tail, outOffset + body.length);
      return true;
    } catch {
      return false;
    }
  },

  xseal,
  xopen,
};
