/**
 * ACKs held to the end of an input burst (TcpIpStackApi.beginInputBurst/endInputBurst): one
 * pure ACK per connection covers a burst's in-order data (at most 64 KiB), while the ACKs that
 * must go at once (out of order, FIN) still do, and without a burst every second segment is
 * acknowledged as before. The burst's in-order bytes likewise reach the application as one chunk
 * at its end (at most 64 KiB each), before any event that follows them.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FIN, RST } from '../../../src/netstack/stack/tcp/segment.ts';
import { connected } from './tcp-support.ts';
import { equalBytes, pattern, tcpOf, tcpPacket } from './wire.ts';
import type { Host, Wire } from './wire.ts';

/** A's next `count` segments to B, taken off the wire instead of delivered. */
function capture(wire: Wire, a: Host, write: () => void): Uint8Array[] {
  const held: Uint8Array[] = [];
  wire.tap = (from, p) => {
    const s = tcpOf(p);
    if (from === a && s && (s.payload.length > 0 || s.flags & FIN)) { held.push(p.slice()); return 'drop'; }
    return 'pass';
  };
  write();
  wire.tap = undefined;
  return held;
}

/** Feeds `packets` to B (in a burst when asked) and returns B's pure ACK numbers, noting which went out inside. */
function feed(wire: Wire, b: Host, packets: Uint8Array[], burst: boolean): { acks: number[]; during: number } {
  const acks: number[] = [];
  wire.tap = (from, p) => {
    const s = tcpOf(p);
    if (from === b && s && s.payload.length === 0) acks.push(s.ack);
    return 'pass';
  };
  if (burst) b.stack.beginInputBurst();
  for (const p of packets) b.stack.input(p, wire.now);
  const during = acks.length;
  if (burst) b.stack.endInputBurst(wire.now);
  wire.tap = undefined;
  return { acks, during };
}

function setUp(bytes: number) {
  const c = connected({ b: { tcpReceiveBuffer: 1 << 20, tcpReceiveBufferInitial: 1 << 20 } });
  const { wire, a, client } = c;
  // Open A's congestion window first, so that `bytes` leave at once.
  const warm = pattern(400_000, 9);
  let off = 0;
  client.events.onDrain = () => { while (off < warm.length) { const n = client.write(warm.subarray(off), wire.now); if (n === 0) return; off += n; } };
  client.events.onDrain();
  wire.runWhile(() => c.serverLog.received().length < warm.length, 60_000);
  wire.run(500);
  c.serverLog.data.length = 0;
  const data = pattern(bytes, 3);
  const segments = capture(wire, a, () => { assert.equal(client.write(data, wire.now), bytes); });
  return { ...c, data, segments };
}

describe('ACKs in an input burst', () => {
  it('sends one ACK at the end of a burst of in-order segments, covering all of them', () => {
    const { wire, b, server, serverLog, data, segments } = setUp(10 * 1400);
    assert.ok(segments.length >= 10, `${segments.length} segments`);
    const { acks, during } = feed(wire, b, segments, true);
    assert.equal(during, 0, 'no ACK inside the burst');
    assert.equal(acks.length, 1, `one ACK for the burst: ${acks.length}`);
    assert.equal(acks[0], server.rcvNxt, 'it acknowledges everything');
    assert.ok(equalBytes(serverLog.received(), data), 'the data arrived intact');
  });

  it('acknowledges every second segment at once outside a burst', () => {
    const { wire, b, segments } = setUp(10 * 1400);
    const { acks } = feed(wire, b, segments, false);
    assert.equal(acks.length, Math.floor(segments.length / 2));
  });

  it('sends an ACK within the burst once 64 KiB go unacknowledged', () => {
    const { wire, b, server, segments } = setUp(150_000);
    const acked0 = server.lastAckSent;
    const { acks, during } = feed(wire, b, segments, true);
    assert.ok(during >= 2, `ACKs inside a 150 kB burst: ${during}`);
    let prev = acked0;
    for (const ack of acks) {
      const covered = (ack - prev) >>> 0;
      assert.ok(covered <= 65536 + 1500, `one ACK covered ${covered} bytes`);
      prev = ack;
    }
    assert.equal(acks.at(-1), server.rcvNxt, 'the last one acknowledges everything');
  });

  it('still sends a duplicate ACK at once for a segment out of order', () => {
    const { wire, b, segments } = setUp(6 * 1400);
    const { acks, during } = feed(wire, b, [segments[0]!, ...segments.slice(2)], true);
    assert.ok(during >= segments.length - 2, `out-of-order segments are answered at once: ${during}`);
    assert.ok(acks.length >= during);
  });

  it('acknowledges a FIN at once, also one riding on data', () => {
    const { wire, a, b, client, server, segments } = setUp(2 * 1400);
    feed(wire, b, segments, false);
    const last = capture(wire, a, () => { client.write(pattern(3 * 1400, 4), wire.now); client.close(wire.now); });
    assert.ok(last.length >= 3);
    assert.ok(tcpOf(last.at(-1)!)!.flags & FIN);
    const { acks, during } = feed(wire, b, last, true);
    assert.ok(during >= 1, 'the FIN is acknowledged inside the burst');
    assert.equal(acks.at(-1), server.rcvNxt, 'FIN included');
    assert.equal(server.state, 'CLOSE-WAIT');
  });

  it('sends no pure ACK at the end when data going the other way carried it', () => {
    const { wire, b, server, segments } = setUp(10 * 1400);
    // B answers what reaches it (the burst's bytes, at its end), before the held ACK would go.
    const onData = server.events.onData!;
    let n = 0;
    server.events.onData = (d) => { onData(d); n++; server.write(pattern(100, 5), wire.now); };
    const { acks } = feed(wire, b, segments, true);
    assert.ok(n >= 1);
    assert.deepEqual(acks, [], 'every ACK rode on data');
  });
});

