import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { fold, sum16 } from '../../src/core/checksum.ts';
import {
  TcpCoalescer, VNET_F_NEEDS_CSUM, VNET_GSO_NONE, VNET_GSO_TCPV4, VNET_GSO_TCPV6, VNET_HDR_LEN,
  completeChecksum, readVnetHeader, segmentTcp, segmentTcpInPlace, tcpChecksumValid, tsoSegmentCount, writeTcpSegment,
} from '../../src/device/linux/offload.ts';
import type { VnetHeader } from '../../src/device/linux/offload.ts';

const ACK = 0x10, PSH = 0x08, FIN = 0x01, SYN = 0x02, CWR = 0x80;

interface TcpSpec {
  version: 4 | 6;
  payload: Uint8Array;
  seq?: number;
  flags?: number;
  srcPort?: number;
  options?: Uint8Array;
  id?: number;
}

/** A TCP packet with correct lengths and checksums (IPv4 10.0.0.1 → 10.0.0.2, IPv6 fd00::1 → fd00::2). */
function tcpPacket(s: TcpSpec): Uint8Array {
  const opts = s.options ?? new Uint8Array(0);
  const ip = s.version === 4 ? 20 : 40;
  const tcpLen = 20 + opts.length;
  const p = new Uint8Array(ip + tcpLen + s.payload.length);
  const v = new DataView(p.buffer);
  if (s.version === 4) {
    p[0] = 0x45; v.setUint16(2, p.length); v.setUint16(4, s.id ?? 7); p[6] = 0x40; p[8] = 64; p[9] = 6;
    p.set([10, 0, 0, 1, 10, 0, 0, 2], 12);
    v.setUint16(10, ~fold(sum16(p, 0, 20, 0)) & 0xffff);
  } else {
    p[0] = 0x60; v.setUint16(4, p.length - 40); p[6] = 6; p[7] = 64;
    p[8] = 0xfd; p[23] = 1; p[24] = 0xfd; p[39] = 2;
  }
  v.setUint16(ip, s.srcPort ?? 40000); v.setUint16(ip + 2, 5201);
  v.setUint32(ip + 4, s.seq ?? 1000); v.setUint32(ip + 8, 555);
  p[ip + 12] = (tcpLen / 4) << 4; p[ip + 13] = s.flags ?? ACK; v.setUint16(ip + 14, 501);
  p.set(opts, ip + 20);
  p.set(s.payload, ip + tcpLen);
  const pseudo = s.version === 4 ? sum16(p, 12, 20, 0) : sum16(p, 8, 40, 0);
  v.setUint16(ip + 16, ~fold(sum16(p, ip, p.length, pseudo + 6 + (p.length - ip))) & 0xffff);
  return p;
}

function bytes(n: number, seed = 1): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7) & 0xff;
  return b;
}

const TIMESTAMPS = Uint8Array.of(1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2);

function ipv4HeaderValid(p: Uint8Array): boolean {
  return fold(sum16(p, 0, 20, 0)) === 0xffff;
}

function segmentAll(p: Uint8Array, tcpOffset: number, mss: number): Uint8Array[] {
  const segs: Uint8Array[] = [];
  const n = segmentTcp(p, tcpOffset, mss, new Uint8Array(65536), (s) => segs.push(s.slice()));
  assert.equal(n, segs.length, 'returned count matches emitted segments');
  return segs;
}

