/**
 * IP header helpers of the data path: parse, truncated input, impossible lengths, bad
 * versions, for IPv4 and IPv6 (the smoltcp wire-test pattern).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { fcParams } from '../support/property.ts';
import {
  IPV4_HEADER_LENGTH, IPV6_HEADER_LENGTH, destinationAddressOffset, ipPacketLength, ipVersion, isValidIpHeader,
  sourceAddressOffset,
} from '../../src/device/ip.ts';
import { icmpEcho4, icmpEcho6 } from '../support/ip.ts';

const setU16 = (p: Uint8Array, at: number, v: number) => { p[at] = v >> 8; p[at + 1] = v & 0xff; };
const padded = (p: Uint8Array, extra: number) => { const q = new Uint8Array(p.length + extra); q.set(p); return q; };

describe('IPv4', () => {
  const packet = icmpEcho4('10.0.0.1', '10.0.0.2', 7, 1, new Uint8Array(20)); // 48 bytes

  it('reads version, length and address offsets', () => {
    assert.equal(packet.length, 48);
    assert.equal(ipVersion(packet), 4);
    assert.equal(ipPacketLength(packet), 48);
    assert.equal(isValidIpHeader(packet), true);
    assert.equal(sourceAddressOffset(packet), 12);
    assert.equal(destinationAddressOffset(packet), 16);
    assert.deepEqual(packet.subarray(12, 16), Uint8Array.of(10, 0, 0, 1));
  });

  it('gives the declared length of a padded packet (trimming WireGuard padding)', () => {
    for (const extra of [1, 15, 16, 1000]) assert.equal(ipPacketLength(padded(packet, extra)), 48);
  });

  it('rejects truncated packets and declared lengths beyond the buffer', () => {
    for (let n = 0; n < packet.length; n++) {
      assert.equal(ipPacketLength(packet.subarray(0, n)), 0, `${n} bytes`);
      assert.equal(isValidIpHeader(packet.subarray(0, n)), false);
    }
    const p = packet.slice();
    setU16(p, 2, 49);
    assert.equal(ipPacketLength(p), 0);
    setU16(p, 2, 0xffff);
    assert.equal(ipPacketLength(p), 0);
  });

  it('rejects impossible header lengths', () => {
    const p = packet.slice();
    for (const ihl of [0, 1, 4]) {
      p[0] = 0x40 | ihl;
      assert.equal(ipPacketLength(p), 0, `IHL ${ihl}`);
    }
    p[0] = 0x46; // 24-byte header
    setU16(p, 2, 20);
    assert.equal(ipPacketLength(p), 0, 'total length below the IHL');
    setU16(p, 2, 24);
    assert.equal(ipPacketLength(p), 24, 'header only, with options');
    p[0] = 0x4f; // 60-byte header
    setU16(p, 2, 48);
    assert.equal(ipPacketLength(p), 0, 'IHL larger than the total length');
    const bare = new Uint8Array(20);
    bare[0] = 0x45;
    setU16(bare, 2, 20);
    assert.equal(ipPacketLength(bare), IPV4_HEADER_LENGTH, 'a bare 20-byte header');
    setU16(bare, 2, 0);
    assert.equal(ipPacketLength(bare), 0, 'total length 0');
  });

  it('works on a view into a larger buffer', () => {
    const big = new Uint8Array(200).fill(0x99);
    big.set(packet, 50);
    const view = big.subarray(50, 50 + packet.length + 3);
    assert.equal(ipPacketLength(view), 48);
    assert.equal(ipVersion(view), 4);
  });
});

describe('IPv6', () => {
  const packet = icmpEcho6('fd00::1', 'fd00::2', 7, 1, new Uint8Array(20)); // 40 + 28

  it('reads version, length and address offsets', () => {
    assert.equal(ipVersion(packet), 6);
    assert.equal(ipPacketLength(packet), 68);
    assert.equal(isValidIpHeader(packet), true);
    assert.equal(sourceAddressOffset(packet), 8);
    assert.equal(destinationAddressOffset(packet), 24);
    assert.equal(packet[8], 0xfd);
    assert.equal(packet[39], 2);
  });

  it('gives the declared length of a padded packet', () => {
    for (const extra of [1, 12, 16, 1000]) assert.equal(ipPacketLength(padded(packet, extra)), 68);
  });

  it('rejects truncated packets and payload lengths beyond the buffer', () => {
    for (let n = 0; n < packet.length; n++) assert.equal(ipPacketLength(packet.subarray(0, n)), 0, `${n} bytes`);
    const p = packet.slice();
    setU16(p, 4, 29);
    assert.equal(ipPacketLength(p), 0);
    setU16(p, 4, 0xffff);
    assert.equal(ipPacketLength(p), 0);
    assert.equal(ipPacketLength(padded(p, 0xffff + 40 - p.length)), 0xffff + 40, 'the largest payload length fits');
  });

  it('accepts a header with no payload', () => {
    const p = new Uint8Array(40);
    p[0] = 0x60;
    assert.equal(ipPacketLength(p), IPV6_HEADER_LENGTH);
    assert.equal(ipPacketLength(p.subarray(0, 39)), 0);
  });
});

describe('other versions', () => {
  it('are not IP', () => {
    assert.equal(ipVersion(new Uint8Array(0)), 0);
    assert.equal(ipPacketLength(new Uint8Array(0)), 0);
    assert.equal(sourceAddressOffset(new Uint8Array(0)), -1);
    assert.equal(destinationAddressOffset(new Uint8Array(0)), -1);
    for (const v of [0, 1, 2, 3, 5, 7, 15]) {
      const p = new Uint8Array(80);
      p[0] = (v << 4) | 5;
      setU16(p, 2, 40);
      setU16(p, 4, 10);
      assert.equal(ipVersion(p), 0, `version ${v}`);
      assert.equal(ipPacketLength(p), 0);
      assert.equal(isValidIpHeader(p), false);
      assert.equal(sourceAddressOffset(p), -1);
      assert.equal(destinationAddressOffset(p), -1);
    }
  });
});

describe('any bytes (fast-check)', () => {
  it('never throw, and a length is 0 or fits the header and the buffer', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 120 }), fc.constantFrom(0x45, 0x46, 0x4f, 0x60, 0x61, 0x00), (bytes, first) => {
      const p = bytes.slice();
      if (p.length > 0 && first !== 0) p[0] = first;
      const n = ipPacketLength(p);
      const v = ipVersion(p);
      if (n !== 0) {
        assert.ok(v === 4 || v === 6);
        assert.ok(n <= p.length);
        assert.ok(n >= (v === 4 ? Math.max(IPV4_HEADER_LENGTH, (p[0]! & 15) * 4) : IPV6_HEADER_LENGTH));
        const src = sourceAddressOffset(p);
        const dst = destinationAddressOffset(p);
        assert.ok(src + (v === 4 ? 4 : 16) <= n && dst + (v === 4 ? 4 : 16) <= n, 'addresses inside the packet');
      }
      assert.equal(isValidIpHeader(p), n !== 0);
    }), fcParams(5000));
  });
});
