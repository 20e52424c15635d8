/**
 * `wireweave/crypto`: the CryptoProvider implementations (Node only; a browser imports
 * `wireweave/crypto/portable`, which has no node:* import).
 */
import { nodeCrypto } from './node.ts';
import { sodiumCrypto } from './sodium.ts';
import type { CryptoProvider } from '../core/crypto.ts';

/** node:crypto on the hot path, `@noble` where node:crypto lacks a primitive. */
export { nodeCrypto } from './node.ts';
/** `@noble` only: runs anywhere JavaScript runs (browsers, Deno, Bun). */
export { portableCrypto } from './portable.ts';
/** libsodium through the optional `sodium-native`; null when it is not installed or cannot load. */
export { sodiumCrypto } from './sodium.ts';
/** The interface every provider implements (also exported by `wireweave/core`). */
export type { CryptoProvider } from '../core/crypto.ts';

/**
 * The provider to use when none is given (this module is Node-only): libsodium when the optional
 * sodium-native is installed, else node:crypto. WIREWEAVE_CRYPTO=node forces node:crypto.
 */
export const defaultCrypto: CryptoProvider = sodiumCrypto ?? nodeCrypto;
