/** publicKey(): the key helper `wireweave/core` exports (what `wg pubkey` computes). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { publicKey } from '../../src/core/public-key.ts';
import { decodeHex, encodeHex } from '../../src/core/keys.ts';
import { nodeCrypto } from '../../src/crypto/node.ts';
import { portableCrypto } from '../../src/crypto/portable.ts';

// RFC 7748 section 6.1, Alice's key pair.
const PRIVATE = '77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a';
const PUBLIC = '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a';

describe('publicKey', () => {
  for (const crypto of [nodeCrypto, portableCrypto]) {
    it(`gives RFC 7748's public key with ${crypto.name}, leaving the private key as it was`, () => {
      const privateKey = decodeHex(PRIVATE);
      assert.equal(encodeHex(publicKey(crypto, privateKey)), PUBLIC);
      assert.equal(encodeHex(privateKey), PRIVATE);
    });
  }
});
