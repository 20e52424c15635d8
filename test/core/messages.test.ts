/**
 * The wire views (src/core/messages.ts): `messageType` is the one length check the receive path
 * relies on, so every off-by-one and every reserved byte is tried here.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  CookieReply, Initiation, isWireGuardMessage, MESSAGE_COOKIE_REPLY, MESSAGE_INITIATION, MESSAGE_RESPONSE,
  MESSAGE_TRANSPORT, messageType, paddedLength, Response, Transport, writeType,
} from '../../src/core/messages.ts';

function framed(type: number, length: number): Uint8Array {
  const b = new Uint8Array(length);
  if (length > 0) b[0] = type;
  return b;
}

const EXACT: [number, number][] = [
  [MESSAGE_INITIATION, 148], [MESSAGE_RESPONSE, 92], [MESSAGE_COOKIE_REPLY, 64],
];

describe('messageType', () => {
  it('accepts handshake messages of exactly their size, and nothing one byte shorter or longer', () => {
    for (const [type, size] of EXACT) {
      assert.equal(messageType(framed(type, size)), type, `type ${type} at ${size}`);
      assert.equal(isWireGuardMessage(framed(type, size)), true);
      assert.equal(messageType(framed(type, size - 1)), 0, `type ${type} one short`);
      assert.equal(messageType(framed(type, size + 1)), 0, `type ${type} one long`);
      assert.equal(isWireGuardMessage(framed(type, size + 1)), false);
    }
    assert.deepEqual([Initiation.size, Response.size, CookieReply.size], [148, 92, 64]);
  });

  it('accepts transport messages from a keepalive (32 bytes) up, not one byte less', () => {
    assert.equal(Transport.minSize, 32);
    assert.equal(messageType(framed(MESSAGE_TRANSPORT, 31)), 0);
    assert.equal(messageType(framed(MESSAGE_TRANSPORT, 32)), MESSAGE_TRANSPORT);
    assert.equal(messageType(framed(MESSAGE_TRANSPORT, 33)), MESSAGE_TRANSPORT);
    assert.equal(messageType(framed(MESSAGE_TRANSPORT, 1500)), MESSAGE_TRANSPORT);
  });

  it('refuses a non-zero reserved byte, any unknown type and anything under 4 bytes', () => {
    for (const [type, size] of [...EXACT, [MESSAGE_TRANSPORT, 32] as [number, number]]) {
      for (const i of [1, 2, 3]) {
        const b = framed(type, size);
        b[i] = 1;
        assert.equal(messageType(b), 0, `type ${type}, reserved byte ${i}`);
      }
    }
    for (const type of [0, 5, 0x81, 0xff]) {
      for (const size of [32, 64, 92, 148]) assert.equal(messageType(framed(type, size)), 0, `type ${type}`);
    }
    for (let n = 0; n < 4; n++) assert.equal(messageType(framed(MESSAGE_TRANSPORT, n)), 0, `${n} bytes`);
    // Three bytes that would pass every reserved-byte test if the length were not checked first.
    assert.equal(messageType(Uint8Array.of(MESSAGE_TRANSPORT, 0, 0)), 0);
  });
});

describe('writeType', () => {
  it('writes the type and zeroes the three reserved bytes', () => {
    const b = new Uint8Array(8).fill(0xff);
    writeType(b, MESSAGE_RESPONSE);
    assert.deepEqual([...b], [2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
  });
});

describe('paddedLength', () => {
  it('pads to a multiple of 16 when there is no MTU cap', () => {
    assert.deepEqual([0, 1, 15, 16, 17, 1419, 1500].map((n) => paddedLength(n, 0)), [0, 16, 16, 16, 32, 1424, 1504]);
  });

  it('never pads beyond the MTU, and never shortens a packet longer than the MTU', () => {
    assert.equal(paddedLength(1405, 1420), 1408, 'room for the whole padding');
    assert.equal(paddedLength(1419, 1420), 1420, 'padding cut at the MTU');
    assert.equal(paddedLength(1420, 1420), 1420, 'exactly the MTU');
    assert.equal(paddedLength(1500, 1420), 1500, 'longer than the MTU: unpadded');
    assert.equal(paddedLength(1409, 1424), 1424, 'padded length equal to the MTU is allowed');
  });
});
