/**
 * TCP reliability and flow control: RTO per RFC 6298 and its backoff, fast retransmit and
 * NewReno (RFC 5681/6582), delayed ACKs, window scaling and zero-window probing with a receiver
 * that does not read, out-of-order delivery, keepalive, give-up timeouts, and bulk transfers that
 * must arrive intact across loss, reordering and duplication.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { NewReno } from '../../../src/netstack/stack/tcp/newreno.ts';
import { RtoEstimator } from '../../../src/netstack/stack/tcp/rto.ts';
import { OutOfOrderQueue } from '../../../src/netstack/stack/tcp/reassembly.ts';
import { SendBuffer } from '../../../src/netstack/stack/tcp/send-buffer.ts';
import { Scoreboard } from '../../../src/netstack/stack/tcp/scoreboard.ts';
import { SYN } from '../../../src/netstack/stack/tcp/segment.ts';
import { connected, record, writeAll } from './tcp-support.ts';
import { concat, equalBytes, pattern, tcpOf, twoHosts } from './wire.ts';

describe('RTO estimator (RFC 6298)', () => {
  it('starts at 1 s, follows SRTT + 4·RTTVAR, clamps and backs off', () => {
    const r = new RtoEstimator(1000, 200, 60_000);
    assert.equal(r.rto, 1000);
    r.sample(100);
    assert.equal(r.srtt, 100);
    assert.equal(r.rttvar, 50);
    assert.equal(r.rto, 300);
    r.sample(200);
    assert.equal(r.rttvar, 62.5);
    assert.equal(r.srtt, 112.5);
    assert.equal(r.rto, 362.5);
    for (let i = 0; i < 20; i++) r.sample(1);
    assert.equal(r.rto, 200, 'minimum RTO');
    r.backoff(); assert.equal(r.rto, 400);
    r.backoff(); assert.equal(r.rto, 800);
    for (let i = 0; i < 20; i++) r.backoff();
    assert.equal(r.rto, 60_000, 'maximum RTO');
    r.sample(10);
    assert.ok(r.rto < 1000, 'a new sample clears the backoff');
  });
});

describe('NewReno (RFC 5681, RFC 6582)', () => {
  const smss = 1000;
  it('slow start, congestion avoidance, fast recovery and timeout', () => {
    const cc = new NewReno(smss, 0);
    assert.equal(cc.cwnd, 4 * smss, 'RFC 5681 initial window for SMSS ≤ 1095');
    cc.onAck(1000); cc.onAck(500);
    assert.equal(cc.cwnd, 5500, 'slow start grows by min(acked, SMSS)');
    cc.enterRecovery(10_000, 10_000);
    assert.equal(cc.ssthresh, 5000);
    assert.equal(cc.cwnd, 8000, 'ssthresh + 3·SMSS');
    cc.onDupAckInRecovery();
    assert.equal(cc.cwnd, 9000, 'inflated per duplicate ACK');
    cc.onPartialAck(2000);
    assert.equal(cc.cwnd, 8000, 'partial ACK deflates by acked − SMSS');
    cc.exitRecovery(3000);
    assert.equal(cc.cwnd, 4000, 'min(ssthresh, flight + SMSS)');
    assert.equal(cc.inRecovery, false);
    // Congestion avoidance: ~one SMSS per window of ACKed bytes.
    cc.cwnd = 5000; cc.ssthresh = 5000;
    for (let i = 0; i < 5; i++) cc.onAck(1000);
    assert.equal(cc.cwnd, 6000);
    cc.onTimeout(6000, 0);
    assert.equal(cc.cwnd, smss, 'loss window of one segment');
    assert.equal(cc.ssthresh, 3000);
  });

  it('grows cwnd by half per RTT in slow start (ACK every 2nd segment) and by one SMSS per RTT after', () => {
    const { wire, a, client } = connected({ conditions: { loss: 0, duplicate: 0, latency: 10, jitter: 0 } });
    const smss = client.smss;
    writeAll(client, pattern(8_000_000), wire);
    const samples: number[] = [];
    for (let i = 0; i < 6; i++) { samples.push(client.cc.cwnd); wire.run(20); }
    // From the second RTT: the third segment of the initial window waits for the delayed-ACK timer.
    for (let i = 2; i < samples.length; i++) {
      const ratio = samples[i]! / samples[i - 1]!;
      assert.ok(ratio >= 1.4 && ratio <= 2.1, `slow start RTT ${i}: ${samples[i - 1]} → ${samples[i]}`);
    }
    // Force congestion avoidance: ssthresh at the current window.
    client.cc.ssthresh = client.cc.cwnd;
    const before = client.cc.cwnd;
    wire.run(20 * 5);
    const grown = (client.cc.cwnd - before) / smss;
    assert.ok(grown >= 3 && grown <= 6, `congestion avoidance: ${grown.toFixed(1)} SMSS in 5 RTTs`);
    assert.equal(a.stack.counters.tcpRetransmits, 0);
  });

  it('halves cwnd through fast retransmit in a real transfer without a timeout', () => {
    const { wire, a, client, serverLog } = connected();
    let n = 0;
    wire.tap = (from, p) => {
      const s = tcpOf(p);
      if (from === a && s && s.payload.length > 0 && ++n === 20) return 'drop';
      return 'pass';
    };
    const data = pattern(200_000);
    writeAll(client, data, wire);
    wire.runWhile(() => serverLog.received().length < data.length, 60_000);
    assert.ok(equalBytes(serverLog.received(), data), 'intact');
    assert.equal(a.stack.counters.tcpFastRetransmits, 1);
    assert.equal(a.stack.counters.tcpRtoExpired, 0, 'no timeout needed');
    assert.ok(client.cc.ssthresh < 0x7fffffff, 'ssthresh set by the loss');
    assert.equal(client.cc.inRecovery, false);
  });
});

describe('SACK (RFC 2018, RFC 6675)', () => {
  it('keeps a merged scoreboard and reports receiver blocks most recent first', () => {
    const sb = new Scoreboard();
    sb.add(200, 300); sb.add(400, 500); sb.add(300, 350);
    assert.equal(sb.sackedBytes, 250);
    assert.equal(sb.highest, 500);
    assert.equal(sb.sackedEnd(250), 350);
    assert.equal(sb.nextStart(350), 400);
    assert.equal(sb.holeBytes(100, 500), 150);
    sb.trim(320);
    assert.equal(sb.sackedBytes, 130);
    const q = new OutOfOrderQueue();
    q.insert(1000, new Uint8Array(100));
    q.insert(1300, new Uint8Array(100));
    q.insert(1100, new Uint8Array(50));
    assert.deepEqual(q.sackBlocks(3), [1000, 1150, 1300, 1400]);
  });

  it('repairs three losses in one window without a timeout and without resending SACKed data', () => {
    for (const sack of [true, false]) {
      const { wire, a, client, serverLog } = connected({ a: { tcpSack: sack } });
      assert.equal(client.sackOk, sack);
      let n = 0;
      wire.tap = (from, p) => {
        const s = tcpOf(p);
        if (from === a && s && s.payload.length > 0 && [30, 33, 36].includes(++n)) return 'drop';
        return 'pass';
      };
      const data = pattern(300_000);
      writeAll(client, data, wire);
      wire.runWhile(() => serverLog.received().length < data.length, 60_000);
      assert.ok(equalBytes(serverLog.received(), data), 'intact');
      assert.equal(a.stack.counters.tcpRtoExpired, 0, `sack=${sack}: no timeout`);
      if (sack) {
        assert.equal(a.stack.counters.tcpRetransmits, 3, 'exactly the three lost segments');
        assert.ok(a.stack.counters.tcpSackBlocksReceived > 0, 'SACK blocks arrived');
      }
    }
  });
});

describe('retransmission timing', () => {
  it('retransmits SYN at 1, 3, 7, 15, 31, 63 s and gives up with ETIMEDOUT (RTO capped at 60 s)', () => {
    const { wire, a } = twoHosts();
    const times: number[] = [];
    wire.tap = (from, p) => { if (from === a && tcpOf(p)?.flags === SYN) times.push(wire.now); return 'drop'; };
    const c = a.stack.tcpConnect({ address: '10.0.0.2', port: 80 }, 0);
    const log = record(c, wire);
    wire.runWhile(() => !log.closed, 600_000);
    assert.deepEqual(times, [0, 1000, 3000, 7000, 15000, 31000, 63000]);
    assert.equal(log.error, 'ETIMEDOUT');
    assert.equal(wire.now, 63_000 + 60_000);
  });

  it('backs data retransmissions off exponentially from the measured RTO and gives up at the user timeout', () => {
    const { wire, a, b, client, clientLog } = connected({ a: { tcpUserTimeout: 20_000 } });
    // RTT is 10 ms on this wire: RTO = max(200 ms, SRTT + 4·RTTVAR) = 200 ms.
    assert.equal(client.rto.rto, 200);
    const times: number[] = [];
    wire.tap = (from, p) => {
      const s = tcpOf(p);
      if (from === a && s && s.payload.length > 0) times.push(wire.now);
      return from === b ? 'drop' : 'pass';
    };
    const t0 = wire.now;
    client.write(pattern(100), wire.now);
    wire.runWhile(() => !clientLog.closed, 120_000);
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    assert.equal(times[0], t0);
    assert.deepEqual(gaps.slice(0, 6), [200, 400, 800, 1600, 3200, 6400]);
    assert.equal(clientLog.error, 'ETIMEDOUT');
    assert.ok(wire.now - t0 >= 20_000 && wire.now - t0 < 40_000, `gave up after the user timeout (${wire.now - t0})`);
  });
});

describe('acknowledgements', () => {
  it('delays the ACK of a lone segment and ACKs every second segment at once', () => {
    const { wire, b, client } = connected();
    client.write(pattern(10), wire.now);
    wire.run(200);
    const delayed = b.stack.counters.tcpDelayedAcks;
    const acks: number[] = [];
    wire.tap = (from, p) => { const s = tcpOf(p); if (from === b && s && s.payload.length === 0) acks.push(wire.now); return 'pass'; };
    const t0 = wire.now;
    client.write(pattern(10), wire.now);
    wire.run(200);
    assert.equal(acks.length, 1);
    assert.equal(acks[0]! - t0, 5 + 40, 'latency plus the 40 ms delayed-ACK timer');
    assert.equal(b.stack.counters.tcpDelayedAcks - delayed, 1, 'one delayed ACK');
    acks.length = 0;
    const t1 = wire.now;
    client.write(pattern(2 * client.smss), wire.now);
    wire.run(200);
    assert.equal(acks[0]! - t1, 5, 'two full segments are ACKed at once');
  });
});

describe('flow control', () => {
  it('scales the window, probes a zero window without giving up, and resumes when the reader releases', () => {
    const { wire, a, b, client, server, serverLog } = connected({ b: { tcpReceiveBuffer: 200_000, tcpReceiveBufferInitial: 200_000 }, a: { tcpUserTimeout: 60_000 }, autoRelease: false });
    assert.equal(server.rcvWscale, 2);
    assert.equal(client.sndWscale, 2);
    // The right edge of B's window (ACK + scaled window) must never move left.
    let edge: number | undefined;
    let shrunk = 0;
    wire.tap = (from, p) => {
      const s = tcpOf(p);
      if (from === b && s && !(s.flags & SYN)) {
        const right = (s.ack + (s.window << 2)) >>> 0;
        if (edge !== undefined && ((right - edge) | 0) < 0) shrunk++;
        edge = right;
      }
      return 'pass';
    };
    const data = pattern(1_000_000);
    let accepted = false;
    writeAll(client, data, wire, () => { accepted = true; });
    wire.run(10_000);
    const held = serverLog.received().length;
    assert.ok(held >= 190_000 && held <= 200_000 + 4, `receiver holds about its buffer (${held})`);
    assert.ok(a.stack.counters.tcpZeroWindowProbes >= 3, 'zero-window probes sent');
    const probes = a.stack.counters.tcpZeroWindowProbes;
    wire.run(300_000);
    assert.equal(client.state, 'ESTABLISHED', 'a live peer with a closed window is never timed out');
    assert.ok(a.stack.counters.tcpZeroWindowProbes - probes < 12, 'probes back off');
    // Now the application reads everything as it comes.
    serverLog.autoRelease = true;
    server.release(held, wire.now);
    wire.runWhile(() => serverLog.received().length < data.length, 120_000);
    assert.ok(accepted, 'every byte was accepted by write');
    assert.ok(equalBytes(serverLog.received(), data), 'intact after the stall');
    assert.equal(shrunk, 0, 'the window never shrank');
  });

  it('bounds the send buffer: write returns the bytes taken and onDrain follows', () => {
    const { wire, client, clientLog } = connected({ a: { tcpSendBuffer: 50_000 } });
    assert.equal(client.write(pattern(80_000), wire.now), 50_000);
    assert.equal(client.bufferedAmount, 50_000);
    wire.run(1000);
    assert.ok(clientLog.drains >= 1, 'drained');
    assert.equal(client.bufferedAmount, 0);
  });

  it('delivers reordered and duplicated segments in order', () => {
    const { wire, b, client, serverLog } = connected({ conditions: { loss: 0, duplicate: 0.2, latency: 5, jitter: 10 }, seed: 5 });
    const data = pattern(500_000, 9);
    writeAll(client, data, wire);
    wire.runWhile(() => serverLog.received().length < data.length, 60_000);
    assert.ok(equalBytes(serverLog.received(), data), 'in order');
    assert.ok(b.stack.counters.tcpOutOfOrder > 0, 'segments did arrive out of order');
    assert.ok(b.stack.counters.tcpDuplicate > 0 || b.stack.counters.tcpOutOfWindow > 0, 'duplicates were discarded');
  });

  it('keeps the out-of-order queue and send buffer exact', () => {
    const q = new OutOfOrderQueue();
    q.insert(110, pattern(10).subarray(0, 10));
    q.insert(105, new Uint8Array(10).fill(7));
    assert.equal(q.bytes, 15);
    const out = concat(q.takeFrom(100));
    assert.equal(out.length, 0, 'gap before 105');
    const all = concat(q.takeFrom(105));
    assert.equal(all.length, 15);
    const sb = new SendBuffer(40_000);
    assert.equal(sb.write(pattern(30_000)), 30_000);
    assert.equal(sb.write(pattern(30_000)), 10_000);
    sb.consume(17_000);
    const chunk = new Uint8Array(100);
    sb.copyOut(0, 100, chunk, 0);
    assert.ok(equalBytes(chunk, pattern(30_000).subarray(17_000, 17_100)), 'copyOut across blocks');
  });
});

describe('keepalive', () => {
  it('probes an idle connection and times out when the peer is gone', () => {
    const { wire, b, client, clientLog } = connected({ a: { tcpKeepaliveInterval: 1000, tcpKeepaliveProbes: 3 } });
    client.setKeepAlive(5000, wire.now);
    wire.run(60_000);
    assert.equal(client.state, 'ESTABLISHED', 'answered probes keep it open');
    assert.ok(wire.hosts[0]!.stack.counters.tcpKeepaliveProbes >= 10, 'probes every idle period');
    wire.tap = (from) => from === b ? 'drop' : 'pass';
    const t0 = wire.now;
    wire.runWhile(() => !clientLog.closed, 60_000);
    assert.equal(clientLog.error, 'ETIMEDOUT');
    assert.ok(wire.now - t0 <= 5000 + 3 * 1000 + 1000, 'idle + probes × interval');
  });
});

describe('many connections', () => {
  it('runs 300 concurrent connections under loss to completion and leaves nothing behind', () => {
    const { wire, a, b } = twoHosts({ conditions: { loss: 0.02, duplicate: 0.01, latency: 5, jitter: 3 }, seed: 21, a: { tcpMsl: 1000 }, b: { tcpMsl: 1000 } });
    wire.record = false;
    const l = b.stack.tcpListen(80);
    const received = new Map<number, number>();
    l.onConnection = (c) => {
      const log = record(c, wire);
      c.events.onEnd = () => { received.set(c.remote.port, log.received().length); c.close(wire.now); };
    };
    let closed = 0;
    for (let i = 0; i < 300; i++) {
      const c = a.stack.tcpConnect({ address: i % 2 ? '10.0.0.2' : 'fd00::2', port: 80 }, wire.now);
      record(c, wire);
      const onClose = c.events.onClose;
      c.events.onClose = (e) => { onClose?.(e); closed++; };
      writeAll(c, pattern(20_000 + i, i), wire, () => c.close(wire.now));
    }
    wire.runWhile(() => closed < 300 || received.size < 300, 600_000);
    assert.equal(received.size, 300);
    assert.ok([...received.values()].every((n) => n >= 20_000 && n < 20_300), 'every stream complete');
    wire.run(10_000);
    assert.equal(a.stack.tcpConnectionCount, 0, 'client side empty after TIME-WAIT');
    assert.equal(b.stack.tcpConnectionCount, 0, 'server side empty');
    assert.equal(a.stack.nextDeadline(), Infinity, 'no timers left');
    assert.equal(a.stack.counters.internalErrors + b.stack.counters.internalErrors, 0);
  });
});

describe('bulk transfer', () => {
  const cases = [
    { loss: 0.01, size: 4_000_000, v6: false },
    { loss: 0.05, size: 3_000_000, v6: true },
    { loss: 0.2, size: 2_000_000, v6: false },
    { loss: 0.05, size: 2_000_000, v6: false, noSack: true },
  ];
  for (const { loss, size, v6, noSack } of cases) {
    it(`moves ${size / 1e6} MB both ways intact at ${loss * 100}% loss with reordering and duplication (IPv${v6 ? 6 : 4}${noSack ? ', no SACK' : ''})`, () => {
      const { wire, a, b, client, server, clientLog, serverLog } = connected({
        conditions: { loss, duplicate: 0.02, latency: 10, jitter: 4 }, seed: 11, v6, a: { tcpSack: !noSack },
      });
      wire.record = false;
      const up = pattern(size, 1);
      const down = pattern(size / 4, 2);
      writeAll(client, up, wire, () => client.shutdown(wire.now));
      writeAll(server, down, wire, () => server.shutdown(wire.now));
      wire.runWhile(() => !(clientLog.closed && serverLog.closed), 3_600_000);
      assert.ok(equalBytes(serverLog.received(), up), 'upload intact');
      assert.ok(equalBytes(clientLog.received(), down), 'download intact');
      assert.ok(clientLog.ended && serverLog.ended, 'both FINs delivered');
      assert.equal(clientLog.error, undefined);
      assert.equal(serverLog.error, undefined);
      assert.equal(a.stack.counters.internalErrors + b.stack.counters.internalErrors, 0);
    });
  }
});
