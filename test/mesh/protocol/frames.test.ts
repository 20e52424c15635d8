/** Hub frames: every frame round-trips; any byte string decodes to a frame or null, never throws. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FRAME, decodeFrame, encodeFrame, MAX_FRAME, KEY_LENGTH, MAX_PAYLOAD } from '../../../src/mesh/protocol/frames.ts';
import type { Frame } from '../../../src/mesh/protocol/frames.ts';

const key = (n: number) => new Uint8Array(32).fill(n);
const id = (n: number) => new Uint8Array(16).fill(n);

const samples: Frame[] = [
  { type: FRAME.serverHello, version: 1, hubEphemeral: key(1), challenge: key(2), tokenRequired: true },
  { type: FRAME.clientHello, version: 1, publicKey: key(3), proof: id(4), tokenProof: id(0) },
  { type: FRAME.welcome, hubId: id(5), observed: { address: '192.0.2.7', port: 40000 }, maxFrame: MAX_FRAME, rate: 10 << 20, burst: 4 << 20 },
  { type: FRAME.welcome, hubId: id(5), observed: { address: '2001:db8::7', port: 1 }, maxFrame: 100, rate: 1, burst: 2 },
  { type: FRAME.welcome, hubId: id(5), observed: null, maxFrame: 100, rate: 1, burst: 2 },
  { type: FRAME.sendSignal, key: key(6), payload: Uint8Array.of(1, 2, 3) },
  { type: FRAME.recvSignal, key: key(6), payload: Uint8Array.of(1) },
  { type: FRAME.sendPacket, key: key(7), payload: new Uint8Array(MAX_PAYLOAD).fill(9) },
  { type: FRAME.recvPacket, key: key(7), payload: new Uint8Array(148) },
  { type: FRAME.peerAbsent, key: key(8), reason: 1 },
  { type: FRAME.announce, networkId: id(9), sealed: new Uint8Array(80).fill(3) },
  { type: FRAME.subscribe, networkId: id(9) },
  { type: FRAME.announcement, networkId: id(9), key: key(10), sealed: new Uint8Array(80).fill(4) },
  { type: FRAME.withdrawn, networkId: id(9), key: key(10) },
  { type: FRAME.ping, data: new Uint8Array(8).fill(11) },
  { type: FRAME.pong, data: new Uint8Array(8).fill(12) },
  { type: FRAME.error, code: 0x0403, reason: 'key not allowed' },
];

const plain = (f: Frame | null) => JSON.parse(JSON.stringify(f, (_k, v) => (v instanceof Uint8Array ? Array.from(v) : v)));

describe('hub frames', () => {
  it('round-trip every frame type', () => {
    for (const f of samples) assert.deepEqual(plain(decodeFrame(encodeFrame(f))), plain(f), `type ${f.type}`);
  });

  it('refuses wrong lengths, empty relays and unknown types', () => {
    for (const f of samples) {
      const m = encodeFrame(f);
      const isVariable = [FRAME.sendSignal, FRAME.recvSignal, FRAME.sendPacket, FRAME.recvPacket, FRAME.announce, FRAME.announcement, FRAME.error].includes(f.type as never);
      if (!isVariable) {
        assert.equal(decodeFrame(m.subarray(0, m.length - 1)), null, `short ${f.type}`);
        assert.equal(decodeFrame(Uint8Array.of(...m, 0)), null, `long ${f.type}`);
      }
    }
    assert.equal(decodeFrame(Uint8Array.of(FRAME.sendPacket, ...key(1))), null, 'a relay frame with no datagram');
    assert.equal(decodeFrame(new Uint8Array(1 + KEY_LENGTH + MAX_PAYLOAD + 1).fill(FRAME.sendPacket, 0, 1)), null, 'over the largest datagram');
    assert.equal(decodeFrame(Uint8Array.of(0x55, 0, 0)), null);
    assert.equal(decodeFrame(new Uint8Array(0)), null);
    assert.equal(decodeFrame(Uint8Array.of(FRAME.error, 0, 1, 0xff)), null, 'an error reason that is not UTF-8');
  });

  it('decodes any bytes without throwing', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 0, max: 0x7f }), (bytes, type) => {
      const m = Uint8Array.of(type, ...bytes);
      const f = decodeFrame(m);
      if (f) assert.equal(f.type, type);
    }), { numRuns: 2000 });
  });
});