describe('TSO in userspace: segmentTcp', () => {
  for (const version of [4, 6] as const) {
    it(`IPv${version}: cuts a super-packet into MSS segments with correct lengths, seqs, flags and checksums`, () => {
      const payload = bytes(5000);
      const superPacket = tcpPacket({ version, payload, seq: 0xfffff000, flags: ACK | PSH | FIN | CWR, options: TIMESTAMPS });
      const ip = version === 4 ? 20 : 40;
      const segs = segmentAll(superPacket, ip, 1368);
      assert.equal(segs.length, 4, 'ceil(5000 / 1368) segments');
      const joined: number[] = [];
      segs.forEach((s, i) => {
        const v = new DataView(s.buffer, s.byteOffset, s.length);
        const headers = ip + 32;
        const len = s.length - headers;
        assert.equal(len, i < 3 ? 1368 : 5000 - 3 * 1368, `segment ${i} payload length`);
        if (version === 4) {
          assert.equal(v.getUint16(2), s.length, 'IPv4 total length');
          assert.equal(v.getUint16(4), 7 + i, 'IPv4 ids count up');
          assert.ok(ipv4HeaderValid(s), `segment ${i} IPv4 header checksum`);
        } else assert.equal(v.getUint16(4), s.length - 40, 'IPv6 payload length');
        assert.equal(v.getUint32(ip + 4), (0xfffff000 + i * 1368) >>> 0, `segment ${i} seq (wrapping)`);
        const flags = s[ip + 13]!;
        assert.equal(flags & (PSH | FIN), i === 3 ? PSH | FIN : 0, `segment ${i}: PSH/FIN only on the last`);
        assert.equal(flags & CWR, i === 0 ? CWR : 0, `segment ${i}: CWR only on the first`);
        assert.ok(tcpChecksumValid(s, ip), `segment ${i} TCP checksum`);
        assert.deepEqual(s.subarray(ip + 20, ip + 32), TIMESTAMPS, 'options copied');
        joined.push(...s.subarray(headers));
      });
      assert.deepEqual(Uint8Array.from(joined), payload, 'payload preserved in order');
    });
  }

  for (const version of [4, 6] as const) {
    it(`IPv${version}: writes each segment at any offset of a larger buffer, as segmentTcp cuts it`, () => {
      const superPacket = tcpPacket({ version, payload: bytes(7001), seq: 12345, flags: ACK | PSH, options: TIMESTAMPS });
      const ip = version === 4 ? 20 : 40;
      const want = segmentAll(superPacket, ip, 1380);
      const count = tsoSegmentCount(superPacket, ip, 1380);
      assert.equal(count, want.length);
      // Odd and even offsets (a datagram's header in front, in a buffer of many datagrams).
      for (const base of [16, 17, 4096 + 16]) {
        const out = new Uint8Array(131072).fill(0xee);
        let o = base;
        for (let i = 0; i < count; i++) {
          const len = writeTcpSegment(superPacket, ip, 1380, i, count, out, o);
          assert.deepEqual(out.subarray(o, o + len), want[i], `segment ${i} at ${o}`);
          o += len + 48;
        }
        assert.equal(out[base - 1], 0xee, 'nothing written before the first segment');
      }
    });
  }

  it('property: segmentTcpInPlace emits what segmentTcp does, cutting the packet where it lies (a SharedArrayBuffer too)', () => {
    fc.assert(fc.property(fc.constantFrom(4 as const, 6 as const), fc.integer({ min: 1, max: 30_000 }), fc.integer({ min: 16, max: 1440 }), fc.nat(),
      fc.boolean(), fc.integer({ min: 0, max: 64 }), (version, len, mss, seq, shared, at) => {
        const ip = version === 4 ? 20 : 40;
        const original = tcpPacket({ version, payload: bytes(len, seq & 0xff), seq: seq >>> 0, flags: ACK | PSH | FIN | CWR, options: TIMESTAMPS, id: seq & 0xffff });
        const want = segmentAll(original, ip, mss);
        const store = new Uint8Array(shared ? new SharedArrayBuffer(at + original.length) : new ArrayBuffer(at + original.length));
        store.set(original, at);
        const p = store.subarray(at);
        const got: { view: Uint8Array; bytes: Uint8Array }[] = [];
        const n = segmentTcpInPlace(p, ip, mss, new Uint8Array(128), (v) => got.push({ view: v, bytes: v.slice() }));
        assert.equal(n, want.length);
        got.forEach((g, i) => {
          assert.deepEqual(g.bytes, want[i], `segment ${i}`);
          assert.equal(g.view.buffer, store.buffer, 'cut where it lies');
          assert.equal(g.view.byteOffset, at + i * mss, 'in front of its own payload');
        });
      }), { numRuns: 200 });
  });

  it('segmentTcpInPlace refuses what segmentTcp refuses, and headers longer than its template', () => {
    const emitted: Uint8Array[] = [];
    const emit = (x: Uint8Array) => emitted.push(x);
    assert.equal(segmentTcpInPlace(new Uint8Array(0), 20, 1000, new Uint8Array(128), emit), -1, 'empty');
    const good = tcpPacket({ version: 4, payload: bytes(3000), options: TIMESTAMPS });
    assert.equal(segmentTcpInPlace(good, 20, 0, new Uint8Array(128), emit), -1, 'zero MSS');
    const before = good.slice();
    assert.equal(segmentTcpInPlace(good, 20, 1000, new Uint8Array(40), emit), -2, '52 bytes of headers, a 40-byte template');
    assert.deepEqual(good, before, 'left alone');
    assert.equal(emitted.length, 0);
  });

  it('counts segments only for packets it can cut', () => {
    const good = tcpPacket({ version: 4, payload: bytes(3000) });
    assert.equal(tsoSegmentCount(good, 20, 1000), 3);
    assert.equal(tsoSegmentCount(good, 20, 1000, 1000), -1, 'a segment would not fit');
    assert.equal(tsoSegmentCount(good, 20, 0), -1, 'no segment size');
    assert.equal(tsoSegmentCount(good.subarray(0, 30), 20, 1000), -1, 'truncated TCP header');
  });

  it('refuses malformed input without emitting anything', () => {
    const good = tcpPacket({ version: 4, payload: bytes(100) });
    const out = new Uint8Array(65536);
    let emitted = 0;
    const emit = () => { emitted++; };
    assert.equal(segmentTcp(new Uint8Array(0), 20, 1000, out, emit), -1, 'empty');
    assert.equal(segmentTcp(good.subarray(0, 30), 20, 1000, out, emit), -1, 'truncated TCP header');
    assert.equal(segmentTcp(good, 20, 0, out, emit), -1, 'zero MSS');
    const bad = good.slice(); bad[0] = 0x75;
    assert.equal(segmentTcp(bad, 20, 1000, out, emit), -1, 'IP version 7');
    const udp = good.slice(); udp[9] = 17;
    assert.equal(segmentTcp(udp, 20, 1000, out, emit), -1, 'not TCP');
    const off = good.slice(); off[32] = 0xf0; // data offset 60 > packet
    assert.equal(segmentTcp(off.subarray(0, 70), 20, 1000, out, emit), -1, 'data offset past the end');
    assert.equal(emitted, 0, 'nothing emitted');
  });

  it('completeChecksum finishes a NEEDS_CSUM packet from the pseudo-header sum', () => {
    for (const version of [4, 6] as const) {
      const p = tcpPacket({ version, payload: bytes(999) });
      const ip = version === 4 ? 20 : 40;
      const pseudo = version === 4 ? sum16(p, 12, 20, 0) : sum16(p, 8, 40, 0);
      new DataView(p.buffer).setUint16(ip + 16, fold(pseudo + 6 + (p.length - ip)));
      assert.ok(!tcpChecksumValid(p, ip), 'partial checksum does not verify yet');
      assert.ok(completeChecksum(p, ip, 16), 'offsets in range');
      assert.ok(tcpChecksumValid(p, ip), `IPv${version} checksum completed`);
    }
    assert.equal(completeChecksum(new Uint8Array(30), 20, 16), false, 'field beyond the end');
  });
});

