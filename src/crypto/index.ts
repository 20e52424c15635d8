import { nodeCrypto } from './node.ts';
import { sodiumCrypto } from './sodium.ts';
import type { CryptoProvider } from '../core/crypto.ts';

export { nodeCrypto } from './node.ts';
export { portableCrypto } from './portable.ts';
export { sodiumCrypto } from './sodium.ts';

/**
 * The provider to use when none is given (this module is Node-only): libsodium when the optional
 * sodium-native is installed, else node:crypto. WIREWEAVE_CRYPTO=node forces node:crypto.
 */
export const defaultCrypto: CryptoProvider = sodiumCrypto ?? nodeCrypto;
