/** Byte helpers (src/core/bytes.ts) and the two helpers of src/core/crypto.ts. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { compareBytes, concatBytes, EMPTY, isAllZero, readU32LE, utf8, writeU32BE, writeU32LE } from '../../src/core/bytes.ts';
import { equalConstantTime, zeroize } from '../../src/core/crypto.ts';

describe('bytes', () => {
  it('reads and writes 32-bit integers at an offset, little- and big-endian, unsigned', () => {
    const b = new Uint8Array(7).fill(0xaa);
    writeU32LE(b, 2, 0x81020304);
    assert.deepEqual([...b], [0xaa, 0xaa, 4, 3, 2, 0x81, 0xaa]);
    assert.equal(readU32LE(b, 2), 0x81020304, 'unsigned even with the top bit set');
    writeU32BE(b, 1, 0xf1020304);
    assert.deepEqual([...b], [0xaa, 0xf1, 2, 3, 4, 0x81, 0xaa]);
    writeU32LE(b, 0, 0xffffffff);
    assert.equal(readU32LE(b, 0), 0xffffffff);
  });

  it('concatenates, encodes labels, and has an empty constant', () => {
    assert.deepEqual(concatBytes(Uint8Array.of(1), EMPTY, Uint8Array.of(2, 3)), Uint8Array.of(1, 2, 3));
    assert.equal(concatBytes().length, 0);
    assert.deepEqual(utf8('mac1----'), Uint8Array.of(109, 97, 99, 49, 45, 45, 45, 45));
    assert.equal(EMPTY.length, 0);
  });

  it('compares lexicographically, a prefix first', () => {
    assert.equal(compareBytes(Uint8Array.of(1, 2), Uint8Array.of(1, 2)), 0);
    assert.ok(compareBytes(Uint8Array.of(1, 2), Uint8Array.of(1, 3)) < 0);
    assert.ok(compareBytes(Uint8Array.of(2, 0), Uint8Array.of(1, 9)) > 0);
    assert.ok(compareBytes(Uint8Array.of(1), Uint8Array.of(1, 0)) < 0, 'a prefix is smaller');
    assert.ok(compareBytes(Uint8Array.of(1, 0), Uint8Array.of(1)) > 0);
    assert.ok(compareBytes(Uint8Array.of(0, 1), Uint8Array.of(1)) < 0, 'the first byte decides');
  });

  it('isAllZero looks at every byte', () => {
    assert.equal(isAllZero(new Uint8Array(32)), true);
    assert.equal(isAllZero(EMPTY), true);
    for (const i of [0, 15, 31]) {
      const b = new Uint8Array(32);
      b[i] = 0x80;
      assert.equal(isAllZero(b), false, `byte ${i}`);
    }
  });
});

describe('equalConstantTime and zeroize', () => {
  it('equal only for the same length and the same bytes, every byte compared', () => {
    assert.equal(equalConstantTime(Uint8Array.of(1, 2, 3), Uint8Array.of(1, 2, 3)), true);
    assert.equal(equalConstantTime(EMPTY, EMPTY), true);
    assert.equal(equalConstantTime(Uint8Array.of(1), Uint8Array.of(1, 0)), false, 'a zero-extended copy');
    assert.equal(equalConstantTime(Uint8Array.of(1, 0), Uint8Array.of(1)), false);
    for (const i of [0, 1, 2]) {
      const b = Uint8Array.of(1, 2, 3);
      b[i]! ^= 0x40;
      assert.equal(equalConstantTime(Uint8Array.of(1, 2, 3), b), false, `byte ${i}`);
    }
    // Differences that would cancel out under a sum or an AND.
    assert.equal(equalConstantTime(Uint8Array.of(1, 2), Uint8Array.of(2, 1)), false);
    assert.equal(equalConstantTime(Uint8Array.of(0xff, 0), Uint8Array.of(0, 0)), false);
  });

  it('zeroize fills every buffer it is given with zeros and skips null and undefined', () => {
    const a = new Uint8Array(4).fill(7), b = new Uint8Array(2).fill(9);
    zeroize(a, null, undefined, b);
    assert.deepEqual([...a, ...b], [0, 0, 0, 0, 0, 0]);
  });
});
