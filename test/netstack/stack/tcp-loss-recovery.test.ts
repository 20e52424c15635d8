/**
 * TCP loss recovery beyond the three duplicate ACKs: the end of the RTO backoff (Karn, RFC 6298
 * §5) under steady loss, early retransmit for small windows (RFC 5827), limited transmit
 * (RFC 3042) and the tail loss probe (RFC 8985 §7). Each drives a real connection on the virtual
 * wire and drops chosen segments with its tap; timings are exact because the clock is.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { TcpSegment } from '../../../src/netstack/stack/tcp/segment.ts';
import type { Connection } from '../../../src/netstack/stack/tcp/connection.ts';
import { connected, writeAll } from './tcp-support.ts';
import type { Recorder } from './tcp-support.ts';
import type { Host, Wire } from './wire.ts';
import { equalBytes, pattern, tcpOf } from './wire.ts';

const WIRE = { loss: 0, duplicate: 0, latency: 5, jitter: 0 };

/** What a host received, in order, logged before the stack sees it (its answers come after). */
function logInput(h: Host, log: { dir: 'in' | 'out'; seg: TcpSegment; at: number }[], now: () => number): void {
  const input = h.stack.input.bind(h.stack);
  h.stack.input = (p, t) => {
    const seg = tcpOf(p);
    if (seg) log.push({ dir: 'in', seg, at: now() });
    input(p, t);
  };
}

/** A first exchange: SRTT settles, and the ACKs carry the peer's scaled window from then on. */
function warmUp(wire: Wire, client: Connection, server: Connection, serverLog: Recorder): void {
  const before = serverLog.received().length;
  client.write(pattern(4 * client.smss, 2), wire.now);
  wire.run(200);
  assert.equal(serverLog.received().length, before + 4 * client.smss);
  // An answer carries the window as it is with everything read (the last ACK may have gone out
  // before the application took the data).
  server.write(pattern(10), wire.now);
  wire.run(300);
}

describe('RTO backoff (Karn, RFC 6298 §5)', () => {
  it('ends with the ACK of data sent once, so that loss after loss does not drive the RTO to its cap', () => {
    // No timestamps and no SACK: RTT samples come only from the one timed segment, and every
    // retransmission cancels that. Each round the timed segment is lost and the one after it
    // arrives, but its duplicate ACK does not (no fast retransmit, no RTT sample): the RTO
    // resends the first, and the cumulative ACK then covers the second, sent only once.
    const { wire, a, b, client, server, serverLog } = connected({ conditions: WIRE, a: { tcpTimestamps: false, tcpSack: false } });
    warmUp(wire, client, server, serverLog);
    const base = client.rto.rto;
    assert.equal(base, 200);
    let hole: number | undefined;
    const firstAt = new Map<number, number>();
    const gaps: number[] = [];
    wire.tap = (from, p) => {
      const s = tcpOf(p);
      if (!s) return 'pass';
      if (from === b) return s.ack === hole ? 'drop' : 'pass';
      if (s.payload.length === 0) return 'pass';
      const first = firstAt.get(s.seq);
      if (first !== undefined) { gaps.push(wire.now - first); return 'pass'; }
      firstAt.set(s.seq, wire.now);
      if (hole === undefined) { hole = s.seq; return 'drop'; }
      return 'pass';
    };
    const rcv = serverLog.received().length;
    for (let round = 0; round < 7; round++) {
      hole = undefined;
      client.write(pattern(client.smss, 10 + round), wire.now);
      wire.run(50);
      client.write(pattern(client.smss, 20 + round), wire.now);
      wire.runWhile(() => client.sndUna !== client.sndMax, 120_000);
      assert.equal(serverLog.received().length, rcv + 2 * (round + 1) * client.smss, `round ${round} delivered`);
      assert.equal(client.rto.backoffs, 0, `round ${round}: the backoff ended`);
    }
    assert.equal(a.stack.counters.tcpRtoExpired, 7);
    assert.equal(a.stack.counters.tcpFastRetransmits, 0);
    // Without the end of the backoff: 200, 400, 800 … 12800 ms.
    assert.deepEqual(gaps, new Array(7).fill(base), 'each loss waits one normal RTO');
  });
});

describe('early retransmit (RFC 5827)', () => {
  for (const sack of [true, false]) {
    for (const n of [2, 3]) {
      it(`resends the first of ${n} segments after ${n - 1} duplicate ACK(s), long before the RTO (sack=${sack})`, () => {
        const { wire, a, client, server, serverLog } = connected({ conditions: WIRE, a: { tcpSack: sack } });
        // A first exchange: the peer's window, scaled, is then the same in every ACK (a window
        // change would not make a duplicate).
        warmUp(wire, client, server, serverLog);
        const rcv = serverLog.received().length;
        const data = pattern(n * client.smss);
        let first = true;
        const sent: { seq: number; at: number }[] = [];
        wire.tap = (from, p) => {
          const s = tcpOf(p);
          if (from !== a || !s || s.payload.length === 0) return 'pass';
          sent.push({ seq: s.seq, at: wire.now });
          if (first) { first = false; return 'drop'; }
          return 'pass';
        };
        const t0 = wire.now;
        client.write(data, t0);
        wire.runWhile(() => serverLog.received().length < rcv + data.length, 5_000);
        assert.ok(equalBytes(serverLog.received().subarray(rcv), data), 'intact');
        assert.equal(sent.length, n + 1, 'the n segments and one retransmission');
        assert.equal(sent[n]!.seq, sent[0]!.seq, 'the first segment again');
        // One RTT (10 ms) for the duplicates to come back; the RTO would be 200 ms.
        assert.equal(sent[n]!.at - t0, 10, 'resent as the duplicate ACKs arrive');
        assert.equal(a.stack.counters.tcpFastRetransmits, 1);
        assert.equal(a.stack.counters.tcpRtoExpired, 0);
        assert.equal(a.stack.counters.tcpLossProbes, 0, 'no probe was needed');
      });
    }
  }
});

