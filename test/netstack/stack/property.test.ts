/**
 * Property tests (fast-check): whatever arrives — arbitrary bytes, well-formed IP packets with
 * arbitrary contents, well-formed TCP segments aimed at a live connection — `input` never throws,
 * nothing is counted as an internal error, and the stack still carries a new connection afterwards.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { connected, record, writeAll } from './tcp-support.ts';
import { equalBytes, ipPacket, pattern, tcpPacket } from './wire.ts';
import type { Host, Wire } from './wire.ts';

/** A fresh connection A→B still moves data intact. */
function stillWorks(wire: Wire, a: Host, b: Host): boolean {
  wire.tap = undefined;
  const l = b.stack.tcpListen(8080);
  let got: Uint8Array | undefined;
  l.onConnection = (c) => { const r = record(c, wire); c.events.onEnd = () => { got = r.received(); }; };
  const c = a.stack.tcpConnect({ address: '10.0.0.2', port: 8080 }, wire.now);
  record(c, wire);
  const data = pattern(30_000, 4);
  writeAll(c, data, wire, () => c.shutdown(wire.now));
  wire.runWhile(() => got === undefined, 60_000);
  l.close();
  return got !== undefined && equalBytes(got, data);
}

function noInternalErrors(...hosts: Host[]): boolean {
  return hosts.every((h) => h.stack.counters.internalErrors === 0);
}

describe('hostile input', () => {
  it('arbitrary bytes never throw and leave the stack working', () => {
    const { wire, a, b } = connected();
    fc.assert(fc.property(fc.array(fc.uint8Array({ minLength: 0, maxLength: 200 }), { maxLength: 20 }), (packets) => {
      for (const p of packets) {
        // Make about half of them look like IPv4/IPv6 so they get past the version check.
        if (p.length > 0 && p[0]! % 2 === 0) p[0] = (p[0]! & 0x0f) | 0x40;
        b.stack.input(p, wire.now);
      }
      wire.run(10);
      return noInternalErrors(a, b);
    }), { numRuns: 300, seed: 42 });
    assert.ok(stillWorks(wire, a, b), 'stack still works');
  });

  it('well-formed IP packets with arbitrary protocols and payloads never throw', () => {
    const { wire, a, b } = connected();
    const packet = fc.record({
      v6: fc.boolean(),
      protocol: fc.constantFrom(1, 6, 17, 58, 0, 44, 60, 99),
      body: fc.uint8Array({ maxLength: 300 }),
      checksumAt: fc.constantFrom(-1, 2, 6, 16),
    });
    fc.assert(fc.property(fc.array(packet, { maxLength: 10 }), (ps) => {
      for (const p of ps) {
        const at = p.checksumAt + 2 <= p.body.length ? p.checksumAt : -1;
        const src = p.v6 ? 'fd00::1' : '10.0.0.1';
        const dst = p.v6 ? 'fd00::2' : '10.0.0.2';
        b.stack.input(ipPacket(src, dst, p.protocol, p.body, at), wire.now);
      }
      wire.run(10);
      return noInternalErrors(a, b);
    }), { numRuns: 300, seed: 7 });
    assert.ok(stillWorks(wire, a, b), 'stack still works');
  });

  it('arbitrary TCP segments at a live connection never throw; the stack keeps working', () => {
    const { wire, a, b, client, server } = connected();
    const segment = fc.record({
      toServer: fc.boolean(),
      flags: fc.integer({ min: 0, max: 63 }),
      seqDelta: fc.oneof(fc.integer({ min: -70_000, max: 70_000 }), fc.integer({ min: 0, max: 0xffffffff })),
      ackDelta: fc.oneof(fc.integer({ min: -70_000, max: 70_000 }), fc.integer({ min: 0, max: 0xffffffff })),
      window: fc.integer({ min: 0, max: 65535 }),
      mss: fc.option(fc.integer({ min: 0, max: 65535 })),
      wscale: fc.option(fc.integer({ min: 0, max: 255 })),
      ts: fc.option(fc.record({ val: fc.integer({ min: 0, max: 0xffffffff }), ecr: fc.integer({ min: 0, max: 0xffffffff }) })),
      sack: fc.option(fc.array(fc.integer({ min: -100_000, max: 100_000 }), { minLength: 2, maxLength: 6 })),
      payload: fc.uint8Array({ maxLength: 1500 }),
      advance: fc.integer({ min: 0, max: 3000 }),
    });
    fc.assert(fc.property(fc.array(segment, { maxLength: 15 }), (segs) => {
      // Keep data outstanding both ways so ACK and SACK processing has something to chew on.
      if (client.state === 'ESTABLISHED') client.write(pattern(20_000, 3), wire.now);
      if (server.state === 'ESTABLISHED') server.write(pattern(20_000, 4), wire.now);
      for (const s of segs) {
        const conn = s.toServer ? server : client;
        const host = s.toServer ? b : a;
        const seg = {
          srcPort: conn.remote.port, dstPort: conn.local.port,
          seq: (conn.rcvNxt + s.seqDelta) >>> 0, ack: (conn.sndUna + s.ackDelta) >>> 0, flags: s.flags, window: s.window,
          ...(s.mss !== null ? { mss: s.mss } : {}),
          ...(s.wscale !== null ? { wscale: s.wscale } : {}),
          ...(s.ts !== null ? { ts: s.ts } : {}),
          // SACK blocks around what the receiving end has outstanding (an even count of edges).
          ...(s.sack !== null && s.sack.length % 2 === 0 ? { sack: s.sack.map((d) => (conn.sndUna + d) >>> 0) } : {}),
        };
        wire.inject(host, tcpPacket(conn.remote.address, conn.local.address, seg, s.payload));
        wire.run(s.advance);
      }
      return noInternalErrors(a, b);
    }), { numRuns: 200, seed: 99 });
    wire.run(400_000);
    assert.ok(noInternalErrors(a, b), 'no internal errors');
    assert.ok(stillWorks(wire, a, b), 'stack still works');
  });

  it('arbitrary fragments never throw and reassembly memory stays bounded', () => {
    const { wire, a, b } = connected({ b: { reassemblyMaxBytes: 64 * 1024, reassemblyMaxDatagrams: 8 } });
    const frag = fc.record({
      id: fc.integer({ min: 0, max: 3 }),
      offset: fc.integer({ min: 0, max: 8191 }),
      more: fc.boolean(),
      body: fc.uint8Array({ maxLength: 1400 }),
    });
    fc.assert(fc.property(fc.array(frag, { maxLength: 30 }), (fs) => {
      for (const f of fs) {
        const p = ipPacket('10.0.0.1', '10.0.0.2', 17, f.body, -1);
        p[4] = 0; p[5] = f.id;
        const field = (f.more ? 0x2000 : 0) | f.offset;
        p[6] = field >> 8; p[7] = field & 0xff;
        p[10] = 0; p[11] = 0;
        // Recompute the header checksum after editing the header.
        let sum = 0;
        for (let i = 0; i < 20; i += 2) sum += (p[i]! << 8) | p[i + 1]!;
        while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
        const c = ~sum & 0xffff;
        p[10] = c >> 8; p[11] = c & 0xff;
        b.stack.input(p, wire.now);
      }
      wire.run(100);
      return noInternalErrors(a, b);
    }), { numRuns: 300, seed: 5 });
    assert.ok(stillWorks(wire, a, b), 'stack still works');
  });
});
