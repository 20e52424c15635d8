/**
 * Signaling envelopes: both sides derive the same per-direction keys; a message opens once, at
 * its recipient only, unmodified and fresh; every refusal is counted under its reason.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { nodeCrypto } from '../../../src/crypto/node.ts';
import { portableCrypto } from '../../../src/crypto/portable.ts';
import { seededRng } from '../../../src/core/rng.ts';
import { generatePrivateKey } from '../../../src/core/keys.ts';
import type { CryptoProvider } from '../../../src/core/crypto.ts';
import { signalKeys, hubProof, expectedHubProof, networkKeys, tokenProof } from '../../../src/mesh/protocol/keys.ts';
import { SignalChannel, MAX_CLOCK_SKEW_MS, ENVELOPE_OVERHEAD } from '../../../src/mesh/protocol/envelope.ts';

const T0 = Date.UTC(2026, 11, 5);
const body = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

function identity(crypto: CryptoProvider, seed: number) {
  return crypto.x25519PrivateKey(generatePrivateKey(seededRng(seed)));
}

function channels(crypto: CryptoProvider, opts: { psk?: Uint8Array; epochA?: number } = {}) {
  const a = identity(crypto, 1), b = identity(crypto, 2), c = identity(crypto, 3);
  const rng = seededRng(9);
  const ab = new SignalChannel(crypto, rng, signalKeys(crypto, a, b.publicKey, opts.psk)!, a.publicKey, b.publicKey, opts.epochA ?? T0);
  const ba = new SignalChannel(crypto, rng, signalKeys(crypto, b, a.publicKey, opts.psk)!, b.publicKey, a.publicKey, T0);
  const ca = new SignalChannel(crypto, rng, signalKeys(crypto, c, a.publicKey)!, c.publicKey, a.publicKey, T0);
  return { a, b, c, ab, ba, ca };
}

for (const crypto of [nodeCrypto, portableCrypto]) {
  describe(`signaling envelopes (${crypto.name})`, () => {
    it('derives mirrored per-direction keys, different per direction and per psk', () => {
      const a = identity(crypto, 1), b = identity(crypto, 2);
      const kab = signalKeys(crypto, a, b.publicKey)!;
      const kba = signalKeys(crypto, b, a.publicKey)!;
      assert.deepEqual(kab.send, kba.recv);
      assert.deepEqual(kab.recv, kba.send);
      assert.notDeepEqual(kab.send, kab.recv);
      const psk = new Uint8Array(32).fill(7);
      assert.notDeepEqual(signalKeys(crypto, a, b.publicKey, psk)!.send, kab.send);
      assert.equal(signalKeys(crypto, a, new Uint8Array(32)), null, 'an all-zero DH is refused');
    });

    it('opens what the peer sealed, once', () => {
      const { ab, ba } = channels(crypto);
      const e = ab.seal(T0, body('candidates'));
      assert.equal(e.length, ENVELOPE_OVERHEAD + 'candidates'.length);
      const r = ba.open(T0 + 10, e);
      assert.ok(r.ok);
      assert.equal(text(r.body), 'candidates');
      assert.deepEqual(ba.open(T0 + 20, e), { ok: false, reason: 'replay' });
      assert.equal(ba.drops.replay, 1);
    });

    it('accepts reordering within the window, and each counter once', () => {
      const { ab, ba } = channels(crypto);
      const sent = Array.from({ length: 50 }, (_, i) => ab.seal(T0, body(`m${i}`)));
      const order = [...sent.keys()].sort((x, y) => ((x * 7919) % 50) - ((y * 7919) % 50));
      for (const i of order) assert.ok(ba.open(T0, sent[i]!).ok, `m${i}`);
      for (const e of sent) assert.equal(ba.open(T0, e).ok, false);
      assert.equal(ba.drops.replay, 50);
    });

    it('refuses a message reflected to its sender, misaddressed to another peer, or from a third key', () => {
      const { ab, ba, ca } = channels(crypto);
      const e = ab.seal(T0, body('hi'));
      // A's own message handed back to A as if B had sent it.
      assert.deepEqual(ab.open(T0, e), { ok: false, reason: 'seal' });
      // C (a different recipient) cannot open a message for B: C's channel with A has other keys.
      const misaddressed = ca.open(T0, e);
      assert.deepEqual(misaddressed, { ok: false, reason: 'seal' });
      // C's message to A offered to B as if it were A's.
      assert.deepEqual(ba.open(T0, ca.seal(T0, body('x'))), { ok: false, reason: 'seal' });
      assert.equal(ba.drops.seal, 1);
    });

    it('refuses any flipped bit, anywhere', () => {
      const { ab, ba } = channels(crypto);
      const e = ab.seal(T0, body('tamper me'));
      for (let bit = 0; bit < e.length * 8; bit++) {
        const t = Uint8Array.from(e);
        t[bit >> 3]! ^= 1 << (bit & 7);
        const r = ba.open(T0, t);
        assert.equal(r.ok, false, `bit ${bit}`);
      }
      assert.equal(ba.drops.seal + ba.drops.malformed, e.length * 8);
      assert.ok(ba.open(T0, e).ok, 'the original still opens: refusals changed no state');
    });

    it('refuses stale and future messages beyond the skew, and counts them', () => {
      const { ab, ba } = channels(crypto);
      const e = ab.seal(T0, body('late'));
      assert.deepEqual(ba.open(T0 + MAX_CLOCK_SKEW_MS + 1, e), { ok: false, reason: 'stale' });
      assert.deepEqual(ba.open(T0 - MAX_CLOCK_SKEW_MS - 1, e), { ok: false, reason: 'stale' });
      assert.ok(ba.open(T0 + MAX_CLOCK_SKEW_MS, e).ok);
      assert.equal(ba.drops.stale, 2);
    });

    it('a newer epoch (the sender restarted) starts a new window; the old epoch is refused after it', () => {
      const crypto_ = crypto;
      const { a, b, ab, ba } = channels(crypto_);
      const old1 = ab.seal(T0, body('old1'));
      const old2 = ab.seal(T0, body('old2'));
      assert.ok(ba.open(T0, old1).ok);
      const restarted = new SignalChannel(crypto_, seededRng(5), signalKeys(crypto_, a, b.publicKey)!, a.publicKey, b.publicKey, T0 + 1000);
      const fresh = restarted.seal(T0 + 1000, body('new'));
      const r = ba.open(T0 + 1000, fresh);
      assert.ok(r.ok && r.counter === 0, 'counter 0 again in the new epoch');
      assert.deepEqual(ba.open(T0 + 1000, old2), { ok: false, reason: 'oldEpoch' });
      assert.equal(ba.drops.oldEpoch, 1);
    });

    it('the preshared key must match on both sides', () => {
      const a = identity(crypto, 1), b = identity(crypto, 2);
      const ab = new SignalChannel(crypto, seededRng(1), signalKeys(crypto, a, b.publicKey, new Uint8Array(32).fill(1))!, a.publicKey, b.publicKey, T0);
      const ba = new SignalChannel(crypto, seededRng(2), signalKeys(crypto, b, a.publicKey)!, b.publicKey, a.publicKey, T0);
      assert.deepEqual(ba.open(T0, ab.seal(T0, body('x'))), { ok: false, reason: 'seal' });
    });

    it('never throws on arbitrary input', () => {
      const { ba } = channels(crypto);
      fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), fc.integer({ min: 0, max: 2 ** 52 }), (bytes, now) => {
        const r = ba.open(now, bytes);
        assert.equal(r.ok, false);
      }), { numRuns: 500 });
    });
  });

  describe(`hub proof and network keys (${crypto.name})`, () => {
    it('the hub accepts the holder of the key and no one else', () => {
      const client = identity(crypto, 1), other = identity(crypto, 2), hub = identity(crypto, 3);
      const challenge = new Uint8Array(32).fill(4);
      const proof = hubProof(crypto, client, hub.publicKey, challenge)!;
      assert.deepEqual(expectedHubProof(crypto, hub, client.publicKey, challenge), proof);
      // Someone else proving with their own key cannot claim the client's key.
      const forged = hubProof(crypto, other, hub.publicKey, challenge)!;
      assert.notDeepEqual(expectedHubProof(crypto, hub, client.publicKey, challenge), forged);
      // A proof is bound to the challenge: a recorded one is useless on the next connection.
      assert.notDeepEqual(expectedHubProof(crypto, hub, client.publicKey, new Uint8Array(32).fill(5)), proof);
    });

    it('network id, announce key and hub token are independent, and depend on name and secret', () => {
      const secret = body('correct horse battery staple');
      const k = networkKeys(crypto, 'lab', secret);
      assert.equal(k.networkId.length, 16);
      assert.notDeepEqual(k.announceKey, k.hubToken);
      assert.notDeepEqual(networkKeys(crypto, 'lab2', secret).networkId, k.networkId);
      assert.notDeepEqual(networkKeys(crypto, 'lab', body('wrong')).announceKey, k.announceKey);
      const challenge = new Uint8Array(32).fill(1);
      const client = identity(crypto, 1).publicKey;
      assert.notDeepEqual(tokenProof(crypto, k.hubToken, challenge, client), tokenProof(crypto, networkKeys(crypto, 'lab', body('wrong')).hubToken, challenge, client));
    });
  });
}
