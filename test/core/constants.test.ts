/**
 * The derived protocol constants (src/core/constants.ts) have the whitepaper's values (§6.1):
 * the scenario tests use the names, so a wrong formula would move test and code together.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as C from '../../src/core/constants.ts';

describe('protocol constants', () => {
  it('are the whitepaper values, in milliseconds', () => {
    assert.deepEqual(
      [C.REKEY_AFTER_TIME, C.REJECT_AFTER_TIME, C.REKEY_ATTEMPT_TIME, C.REKEY_TIMEOUT, C.KEEPALIVE_TIMEOUT, C.COOKIE_REFRESH_TIME],
      [120_000, 180_000, 90_000, 5_000, 10_000, 120_000],
    );
    assert.equal(C.ZERO_KEY_MATERIAL_AFTER, 540_000, '3 × REJECT_AFTER_TIME');
    assert.equal(C.REKEY_ON_RECEIVE_AGE, 165_000, 'REJECT − KEEPALIVE − REKEY_TIMEOUT (wireguard-go)');
    assert.equal(C.COOKIE_VALID_TIME, 118_000, 'a received cookie is used 2 s less than its secret lives');
  });

  it('names the construction and labels as the whitepaper spells them', () => {
    assert.deepEqual([C.CONSTRUCTION, C.IDENTIFIER, C.LABEL_MAC1, C.LABEL_COOKIE],
      ['Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s', 'WireGuard v1 zx2c4 Jason@zx2c4.com', 'mac1----', 'cookie--']);
  });

  it('gives the 64-bit message limits as exact 32-bit halves', () => {
    assert.equal(C.REKEY_AFTER_MESSAGES_HI * 2 ** 32, 2 ** 60);
    assert.equal(BigInt(C.REJECT_AFTER_MESSAGES_HI) * 2n ** 32n + BigInt(C.REJECT_AFTER_MESSAGES_LO), 2n ** 64n - 2n ** 13n - 1n);
  });
});
