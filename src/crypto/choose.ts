/**
 * Which provider an interface uses, chosen at the edge (the daemon, the CLI) from its
 * environment, like the UDP bind (device/bind-choose.ts):
 *
 *   WIREWEAVE_CRYPTO=node      node:crypto even where libsodium loads (comparisons, diagnosis)
 *
 * Otherwise libsodium when the optional sodium-native loads, else node:crypto (defaultCrypto).
 */
import type { CryptoProvider } from '../core/crypto.ts';
import { defaultCrypto } from './index.ts';
import { nodeCrypto } from './node.ts';

export function chooseCrypto(env: NodeJS.ProcessEnv = process.env): CryptoProvider {
  return env.WIREWEAVE_CRYPTO === 'node' ? nodeCrypto : defaultCrypto;
}
