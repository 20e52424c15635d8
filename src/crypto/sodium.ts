/**
 * The fastest provider: libsodium (through the optional dependency `sodium-native`, prebuilt)
 * for X25519 and both ChaCha20-Poly1305 AEADs; BLAKE2s, HMAC-BLAKE2s and keyed BLAKE2s-128 are
 * nodeCrypto's (libsodium has only BLAKE2b).
 *
 * Why it exists (measured on the 2-core CI machine, bench/core.ts):
 * - libsodium seals 1420-byte packets ~4× faster than node:crypto, whose per-call
 *   `createCipheriv` setup costs more than the encryption itself; here the call works in place
 *   on the caller's buffer with no allocation beyond two views.
 * - X25519 takes raw 32-byte keys: node:crypto needs a KeyObject import for every new peer
 *   ephemeral key, and a generated ephemeral key costs a key-pair object plus a JWK export.
 *
 * `sodiumCrypto` is null when sodium-native is not installed (it is an optionalDependency) or
 * cannot load on this platform; `src/crypto/index.ts` then falls back to `nodeCrypto`.
 * (WIREWEAVE_CRYPTO=node, for comparisons, is read at the edge: crypto/choose.ts.)
 */
import { createRequire } from 'node:module';
import type { AeadKey, CryptoProvider, X25519PrivateKey } from '../core/crypto.ts';
import { isAllZero } from '../core/bytes.ts';
import { ViewCache } from '../core/view-cache.ts';
import { nodeCrypto } from './node.ts';

const KEY_LEN = 32;
const TAG_LEN = 16;
const XNONCE_LEN = 24;

/** The subset of sodium-native's API used here (it ships no TypeScript types). */
interface Sodium {
  crypto_scalarmult(q: Uint8Array, n: Uint8Array, p: Uint8Array): void;
  crypto_scalarmult_base(q: Uint8Array, n: Uint8Array): void;
  crypto_aead_chacha20poly1305_ietf_encrypt(
    c: Uint8Array, m: Uint8Array, ad: Uint8Array | null, nsec: null, npub: Uint8Array, k: Uint8Array,
  ): number;
  crypto_aead_chacha20poly1305_ietf_decrypt(
    m: Uint8Array, nsec: null, c: Uint8Array, ad: Uint8Array | null, npub: Uint8Array, k: Uint8Array,
  ): number;
  crypto_aead_xchacha20poly1305_ietf_encrypt(
    c: Uint8Array, m: Uint8Array, ad: Uint8Array | null, nsec: null, npub: Uint8Array, k: Uint8Array,
  ): number;
  crypto_aead_xchacha20poly1305_ietf_decrypt(
    m: Uint8Array, nsec: null, c: Uint8Array, ad: Uint8Array | null, npub: Uint8Array, k: Uint8Array,
  ): number;
}

function loadSodium(): Sodium | null {
  try {
    return createRequire(import.meta.url)('sodium-native') as Sodium;
  } catch {
    return null;
  }
}

class SodiumX25519PrivateKey implements X25519PrivateKey {
  readonly publicKey: Uint8Array;
  readonly #secret: Uint8Array;
  constructor(secret: Uint8Array, publicKey: Uint8Array) {
    this.#secret = secret;
    this.publicKey = publicKey;
  }
  static secretOf(key: X25519PrivateKey): Uint8Array {
    if (!(key instanceof SodiumX25519PrivateKey)) {
      throw new TypeError('sodiumCrypto: X25519PrivateKey was not made by sodiumCrypto.x25519PrivateKey');
    }
    return key.#secret;
  }
}

class SodiumAeadKey implements AeadKey {
  declare readonly __brand: 'AeadKey';
  readonly #key: Uint8Array;
  constructor(key: Uint8Array) {
    this.#key = key;
  }
  static bytesOf(key: AeadKey): Uint8Array {
    if (!(key instanceof SodiumAeadKey)) throw new TypeError('sodiumCrypto: AeadKey was not made by sodiumCrypto.aeadKey');
    return key.#key;
  }
}