describe('GRO in userspace: TcpCoalescer', () => {
  const hdr: VnetHeader = { flags: 0, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0 };

  function coalesce(c: TcpCoalescer, segs: Uint8Array[]): { joined: number; out: Uint8Array } {
    assert.ok(c.start(segs[0]!), 'first segment leads a run');
    let joined = 1;
    for (const s of segs.slice(1)) if (c.append(s)) joined++; else break;
    return { joined, out: c.finish().slice() };
  }

  for (const version of [4, 6] as const) {
    it(`IPv${version}: segments → one GSO write that the kernel would cut back into the same segments`, () => {
      const ip = version === 4 ? 20 : 40;
      const payload = bytes(20_000, 3);
      const original = tcpPacket({ version, payload, seq: 77, flags: ACK | PSH, options: TIMESTAMPS });
      const segs = segmentAll(original, ip, 1368);
      const { joined, out } = coalesce(new TcpCoalescer(), segs);
      assert.equal(joined, segs.length, 'every segment joined');
      readVnetHeader(out, hdr);
      assert.equal(hdr.flags, VNET_F_NEEDS_CSUM);
      assert.equal(hdr.gsoType, version === 4 ? VNET_GSO_TCPV4 : VNET_GSO_TCPV6);
      assert.equal(hdr.gsoSize, 1368);
      assert.equal(hdr.hdrLen, ip + 32);
      assert.equal(hdr.csumStart, ip);
      assert.equal(hdr.csumOffset, 16);
      const big = out.subarray(VNET_HDR_LEN);
      assert.equal(big.length, original.length, 'same size as the original super-packet');
      assert.deepEqual(big.subarray(ip + 32), payload, 'payload');
      if (version === 4) assert.ok(ipv4HeaderValid(big), 'IPv4 header checksum');
      assert.ok(completeChecksum(big, hdr.csumStart, hdr.csumOffset), 'complete');
      assert.ok(tcpChecksumValid(big, ip), 'the completed TCP checksum verifies');
      assert.equal(big[ip + 13], ACK | PSH, 'PSH of the last segment kept');
      // And the kernel's own segmentation of it gives back the very segments we coalesced.
      assert.deepEqual(segmentAll(big, ip, hdr.gsoSize).map((s) => s.subarray(version === 4 ? 10 : 0)),
        segs.map((s) => s.subarray(version === 4 ? 10 : 0)), 'round trip (IPv4 ids/checksums aside)');
    });
  }

  it('stops a run at its byte limit (groMaxBytes)', () => {
    const payload = bytes(20_000, 5);
    const segs = segmentAll(tcpPacket({ version: 4, payload, seq: 1, flags: ACK, options: TIMESTAMPS }), 20, 1368);
    // 52 header bytes + 3 × 1368 = 4156 fits in 4400; a fourth segment would not.
    const { joined, out } = coalesce(new TcpCoalescer(4400), segs);
    assert.equal(joined, 3);
    assert.equal(out.length - VNET_HDR_LEN, 52 + 3 * 1368);
    assert.equal(coalesce(new TcpCoalescer(Number.NaN), segs).joined, segs.length, 'a bad limit means the default');
  });

  it('a single segment goes out untouched with an empty header', () => {
    const p = tcpPacket({ version: 4, payload: bytes(500) });
    const c = new TcpCoalescer();
    assert.ok(c.start(p), 'starts');
    const out = c.finish();
    readVnetHeader(out, hdr);
    assert.equal(hdr.gsoType, VNET_GSO_NONE);
    assert.equal(hdr.flags, 0);
    assert.deepEqual(out.subarray(VNET_HDR_LEN), p);
  });

  it('refuses what must not be merged', () => {
    const seg = (o: Partial<TcpSpec> = {}) => tcpPacket({ version: 4, payload: bytes(1000), seq: 1000, ...o });
    const cases: [string, Uint8Array][] = [
      ['a gap in the sequence', seg({ seq: 2001 })],
      ['a retransmission', seg({ seq: 1000 })],
      ['another flow', seg({ seq: 2000, srcPort: 40001 })],
      ['a SYN', seg({ seq: 2000, flags: ACK | SYN })],
      ['a FIN', seg({ seq: 2000, flags: ACK | FIN })],
      ['different options', seg({ seq: 2000, options: TIMESTAMPS })],
      ['a longer segment', tcpPacket({ version: 4, payload: bytes(1001), seq: 2000 })],
      ['another IP version', tcpPacket({ version: 6, payload: bytes(1000), seq: 2000 })],
    ];
    const corrupt = seg({ seq: 2000 });
    corrupt[60] = (corrupt[60]! ^ 0xff) & 0xff;
    cases.push(['a bad checksum', corrupt]);
    for (const [what, p] of cases) {
      const c = new TcpCoalescer();
      assert.ok(c.start(seg()), 'starts');
      assert.equal(c.append(p), false, what);
      assert.equal(c.count, 1, `${what}: run unchanged`);
    }
    // A shorter segment joins but ends the run; so does PSH.
    for (const last of [tcpPacket({ version: 4, payload: bytes(10), seq: 2000 }), seg({ seq: 2000, flags: ACK | PSH })]) {
      const c = new TcpCoalescer();
      assert.ok(c.start(seg()), 'starts');
      assert.ok(c.append(last), 'joins');
      assert.equal(c.append(tcpPacket({ version: 4, payload: bytes(1000), seq: 2000 + last.length - 40 })), false, 'run closed');
    }
    // Packets that cannot lead a run.
    const c = new TcpCoalescer();
    assert.equal(c.start(tcpPacket({ version: 4, payload: new Uint8Array(0) })), false, 'pure ACK');
    assert.equal(c.start(seg({ flags: ACK | SYN })), false, 'SYN');
    assert.equal(c.start(seg({ flags: ACK | PSH })), false, 'PSH alone');
    assert.equal(c.start(corrupt), false, 'bad checksum');
    assert.equal(c.start(new Uint8Array(20)), false, 'garbage');
  });

  it('property: any payload and MSS round-trip through segment → coalesce → complete', () => {
    fc.assert(fc.property(fc.constantFrom(4 as const, 6 as const), fc.integer({ min: 1, max: 30_000 }), fc.integer({ min: 500, max: 1440 }), fc.nat(),
      (version, len, mss, seq) => {
        const ip = version === 4 ? 20 : 40;
        const payload = bytes(len, seq & 0xff);
        const original = tcpPacket({ version, payload, seq: seq >>> 0, flags: ACK, options: TIMESTAMPS });
        const segs = segmentAll(original, ip, mss);
        for (const s of segs) assert.ok(tcpChecksumValid(s, ip), 'segment checksum');
        const c = new TcpCoalescer();
        if (!c.start(segs[0]!)) return;
        for (const s of segs.slice(1)) assert.ok(c.append(s), 'follower joins');
        const out = c.finish().slice();
        readVnetHeader(out, hdr);
        const big = out.subarray(VNET_HDR_LEN);
        if (segs.length > 1) assert.ok(completeChecksum(big, hdr.csumStart, hdr.csumOffset), 'complete');
        assert.ok(tcpChecksumValid(big, ip), 'checksum verifies');
        assert.deepEqual(big.subarray(ip + 32), payload, 'payload');
      }), { numRuns: 200 });
  });
});

