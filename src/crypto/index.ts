import { nodeCrypto } from './node.ts';
import type { CryptoProvider } from '../core/crypto.ts';

export { nodeCrypto } from './node.ts';
export { portableCrypto } from './portable.ts';

/** The provider to use when none is given: the node:crypto one (this module is Node-only). */
export const defaultCrypto: CryptoProvider = nodeCrypto;
