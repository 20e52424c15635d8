/**
 * The portable crypto provider: @noble only, no Node built-ins, so it bundles for browsers and
 * runs in Deno and Bun. Slower than `nodeCrypto` (noble X25519 is ~1k ops/s) but byte-identical.
 */
import { blake2s } from '@noble/hashes/blake2.js';
import { hmac } from '@noble/hashes/hmac.js';
import { x25519 } from '@noble/curves/ed25519.js';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import type { AeadKey, CryptoProvider, X25519PrivateKey } from '../core/crypto.ts';
import { mac, xopen, xseal } from './noble-shared.ts';
import { isAllZero } from '../core/bytes.ts';

const KEY_LEN = 32;
const TAG_LEN = 16;

class PortableX25519PrivateKey implements X25519PrivateKey {
  readonly publicKey: Uint8Array;
  readonly #secret: Uint8Array;
  constructor(secret: Uint8Array, publicKey: Uint8Array) {
    this.#secret = secret;
    this.publicKey = publicKey;
  }
  static secretOf(key: X25519PrivateKey): Uint8Array {
    if (!(key instanceof PortableX25519PrivateKey)) {
      throw new TypeError('portableCrypto: X25519PrivateKey was not made by portableCrypto.x25519PrivateKey');
    }
    return key.#secret;
  }
}

class PortableAeadKey implements AeadKey {
  declare readonly __brand: 'AeadKey';
  readonly #key: Uint8Array;
  constructor(key: Uint8Array) {
    this.#key = key;
  }
  static bytesOf(key: AeadKey): Uint8Array {
    if (!(key instanceof PortableAeadKey)) throw new TypeError('portableCrypto: AeadKey was not made by portableCrypto.aeadKey');
    return key.#key;
  }
}


/** 4 zero bytes ‖ counter as little-endian u64. A fresh array per call: noble borrows the nonce. */
function makeNonce(counterLo: number, counterHi: number): Uint8Array {
  const n = new Uint8Array(12);
  const dv = new DataView(n.buffer);
  dv.setUint32(4, counterLo >>> 0, true);
  dv.setUint32(8, counterHi >>> 0, true);
  return n;
}

/** The CryptoProvider on `@noble` alone: no `node:*`, so it runs in browsers, Deno and Bun. */
export const portableCrypto: CryptoProvider = {
  name: 'portable',

  hash(parts) {
    const h = blake2s.create();
    for (const p of parts) h.update(p);
    return h.digest();
  },

  hmac(key, data) {
    return hmac(blake2s, key, data);
  },

  mac,

  x25519PrivateKey(privateKey) {
    if (privateKey.length !== KEY_LEN) throw new RangeError('X25519 private key must be 32 bytes');
    const secret = privateKey.slice(); // noble clamps internally; the caller's bytes stay untouched
    return new PortableX25519PrivateKey(secret, x25519.getPublicKey(secret));
  },

  x25519(privateKey, publicKey) {
    const secret = PortableX25519PrivateKey.secretOf(privateKey);
    if (publicKey.length !== KEY_LEN) return null;
    let shared: Uint8Array;
    try {
      shared = x25519.getSharedSecret(secret, publicKey);
    } catch {
      return null; // noble throws for an all-zero result (low-order point)
    }
    if (shared.length !== KEY_LEN || isAllZero(shared)) return null;
    return shared;
  },

  aeadKey(key) {
    if (key.length !== KEY_LEN) throw new RangeError('ChaCha20-Poly1305 key must be 32 bytes');
    return new PortableAeadKey(key.slice());
  },

  seal(key, counterLo, counterHi, plaintext, ad, out, outOffset) {
    const k = PortableAeadKey.bytesOf(key);
    const total = plaintext.length + TAG_LEN;
    if (outOffset < 0 || outOffset + total > out.length) throw new RangeError('seal: output buffer too small');
    // noble copies the plaintext into `dst` first, then encrypts `dst` in place: aliasing is fine.
    const dst = out.subarray(outOffset, outOffset + total);
    chacha20poly1305(k, makeNonce(counterLo, counterHi), ad).encrypt(plaintext, dst);
    return total;
  },

  open(key, counterLo, counterHi, ciphertext, ad, out, outOffset) {
    const k = PortableAeadKey.bytesOf(key);
    if (ciphertext.length < TAG_LEN) return false;
    const len = ciphertext.length - TAG_LEN;
    if (outOffset < 0 || outOffset + len > out.length) return false;
    try {
      // noble verifies the tag over the ciphertext before writing anything to `dst`.
      chacha20poly1305(k, makeNonce(counterLo, counterHi), ad).decrypt(ciphertext, out.subarray(outOffset, outOffset + len));
      return true;
    } catch {
      return false;
    }
  },

  xseal,
  xopen,
};
