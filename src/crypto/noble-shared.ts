/**
 * Primitives both providers take from @noble because node:crypto lacks them: keyed BLAKE2s
 * with a 16-byte digest (node ignores a blake2s key) and XChaCha20-Poly1305.
 */
import { blake2s } from '@noble/hashes/blake2.js';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import type { CryptoProvider } from '../core/crypto.ts';

const TAG_LEN = 16;

export const mac: CryptoProvider['mac'] = (key, data) => blake2s(data, { key, dkLen: 16 });

export const xseal: CryptoProvider['xseal'] = (key, nonce24, plaintext, ad) =>
  xchacha20poly1305(key, nonce24, ad).encrypt(plaintext);

export const xopen: CryptoProvider['xopen'] = (key, nonce24, ciphertext, ad) => {
  if (ciphertext.length < TAG_LEN) return null;
  try {
    return xchacha20poly1305(key, nonce24, ad).decrypt(ciphertext);
  } catch {
    return null;
  }
};