describe('sum16', () => {
  /** The textbook sum, one big-endian 16-bit word at a time. */
  function naive(b: Uint8Array, start: number, end: number): number {
    let acc = 0;
    for (let i = start; i < end; i += 2) acc += (b[i]! << 8) | (i + 1 < end ? b[i + 1]! : 0);
    return fold(acc);
  }

  it('agrees with the word-by-word sum at every alignment, length and buffer offset', () => {
    const backing = new Uint8Array(3000);
    for (let i = 0; i < backing.length; i++) backing[i] = (i * 131 + 7) & 0xff;
    for (const viewOffset of [0, 1, 2, 3, 10]) {
      const b = backing.subarray(viewOffset);
      for (let start = 0; start < 8; start++) {
        for (const len of [0, 1, 2, 3, 63, 64, 65, 66, 67, 100, 1399, 1400, 1401, 2900]) {
          if (start + len > b.length) continue;
          assert.equal(fold(sum16(b, start, start + len, 0)), naive(b, start, start + len), `view +${viewOffset}, start ${start}, len ${len}`);
        }
      }
    }
  });

  it('property: arbitrary bytes, spans and views (including SharedArrayBuffer ones)', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 0, maxLength: 3000 }), fc.nat(), fc.nat(), fc.nat(7), fc.boolean(), (bytes, x, y, off, shared) => {
      const buf = shared ? new SharedArrayBuffer(bytes.length + 8) : new ArrayBuffer(bytes.length + 8);
      const b = new Uint8Array(buf, off, bytes.length);
      b.set(bytes);
      const start = bytes.length ? x % (bytes.length + 1) : 0;
      const end = start + (bytes.length - start ? y % (bytes.length - start + 1) : 0);
      assert.equal(fold(sum16(b, start, end, 0)), naive(b, start, end), 'same sum');
    }), { numRuns: 500 });
  });
});