function makeProvider(sodium: Sodium): CryptoProvider {
  /** Scratch nonce 0x00000000 ‖ counter (LE u64); libsodium reads it during the call only. */
  const nonce = new Uint8Array(12);
  const nonceView = new DataView(nonce.buffer);
  const setNonce = (lo: number, hi: number): Uint8Array => {
    nonceView.setUint32(4, lo >>> 0, true);
    nonceView.setUint32(8, hi >>> 0, true);
    return nonce;
  };
  // libsodium takes exact views: these keep the ones of the places packets recur in (a
  // sealing batch's segments, the receive scratch) instead of one new view a packet.
  const sealViews = new ViewCache(128);
  const openViews = new ViewCache(16);

  return {
    name: 'sodium',

    // libsodium has BLAKE2b only: the BLAKE2s functions are nodeCrypto's.
    hash: nodeCrypto.hash,
    hmac: nodeCrypto.hmac,
    mac: nodeCrypto.mac,

    x25519PrivateKey(privateKey) {
      if (privateKey.length !== KEY_LEN) throw new RangeError('X25519 private key must be 32 bytes');
      const secret = privateKey.slice();
      const publicKey = new Uint8Array(KEY_LEN);
      sodium.crypto_scalarmult_base(publicKey, secret);
      return new SodiumX25519PrivateKey(secret, publicKey);
    },

    x25519(privateKey, publicKey) {
      const secret = SodiumX25519PrivateKey.secretOf(privateKey);
      if (publicKey.length !== KEY_LEN) return null;
      const shared = new Uint8Array(KEY_LEN);
      try {
        sodium.crypto_scalarmult(shared, secret, publicKey);
      } catch {
        return null; // libsodium refuses small-order points (their result would be all zeros)
      }
      if (isAllZero(shared)) return null;
      return shared;
    },

    aeadKey(key) {
      if (key.length !== KEY_LEN) throw new RangeError('ChaCha20-Poly1305 key must be 32 bytes');
      return new SodiumAeadKey(key.slice());
    },

    seal(key, counterLo, counterHi, plaintext, ad, out, outOffset) {
      const k = SodiumAeadKey.bytesOf(key);
      const len = plaintext.length;
      if (outOffset < 0 || outOffset + len + TAG_LEN > out.length) throw new RangeError('seal: output buffer too small');
      // libsodium allows c == m exactly (in place), which is the only overlap the contract permits.
      // The combined form takes ciphertext and tag as one view.
      sodium.crypto_aead_chacha20poly1305_ietf_encrypt(
        sealViews.view(out, outOffset, outOffset + len + TAG_LEN), plaintext, ad.length > 0 ? ad : null, null, setNonce(counterLo, counterHi), k,
      );
      return len + TAG_LEN;
    },

    open(key, counterLo, counterHi, ciphertext, ad, out, outOffset) {
      const k = SodiumAeadKey.bytesOf(key);
      if (ciphertext.length < TAG_LEN) return false;
      const len = ciphertext.length - TAG_LEN;
      if (outOffset < 0 || outOffset + len > out.length) return false;
      // libsodium verifies the tag before it writes any plaintext, so in place is safe. The
      // combined form takes ciphertext and tag as they lie: no view to make but the output's.
      try {
        sodium.crypto_aead_chacha20poly1305_ietf_decrypt(
          openViews.view(out, outOffset, outOffset + len), null, ciphertext, ad.length > 0 ? ad : null, setNonce(counterLo, counterHi), k,
        );
        return true;
      } catch {
        return false; // tag did not verify; libsodium zeroes the output then (the contract leaves it unspecified)
      }
    },

    xseal(key, nonce24, plaintext, ad) {
      if (key.length !== KEY_LEN || nonce24.length !== XNONCE_LEN) throw new RangeError('xseal: bad key or nonce length');
      const out = new Uint8Array(plaintext.length + TAG_LEN);
      sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(out, plaintext, ad.length > 0 ? ad : null, null, nonce24, key);
      return out;
    },

    xopen(key, nonce24, ciphertext, ad) {
      if (ciphertext.length < TAG_LEN || key.length !== KEY_LEN || nonce24.length !== XNONCE_LEN) return null;
      const out = new Uint8Array(ciphertext.length - TAG_LEN);
      try {
        sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(out, null, ciphertext, ad.length > 0 ? ad : null, nonce24, key);
        return out;
      } catch {
        return null;
      }
    },
  };
}

const sodium = loadSodium();

/** The libsodium-backed provider, or null when sodium-native is unavailable. */
export const sodiumCrypto: CryptoProvider | null = sodium ? makeProvider(sodium) : null;
