/**
 * The public key of a private key (what `wg pubkey` prints), through a crypto provider: the
 * core implements no primitive itself (crypto.ts).
 */
import type { CryptoProvider } from './crypto.ts';

/** The 32-byte X25519 public key of a 32-byte private key (clamped as RFC 7748 says). */
export function publicKey(crypto: CryptoProvider, privateKey: Uint8Array): Uint8Array {
  return crypto.x25519PrivateKey(privateKey).publicKey;
}
