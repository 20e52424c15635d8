import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeProbe, encodeProbe, isProbe, MAX_PROBE } from '../../../src/mesh/protocol/probe.ts';
import { SIGNAL, decodeSignalBody, encodeSignalBody } from '../../../src/mesh/protocol/signal-body.ts';
import { ENVELOPE_OVERHEAD } from '../../../src/mesh/protocol/envelope.ts';

describe('path probes', () => {
  it('are told apart from WireGuard and STUN by their first four bytes', () => {
    const sender = new Uint8Array(32).fill(7);
    const p = encodeProbe(sender, new Uint8Array(ENVELOPE_OVERHEAD + 14));
    assert.ok(isProbe(p));
    assert.deepEqual(decodeProbe(p)?.sender, sender);
    assert.equal(decodeProbe(p)?.envelope.length, ENVELOPE_OVERHEAD + 14);
    assert.ok(!isProbe(Uint8Array.of(1, 0, 0, 0, 9)), 'a WireGuard initiation');
    assert.ok(!isProbe(Uint8Array.of(0, 1, 0, 8, 0x21, 0x12, 0xa4, 0x42)), 'a STUN request');
    assert.equal(decodeProbe(p.subarray(0, 36 + ENVELOPE_OVERHEAD - 1)), null, 'too short');
    assert.equal(decodeProbe(encodeProbe(sender, new Uint8Array(MAX_PROBE))), null, 'too long');
  });

  it('carry Ping and Pong bodies (the pong with the address the responder saw)', () => {
    const txid = Uint8Array.from({ length: 12 }, (_, i) => i);
    assert.deepEqual(decodeSignalBody(encodeSignalBody({ type: SIGNAL.ping, txid })), { type: SIGNAL.ping, txid });
    for (const observed of [{ address: '192.0.2.7', port: 51820 }, { address: 'fd00::7', port: 1 }, null]) {
      assert.deepEqual(decodeSignalBody(encodeSignalBody({ type: SIGNAL.pong, txid, observed })), { type: SIGNAL.pong, txid, observed });
    }
    // A ping without its transaction id, or with a short one, is malformed.
    assert.equal(decodeSignalBody(Uint8Array.of(SIGNAL.ping)), null);
    assert.equal(decodeSignalBody(Uint8Array.of(SIGNAL.ping, 5, 0, 2, 1, 2)), null);
  });
});