describe('bytes of an input burst', () => {
  it('reach the application as one chunk at the end of the burst', () => {
    const { wire, b, server, serverLog, data, segments } = setUp(10 * 1400);
    let inside = -1;
    const onData = server.events.onData!;
    server.events.onData = (d) => { onData(d); if (inside < 0) inside = 0; };
    b.stack.beginInputBurst();
    for (const p of segments) b.stack.input(p, wire.now);
    inside = serverLog.data.length;
    b.stack.endInputBurst(wire.now);
    assert.equal(inside, 0, 'nothing is delivered inside the burst');
    assert.equal(serverLog.data.length, 1, `chunks: ${serverLog.data.map((c) => c.length).join(', ')}`);
    assert.ok(equalBytes(serverLog.received(), data));
  });

  it('reach it per segment outside a burst', () => {
    const { wire, b, serverLog, data, segments } = setUp(6 * 1400);
    feed(wire, b, segments, false);
    assert.equal(serverLog.data.length, segments.length);
    assert.ok(equalBytes(serverLog.received(), data));
  });

  it('come in chunks of at most 64 KiB, in order, when a burst brings more', () => {
    const { wire, b, serverLog, data, segments } = setUp(200_000);
    feed(wire, b, segments, true);
    const sizes = serverLog.data.map((c) => c.length);
    assert.ok(sizes.length >= 4 && sizes.length < segments.length / 4, `chunks: ${sizes.join(', ')}`);
    assert.ok(sizes.every((n) => n <= 65536), `chunks: ${sizes.join(', ')}`);
    assert.ok(equalBytes(serverLog.received(), data), 'every byte once, in order');
  });

  it('come before the end of the stream a FIN in the same burst brings', () => {
    const { wire, a, b, client, server, segments } = setUp(1400);
    feed(wire, b, segments, false);
    const last = capture(wire, a, () => { client.write(pattern(3 * 1400, 4), wire.now); client.close(wire.now); });
    const events: string[] = [];
    const { onData, onEnd } = server.events;
    server.events.onData = (d) => { onData!(d); events.push(`data ${d.length}`); };
    server.events.onEnd = () => { onEnd!(); events.push('end'); };
    feed(wire, b, last, true);
    assert.deepEqual(events, ['data 4200', 'end']);
  });

  it('come before the close a reset in the same burst causes', () => {
    const { wire, b, server, serverLog, segments } = setUp(6 * 1400);
    const first = segments.slice(0, 4);
    const next = tcpOf(segments[4]!)!;
    const rst = tcpPacket('10.0.0.1', '10.0.0.2', { srcPort: next.srcPort, dstPort: next.dstPort, seq: next.seq, ack: 0, flags: RST, window: 0 });
    const events: string[] = [];
    const { onData, onClose } = server.events;
    server.events.onData = (d) => { onData!(d); events.push(`data ${d.length}`); };
    server.events.onClose = (e) => { onClose!(e); events.push(`close ${e?.code}`); };
    feed(wire, b, [...first, rst], true);
    const bytes = first.reduce((n, p) => n + tcpOf(p)!.payload.length, 0);
    assert.deepEqual(events, [`data ${bytes}`, 'close ECONNRESET']);
    assert.equal(serverLog.received().length, bytes);
  });

  it('keep being gathered burst after burst (the staging buffers come back)', () => {
    const { wire, b, serverLog, data, segments } = setUp(60 * 1400);
    for (let i = 0; i < segments.length; i += 3) {
      const before = serverLog.data.length;
      feed(wire, b, segments.slice(i, i + 3), true);
      assert.equal(serverLog.data.length, before + 1, `burst ${i / 3}: one chunk`);
    }
    assert.ok(equalBytes(serverLog.received(), data));
  });
});
