/**
 * The public Noise test vector for Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s (cacophony), reproduced
 * byte for byte by our Noise layer with the vector's prologue in place of WireGuard's identifier
 * and its payloads in place of the timestamp / empty payload. Both providers.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { NOISE_IKPSK2_25519_CHACHAPOLY_BLAKE2S as V } from '../fixtures/vectors.ts';
import { kdf, message1Length, message2Length, noiseStart, readMessage1, readMessage2, split, writeMessage1, writeMessage2 } from '../../src/core/noise.ts';
import { nodeCrypto } from '../../src/crypto/node.ts';
import { portableCrypto } from '../../src/crypto/portable.ts';
import { decodeHex, encodeHex } from '../../src/core/keys.ts';
import { CONSTRUCTION, IDENTIFIER } from '../../src/core/constants.ts';
import { utf8 } from '../../src/core/bytes.ts';

for (const crypto of [nodeCrypto, portableCrypto]) {
  describe(`Noise IKpsk2 vector (${crypto.name} provider)`, () => {
    it('reproduces both handshake messages, the handshake hash and every transport message', () => {
      assert.equal(V.protocol_name, CONSTRUCTION);
      const start = noiseStart(crypto, V.protocol_name, decodeHex(V.init_prologue));
      const initStatic = crypto.x25519PrivateKey(decodeHex(V.init_static));
      const respStatic = crypto.x25519PrivateKey(decodeHex(V.resp_static));
      assert.equal(encodeHex(respStatic.publicKey), V.init_remote_static);
      const psk = decodeHex(V.init_psks[0]!);
      const m = V.messages;

      // Message 1: initiator → responder.
      const payload1 = decodeHex(m[0]!.payload);
      const msg1 = new Uint8Array(message1Length(payload1.length));
      const ss = crypto.x25519(initStatic, respStatic.publicKey)!;
      const init = writeMessage1(crypto, start, initStatic, respStatic.publicKey, ss,
        crypto.x25519PrivateKey(decodeHex(V.init_ephemeral)), payload1, msg1, 0);
      assert.ok(init, 'initiator state');
      assert.equal(encodeHex(msg1), m[0]!.ciphertext);

      const resp = readMessage1(crypto, start, respStatic, msg1, (key) => {
        assert.deepEqual(key, initStatic.publicKey);
        return crypto.x25519(respStatic, key);
      });
      assert.ok(resp, 'responder read message 1');
      assert.deepEqual(resp.payload, payload1);

      // Message 2: responder → initiator.
      const payload2 = decodeHex(m[1]!.payload);
      const msg2 = new Uint8Array(message2Length(payload2.length));
      const respState = { chainKey: resp.chainKey, hash: resp.hash };
      assert.ok(writeMessage2(crypto, respState, resp.remoteEphemeral, resp.remoteStatic, psk,
        crypto.x25519PrivateKey(decodeHex(V.resp_ephemeral)), payload2, msg2, 0), 'write message 2');
      assert.equal(encodeHex(msg2), m[1]!.ciphertext);

      const done = readMessage2(crypto, init, initStatic, psk, msg2);
      assert.ok(done, 'initiator read message 2');
      assert.deepEqual(done.payload, payload2);
      assert.equal(encodeHex(done.state.hash), V.handshake_hash);
      assert.equal(encodeHex(respState.hash), V.handshake_hash);

      // Transport: initiator sends with the first key, responder with the second; nonces count up.
      const [i1, i2] = split(crypto, done.state);
      const [r1, r2] = split(crypto, respState);
      assert.deepEqual(i1, r1);
      assert.deepEqual(i2, r2);
      const nonces = [0, 0];
      for (let k = 2; k < m.length; k++) {
        const fromInitiator = k % 2 === 0;
        const key = crypto.aeadKey(fromInitiator ? i1 : i2);
        const plain = decodeHex(m[k]!.payload);
        const out = new Uint8Array(plain.length + 16);
        crypto.seal(key, nonces[fromInitiator ? 0 : 1]!++, 0, plain, new Uint8Array(0), out, 0);
        assert.equal(encodeHex(out), m[k]!.ciphertext, `transport message ${k}`);
      }
    });

    it('rejects a tampered message 1 and a message 2 for the wrong psk', () => {
      const start = noiseStart(crypto, CONSTRUCTION, utf8(IDENTIFIER));
      const a = crypto.x25519PrivateKey(decodeHex(V.init_static));
      const b = crypto.x25519PrivateKey(decodeHex(V.resp_static));
      const msg1 = new Uint8Array(message1Length(12));
      const st = writeMessage1(crypto, start, a, b.publicKey, crypto.x25519(a, b.publicKey)!,
        crypto.x25519PrivateKey(decodeHex(V.init_ephemeral)), new Uint8Array(12), msg1, 0)!;
      for (const at of [0, 40, msg1.length - 1]) {
        const bad = msg1.slice();
        bad[at]! ^= 1;
        assert.equal(readMessage1(crypto, start, b, bad, (k) => crypto.x25519(b, k)), null, `flip at ${at}`);
      }
      const r = readMessage1(crypto, start, b, msg1, (k) => crypto.x25519(b, k))!;
      const msg2 = new Uint8Array(message2Length(0));
      writeMessage2(crypto, r, r.remoteEphemeral, r.remoteStatic, new Uint8Array(32).fill(1),
        crypto.x25519PrivateKey(decodeHex(V.resp_ephemeral)), new Uint8Array(0), msg2, 0);
      assert.equal(readMessage2(crypto, st, a, new Uint8Array(32), msg2), null);
      // The pending handshake is untouched by the failed attempt.
      assert.equal(st.chainKey.some((x) => x !== 0), true);
    });
  });
}

describe('Noise edges', () => {
  const crypto = nodeCrypto;

  it('InitializeSymmetric: a name of at most 32 bytes is zero-padded, a longer one hashed', () => {
    const prologue = utf8('prologue');
    for (const name of ['Noise_short', 'N'.repeat(32)]) {
      const s = noiseStart(crypto, name, prologue);
      const padded = new Uint8Array(32);
      padded.set(utf8(name));
      assert.deepEqual(s.chainKey, padded, name);
      assert.deepEqual(s.hash, crypto.hash([padded, prologue]), name);
    }
    const long = 'N'.repeat(33);
    assert.deepEqual(noiseStart(crypto, long, prologue).chainKey, crypto.hash([utf8(long)]));
  });

  it('KDF_n gives exactly n HKDF outputs', () => {
    const key = new Uint8Array(32).fill(1), input = new Uint8Array(32).fill(2);
    const prk = crypto.hmac(key, input);
    const t1 = crypto.hmac(prk, Uint8Array.of(1));
    const t2 = crypto.hmac(prk, Uint8Array.of(...t1, 2));
    const t3 = crypto.hmac(prk, Uint8Array.of(...t2, 3));
    assert.deepEqual(kdf(crypto, key, input, 1), [t1]);
    assert.deepEqual(kdf(crypto, key, input, 2), [t1, t2]);
    assert.deepEqual(kdf(crypto, key, input, 3), [t1, t2, t3]);
  });

  it('reads messages with an empty payload, refuses anything shorter, and fails on low-order keys', () => {
    const start = noiseStart(crypto, CONSTRUCTION, utf8(IDENTIFIER));
    const a = crypto.x25519PrivateKey(decodeHex(V.init_static));
    const b = crypto.x25519PrivateKey(decodeHex(V.resp_static));
    const msg1 = new Uint8Array(message1Length(0));
    const st = writeMessage1(crypto, start, a, b.publicKey, crypto.x25519(a, b.publicKey)!,
      crypto.x25519PrivateKey(decodeHex(V.init_ephemeral)), new Uint8Array(0), msg1, 0)!;
    const ss = (k: Uint8Array) => crypto.x25519(b, k);
    assert.equal(readMessage1(crypto, start, b, msg1.subarray(0, msg1.length - 1), ss), null, 'one byte short');
    const r = readMessage1(crypto, start, b, msg1, ss)!;
    assert.equal(r.payload.length, 0);
    assert.equal(readMessage1(crypto, start, b, msg1, () => null), null, 'unknown initiator');
    const lowOrder = msg1.slice();
    lowOrder.fill(0, 0, 32); // e = the all-zero point: DH(s_r, e) is zero
    assert.equal(readMessage1(crypto, start, b, lowOrder, ss), null, 'low-order ephemeral');
    assert.equal(writeMessage1(crypto, start, a, new Uint8Array(32), new Uint8Array(32),
      crypto.x25519PrivateKey(decodeHex(V.init_ephemeral)), new Uint8Array(0), new Uint8Array(message1Length(0)), 0), null,
    'towards a low-order static key');
    const msg2 = new Uint8Array(message2Length(0));
    assert.equal(writeMessage2(crypto, { chainKey: r.chainKey.slice(), hash: r.hash.slice() }, new Uint8Array(32), r.remoteStatic,
      new Uint8Array(32), crypto.x25519PrivateKey(decodeHex(V.resp_ephemeral)), new Uint8Array(0), msg2, 0), false, 'low-order e_i');
    assert.equal(writeMessage2(crypto, { chainKey: r.chainKey.slice(), hash: r.hash.slice() }, r.remoteEphemeral, new Uint8Array(32),
      new Uint8Array(32), crypto.x25519PrivateKey(decodeHex(V.resp_ephemeral)), new Uint8Array(0), msg2, 0), false, 'low-order S_i');
    assert.ok(writeMessage2(crypto, r, r.remoteEphemeral, r.remoteStatic, new Uint8Array(32),
      crypto.x25519PrivateKey(decodeHex(V.resp_ephemeral)), new Uint8Array(0), msg2, 0));
    assert.equal(readMessage2(crypto, st, a, new Uint8Array(32), msg2.subarray(0, msg2.length - 1)), null, 'one byte short');
    const zeroE = msg2.slice();
    zeroE.fill(0, 0, 32);
    assert.equal(readMessage2(crypto, st, a, new Uint8Array(32), zeroE), null, 'low-order responder ephemeral');
    const done = readMessage2(crypto, st, a, new Uint8Array(32), msg2)!;
    assert.equal(done.payload.length, 0);
    assert.deepEqual(split(crypto, done.state), split(crypto, r));
  });
});
