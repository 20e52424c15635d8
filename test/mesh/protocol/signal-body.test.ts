/** Signal bodies: round trips, bounds, fields from later versions skipped, garbage refused. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SIGNAL, decodeSignalBody, encodeSignalBody, MAX_CANDIDATES } from '../../../src/mesh/protocol/signal-body.ts';
import type { SignalBody } from '../../../src/mesh/protocol/signal-body.ts';

describe('signal bodies', () => {
  it('round-trip candidates, hello and the bare types', () => {
    const bodies: SignalBody[] = [
      { type: SIGNAL.candidates, generation: 7, candidates: [
        { kind: 'host', address: '192.0.2.1', port: 51820, priority: 100 },
        { kind: 'hubObserved', address: '2001:db8::1', port: 40000, priority: 0xfffffffe },
      ] },
      { type: SIGNAL.callMeMaybe, generation: 0xffffffff, candidates: [] },
      { type: SIGNAL.hello, addresses: [{ address: '10.10.0.2', bits: 32 }, { address: 'fd10::2', bits: 128 }], name: 'bob' },
      { type: SIGNAL.hello, addresses: [], name: '' },
      { type: SIGNAL.helloRequest },
      { type: SIGNAL.bye },
    ];
    for (const b of bodies) assert.deepEqual(decodeSignalBody(encodeSignalBody(b)), b);
  });

  it('skips fields and candidate kinds from later versions', () => {
    const m = encodeSignalBody({ type: SIGNAL.candidates, generation: 1, candidates: [{ kind: 'host', address: '192.0.2.1', port: 1, priority: 1 }] });
    const later = Uint8Array.of(...m, 0x40, 0, 2, 9, 9, 0x02, 0, 11, 99, 192, 0, 2, 2, 0, 1, 0, 0, 0, 1);
    assert.deepEqual(decodeSignalBody(later), decodeSignalBody(m));
  });

  it('refuses malformed bodies', () => {
    assert.equal(decodeSignalBody(new Uint8Array(0)), null);
    assert.equal(decodeSignalBody(Uint8Array.of(0x99)), null, 'unknown type');
    assert.equal(decodeSignalBody(Uint8Array.of(SIGNAL.candidates)), null, 'candidates without a generation');
    assert.equal(decodeSignalBody(Uint8Array.of(SIGNAL.hello, 4, 0, 3, 0x41, 0x20, 0x42)), null, 'a name that is no DNS label');
    assert.equal(decodeSignalBody(Uint8Array.of(SIGNAL.hello, 3, 0, 5, 10, 0, 0, 1, 33)), null, '/33 for IPv4');
    assert.equal(decodeSignalBody(Uint8Array.of(SIGNAL.hello, 3, 0, 9)), null, 'a field longer than the body');
    const many = { type: SIGNAL.candidates, generation: 1, candidates: Array.from({ length: MAX_CANDIDATES }, (_, i) => ({ kind: 'host' as const, address: `192.0.2.${i}`, port: 1, priority: 1 })) };
    const full = encodeSignalBody(many);
    assert.equal(decodeSignalBody(full)?.type, SIGNAL.candidates);
    const over = Uint8Array.of(...full, 2, 0, 11, 1, 192, 0, 2, 99, 0, 1, 0, 0, 0, 1);
    assert.equal(decodeSignalBody(over), null, 'more than 16 candidates');
  });

  it('decodes any bytes without throwing', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (b) => { decodeSignalBody(b); }), { numRuns: 3000 });
  });
});
