/**
 * The cryptographic primitives the protocol needs, behind one synchronous interface.
 *
 * The core never implements a primitive itself. Two providers exist: `src/crypto/node.ts`
 * (node:crypto on the hot path, @noble where node:crypto lacks a primitive) and
 * `src/crypto/portable.ts` (@noble only; runs in browsers, Deno and Bun).
 *
 * Byte sizes: keys 32, hashes 32, MACs 16, AEAD tag 16, XChaCha nonce 24.
 */

/** A ChaCha20-Poly1305 key prepared once for many seal/open calls (e.g. a KeyObject). */
export interface AeadKey {
  readonly __brand: 'AeadKey';
}

/** An X25519 private key prepared once for many Diffie-Hellman operations. */
export interface X25519PrivateKey {
  /** The 32-byte public key that belongs to this private key. */
  readonly publicKey: Uint8Array;
}

export interface CryptoProvider {
  readonly name: string;

  /** BLAKE2s-256 over the concatenation of `parts`. */
  hash(parts: readonly Uint8Array[]): Uint8Array;
  /** HMAC-BLAKE2s (RFC 2104 over BLAKE2s-256, 64-byte block), 32-byte output. */
  hmac(key: Uint8Array, data: Uint8Array): Uint8Array;
  /** Keyed BLAKE2s with a 16-byte digest (key of 1..32 bytes): WireGuard's MAC. */
  mac(key: Uint8Array, data: Uint8Array): Uint8Array;

  /** Prepare a private key (clamped inside X25519 as RFC 7748 says; the bytes are not modified). */
  x25519PrivateKey(privateKey: Uint8Array): X25519PrivateKey;
  /**
   * X25519(private, public). Returns null, never throws, when the result is all zeros
   * (a low-order or otherwise invalid public key).
   */
  x25519(privateKey: X25519PrivateKey, publicKey: Uint8Array): Uint8Array | null;

  /** Prepare a 32-byte ChaCha20-Poly1305 key. */
  aeadKey(key: Uint8Array): AeadKey;
  /**
   * ChaCha20-Poly1305 seal with the 96-bit nonce 0x00000000 ‖ little-endian 64-bit counter
   * (given as two 32-bit halves). Writes ciphertext ‖ tag (plaintext.length + 16 bytes) into
   * `out` at `outOffset`; `out` may be the plaintext's own buffer at the same offset (in place).
   * Returns the number of bytes written.
   */
  seal(
    key: AeadKey,
    counterLo: number,
    counterHi: number,
    plaintext: Uint8Array,
    ad: Uint8Array,
    out: Uint8Array,
    outOffset: number,
  ): number;
  /**
   * ChaCha20-Poly1305 open; `ciphertext` includes the 16-byte tag. On success writes
   * ciphertext.length - 16 bytes of plaintext into `out` at `outOffset` (may be in place) and
   * returns true. Returns false, never throws, when authentication fails or the input is shorter
   * than a tag; `out` is then unspecified.
   */
  open(
    key: AeadKey,
    counterLo: number,
    counterHi: number,
    ciphertext: Uint8Array,
    ad: Uint8Array,
    out: Uint8Array,
    outOffset: number,
  ): boolean;

  /** XChaCha20-Poly1305 seal (24-byte nonce): returns ciphertext ‖ tag. */
  xseal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Uint8Array;
  /** XChaCha20-Poly1305 open: plaintext, or null when authentication fails. */
  xopen(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array): Uint8Array | null;
}

/** Constant-time equality of two byte strings (length is not secret). */
export function equalConstantTime(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** Overwrite key material; JS cannot promise that no copy survives elsewhere (GC, engine). */
export function zeroize(...buffers: (Uint8Array | undefined | null)[]): void {
  for (const b of buffers) if (b) b.fill(0);
}