describe('limited transmit (RFC 3042)', () => {
  for (const sack of [true, false]) {
    it(`sends a new segment for each of the first two duplicate ACKs of a full window (sack=${sack})`, () => {
      const { wire, a, client, serverLog } = connected({ conditions: WIRE, a: { tcpSack: sack } });
      const log: { dir: 'in' | 'out'; seg: TcpSegment; at: number }[] = [];
      logInput(a, log, () => wire.now);
      let n = 0;
      let lost: number | undefined;
      wire.tap = (from, p) => {
        const s = tcpOf(p);
        if (from !== a || !s || s.payload.length === 0) return 'pass';
        log.push({ dir: 'out', seg: s, at: wire.now });
        if (++n === 12) { lost = s.seq; return 'drop'; }
        return 'pass';
      };
      const data = pattern(200_000);
      writeAll(client, data, wire);
      wire.runWhile(() => serverLog.received().length < data.length, 60_000);
      assert.ok(equalBytes(serverLog.received(), data), 'intact');
      assert.equal(a.stack.counters.tcpRtoExpired, 0);
      assert.notEqual(lost, undefined);
      // What the client did in answer to each duplicate ACK up to the fast retransmit. The first
      // ACK for the hole is a new one (it acknowledges the segments before it); the next are the
      // duplicates. With SACK, the blocks they carry may start recovery before the third.
      const acks = log.flatMap((e, i) => (e.dir === 'in' && e.seg.ack === lost ? [i] : []));
      const firstDup = acks[1]!;
      const rtx = log.findIndex((e, i) => i > firstDup && e.dir === 'out' && e.seg.seq === lost);
      assert.ok(firstDup > 0 && rtx > firstDup, 'a fast retransmit followed the duplicates');
      let maxBefore = 0;
      for (const e of log.slice(0, firstDup)) if (e.dir === 'out') maxBefore = Math.max(maxBefore, e.seg.seq + e.seg.payload.length);
      const between = log.slice(firstDup, rtx);
      const dups = between.filter((e) => e.dir === 'in');
      const sent = between.filter((e) => e.dir === 'out');
      // The last duplicate is the one that starts recovery; each one before it sent one segment.
      assert.equal(sent.length, dups.length - 1, between.map((e) => e.dir).join(' '));
      assert.deepEqual(between.map((e) => e.dir), [...dups.slice(1).flatMap(() => ['in', 'out']), 'in']);
      if (!sack) assert.equal(sent.length, 2, 'two duplicates, two new segments; the third retransmits');
      else assert.ok(sent.length >= 1);
      let next = maxBefore;
      for (const e of sent) {
        assert.equal(e.seg.seq, next, 'new data, never sent before');
        next = e.seg.seq + e.seg.payload.length;
      }
      assert.equal(a.stack.counters.tcpFastRetransmits, 1);
    });
  }
});

describe('tail loss probe (RFC 8985 §7)', () => {
  it('probes at 2·SRTT when the tail of a flight is lost, and its SACK starts recovery before the RTO', () => {
    const { wire, a, b, client, server, serverLog } = connected({ conditions: WIRE });
    warmUp(wire, client, server, serverLog);
    const srtt = client.rto.srtt;
    assert.ok(srtt >= 10 && srtt < 20, `SRTT ${srtt}`);
    const rcv = serverLog.received().length;
    // Four segments; the last two are lost.
    const data = pattern(4 * client.smss, 3);
    let n = 0;
    const sent: { seq: number; at: number }[] = [];
    let ackAt: number | undefined;
    wire.tap = (from, p) => {
      const s = tcpOf(p);
      if (from === b && s && ackAt === undefined) ackAt = wire.now + 5;
      if (from !== a || !s || s.payload.length === 0) return 'pass';
      sent.push({ seq: s.seq, at: wire.now });
      return ++n === 3 || n === 4 ? 'drop' : 'pass';
    };
    const t0 = wire.now;
    client.write(data, t0);
    wire.runWhile(() => serverLog.received().length < rcv + data.length, 5_000);
    assert.ok(equalBytes(serverLog.received().subarray(rcv), data), 'intact');
    assert.equal(a.stack.counters.tcpLossProbes, 1);
    assert.equal(a.stack.counters.tcpRtoExpired, 0, 'no timeout');
    assert.equal(a.stack.counters.tcpFastRetransmits, 1, 'the probe\'s SACK started recovery');
    // The probe resends the last segment 2·SRTT (+2 ms) after the ACK of the first two.
    const probe = sent[4]!;
    assert.equal(probe.seq, sent[3]!.seq, 'the last segment again');
    assert.equal(ackAt, t0 + 10);
    assert.ok(Math.abs(probe.at - (ackAt + 2 * srtt + 2)) <= 1, `probe at +${probe.at - ackAt} ms, SRTT ${srtt}`);
    // Its SACK comes back one RTT later and the hole is resent at once.
    assert.equal(sent[5]!.seq, sent[2]!.seq, 'then the hole');
    assert.equal(sent[5]!.at, probe.at + 10);
    assert.ok(sent[5]!.at - t0 < 200, 'well before the RTO');
    assert.equal(sent.length, 6);
  });
});
