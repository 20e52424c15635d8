/**
 * The fast crypto provider: node:crypto (OpenSSL) on the hot path; BLAKE2s in all three forms
 * through hash-wasm once it has loaded (blake2s-wasm.ts); @noble where node:crypto lacks a
 * primitive (keyed BLAKE2s with a 16-byte digest, XChaCha20-Poly1305), until then or without it.
 *
 * Measured facts this file relies on (Node 20, OpenSSL 3.0; see test/crypto/providers.test.ts):
 * - `createHash('blake2s256', { key })` silently ignores the key, so the keyed MAC is not node's.
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
  hash as oneShotHash,
} from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import type { AeadKey, CryptoProvider, X25519PrivateKey } from '../core/crypto.ts';
import { mac as nobleMac, xopen, xseal } from './noble-shared.ts';
import { wasmBlake2s } from './blake2s-wasm.ts';
import type { Blake2sEngine } from './blake2s-wasm.ts';
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

/**
 * BLAKE2s and HMAC-BLAKE2s without a Hash/Hmac object per call. A handshake hashes ~50 short
 * inputs; for those createHash/createHmac cost their objects and garbage, not the compression
 * (~0.1 µs a block). So the parts are copied into one reusable buffer and hashed in one call,
 * and HMAC (RFC 2104, 64-byte block) is two such hashes over ipad/opad blocks. The call is the
 * reused WebAssembly hasher of blake2s-wasm.ts (~0.4 µs) or, without it, node's one-shot `hash()`
 * (~1.4 µs, mostly looking the digest up by name). Inputs that do not fit the buffer take the
 * streaming path.
 */
const BLOCK_LEN = 64;
const HASH_LEN = 32;
const SCRATCH_LEN = 1024;
const scratch = Buffer.alloc(BLOCK_LEN + SCRATCH_LEN); // not pooled: offset 0, 4-byte aligned
const scratch32 = new Uint32Array(scratch.buffer, scratch.byteOffset, BLOCK_LEN / 4);
/** The HMAC key zero-padded to a block, as 32-bit words for the ipad/opad XOR. */
const keyBlock = new Uint8Array(BLOCK_LEN);
const keyBlock32 = new Uint32Array(keyBlock.buffer);

function digest(engine: Blake2sEngine | null, input: Uint8Array): Uint8Array {
  return engine ? engine.digest(input) : view(oneShotHash('blake2s256', input, 'buffer'));
}

function blake2s(parts: readonly Uint8Array[]): Uint8Array {
  let len = 0;
  for (const p of parts) len += p.length;
  if (len > scratch.length) {
    const h = createHash('blake2s256');
    for (const p of parts) h.update(p);
    return view(h.digest());
  }
  let at = 0;
  for (const p of parts) { scratch.set(p, at); at += p.length; }
  const engine = wasmBlake2s();
  const out = digest(engine, scratch.subarray(0, len));
  scratch.fill(0, 0, len); // the parts may be secret (chaining keys, DH results)
  engine?.wipe(len);
  return out;
}

/** Writes the key block XOR `pad` (a byte repeated in all four lanes) into the scratch's first block. */
function padKey(pad: number): void {
  for (let i = 0; i < BLOCK_LEN / 4; i++) scratch32[i] = keyBlock32[i]! ^ pad;
}

function hmacBlake2s(key: Uint8Array, data: Uint8Array): Uint8Array {
  if (key.length > BLOCK_LEN || data.length > SCRATCH_LEN) return view(createHmac('blake2s256', key).update(data).digest());
  keyBlock.fill(0);
  keyBlock.set(key);
  // inner = H((K ⊕ ipad) ‖ data)
  padKey(0x36363636);
  scratch.set(data, BLOCK_LEN);
  const engine = wasmBlake2s();
  const inner = digest(engine, scratch.subarray(0, BLOCK_LEN + data.length));
  // outer = H((K ⊕ opad) ‖ inner)
  padKey(0x5c5c5c5c);
  scratch.set(inner, BLOCK_LEN);
  const out = digest(engine, scratch.subarray(0, BLOCK_LEN + HASH_LEN));
  const used = BLOCK_LEN + Math.max(data.length, HASH_LEN);
  scratch.fill(0, 0, used);
  engine?.wipe(used);
  keyBlock.fill(0);
  inner.fill(0);
  return out;
}

/** Keyed BLAKE2s-128 through the WebAssembly hasher when it is loaded, else @noble. */
const mac: CryptoProvider['mac'] = (key, data) => wasmBlake2s()?.mac(key, data) ?? nobleMac(key, data);

export const nodeCrypto: CryptoProvider = {
  name: 'node',

  hash: blake2s,
  hmac: hmacBlake2s,

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
