/**
 * The TCP memory budget and buffer autotuning (tcp/memory-budget.ts, receive-window.ts), on the
 * virtual wire: accounting returns to zero, windows clamp without moving their right edge left,
 * connections are refused at the limit, and buffers grow only for applications that use them.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../../src/core/errors.ts';
import { MEMORY_FLOOR } from '../../../src/netstack/stack/tcp/memory-budget.ts';
import type { Connection } from '../../../src/netstack/stack/tcp/connection.ts';
import { parseTcp } from '../../../src/netstack/stack/tcp/segment.ts';
import { TcpIpStack } from '../../../src/netstack/stack/stack.ts';
import type { StackConfig, TcpConnection } from '../../../src/netstack/stack/types.ts';
import { connected, record, writeAll } from './tcp-support.ts';
import type { Recorder } from './tcp-support.ts';
import { equalBytes, pattern, twoHosts } from './wire.ts';
import type { Host, Wire } from './wire.ts';

const KiB = 1024;
const MiB = 1024 * 1024;

/** The TCP segment of an IPv4 packet, or undefined. */
function tcpOf(p: Uint8Array) {
  if (p[0]! >> 4 !== 4 || p[9] !== 6) return undefined;
  return parseTcp(p.subarray((p[0]! & 0x0f) * 4));
}

/** Checks on every packet that `host` never reserves more than its limit; returns the worst seen. */
function watchBudget(wire: Wire, hosts: Host[]): { peak: Map<Host, number> } {
  const peak = new Map<Host, number>();
  const prev = wire.tap;
  wire.tap = (from, p) => {
    for (const h of hosts) {
      const m = h.stack.tcpMemory;
      assert.ok(m.inUse <= m.high, `${h.name}: ${m.inUse} bytes reserved, over the ${m.high} limit`);
      peak.set(h, Math.max(peak.get(h) ?? 0, m.inUse));
    }
    return prev ? prev(from, p) : 'pass';
  };
  return { peak };
}

/** `n` connections from A to B's port 80; the listener's side records without releasing. */
function many(wire: Wire, a: Host, b: Host, n: number, serverRelease = false) {
  const servers: { conn: TcpConnection; log: Recorder }[] = [];
  const listener = b.stack.tcpListen(80);
  listener.onConnection = (c) => { servers.push({ conn: c, log: record(c, wire, serverRelease) }); };
  const clients: { conn: TcpConnection; log: Recorder }[] = [];
  for (let i = 0; i < n; i++) {
    const conn = a.stack.tcpConnect({ address: '10.0.0.2', port: 80 }, wire.now);
    clients.push({ conn, log: record(conn, wire, false) });
  }
  wire.run(2000);
  return { servers, clients, listener };
}

describe('TCP memory budget', () => {
  it('returns the accounting to zero after every connection closed, whatever held memory', () => {
    const { wire, a, b } = twoHosts({ b: { tcpMemoryLimit: 4 * MiB } });
    wire.record = false;
    watchBudget(wire, [a, b]);
    const { servers, clients } = many(wire, a, b, 40);
    assert.equal(servers.length, 40);
    // Both directions fill: clients write and never read, servers write and never read.
    for (const s of servers) writeAll(s.conn, pattern(300 * KiB, 2), wire);
    for (const c of clients) writeAll(c.conn, pattern(300 * KiB, 3), wire);
    wire.run(5000);
    assert.ok(b.stack.tcpMemory.inUse > 40 * 2 * MEMORY_FLOOR, `memory in use (${b.stack.tcpMemory.inUse})`);
    assert.equal(b.stack.counters.tcpMemoryInUse, b.stack.tcpMemory.inUse, 'the counter is the budget');
    // Every way out: graceful close, abort, close of one side only, a peer's RST.
    clients.forEach((c, i) => {
      if (i % 4 === 0) c.conn.close(wire.now);
      else if (i % 4 === 1) c.conn.abort(wire.now);
      else if (i % 4 === 2) servers[i]!.conn.abort(wire.now);
      else { c.conn.close(wire.now); servers[i]!.conn.close(wire.now); }
    });
    // FIN-WAIT-2 and TIME-WAIT run out, unacknowledged data is given up after the user timeout.
    wire.run(400_000);
    for (const s of servers) s.conn.abort(wire.now);
    for (const c of clients) c.conn.abort(wire.now);
    wire.run(1000);
    for (const h of [a, b]) {
      assert.equal(h.stack.tcpConnectionCount, 0, `${h.name}: no connection left`);
      assert.equal(h.stack.tcpMemory.inUse, 0, `${h.name}: every reserved byte returned`);
      assert.equal(h.stack.counters.tcpMemoryInUse, 0);
      assert.ok(h.stack.counters.tcpMemoryPeak > 0);
      assert.equal(h.stack.counters.internalErrors, 0);
    }
  });

  it('TIME-WAIT holds no memory', () => {
    const { wire, a, b, client, server } = connected();
    assert.ok(a.stack.tcpMemory.inUse >= 2 * MEMORY_FLOOR);
    client.close(wire.now);
    server.close(wire.now);
    wire.run(1000);
    assert.equal(client.state, 'TIME-WAIT');
    assert.equal(a.stack.tcpMemory.inUse, 0, 'the TIME-WAIT side holds nothing');
    assert.equal(b.stack.tcpMemory.inUse, 0);
  });

  it('clamps windows under pressure without ever moving a right edge left, and refuses at the limit', () => {
    // 1 MiB: pressure at 768 KiB; 4 MiB maximum buffers so the window is scaled by 128.
    const { wire, a, b } = twoHosts({ b: { tcpMemoryLimit: 1 * MiB } });
    wire.record = false;
    const edges = new Map<number, number>();
    let shrunk = 0;
    let checked = 0;
    wire.tap = (from, p) => {
      const s = tcpOf(p);
      if (from === b && s && s.flags & 0x10 && !(s.flags & 0x04)) {
        const scale = s.flags & 0x02 ? 1 : 128;
        const right = (s.ack + s.window * scale) >>> 0;
        const prev = edges.get(s.dstPort);
        if (prev !== undefined && ((right - prev) | 0) < 0) shrunk++;
        if (prev === undefined || ((right - prev) | 0) > 0) edges.set(s.dstPort, right);
        checked++;
      }
      return 'pass';
    };
    watchBudget(wire, [b]);
    const { servers, clients } = many(wire, a, b, 40);
    for (const c of clients) writeAll(c.conn, pattern(200 * KiB, 4), wire);
    wire.run(10_000);
    const m = b.stack.counters;
    assert.ok(m.tcpMemoryPressureEvents >= 1, 'pressure was reached');
    assert.ok(m.tcpWindowClamps > 0, 'windows were clamped');
    assert.ok(m.tcpMemoryRefused > 0, 'connections beyond the limit were refused');
    const refused = clients.filter((c) => c.log.error === 'ECONNREFUSED').length;
    assert.ok(refused > 0 && servers.length + refused === 40, `${servers.length} accepted, ${refused} refused with RST`);
    assert.ok(checked > 300, `${checked} segments checked`);
    assert.equal(shrunk, 0, 'no right edge moved left');
    // Under pressure every receive buffer fell back to its floor.
    for (const s of servers) assert.equal((s.conn as Connection).rcvBufSize, MEMORY_FLOOR, 'clamped to the floor');
    // The readers that never read hold no more than the budget (each at least its floor).
    let held = 0;
    for (const s of servers) held += s.log.received().length;
    assert.ok(held <= 1 * MiB, `held ${held}`);
    // A reader that starts reading gets all of its data, in order, under pressure.
    const s0 = servers[0]!;
    const got = s0.log.received().length;
    s0.log.autoRelease = true;
    s0.conn.release(got, wire.now);
    wire.runWhile(() => s0.log.received().length < 200 * KiB, 300_000);
    assert.ok(equalBytes(s0.log.received(), pattern(200 * KiB, 4)), 'intact');
    assert.equal(shrunk, 0, 'no right edge moved left');
    assert.equal(m.internalErrors, 0);
  });

  it('fails connect() with ENOBUFS and a clear message when the budget is spent', () => {
    const { wire, a, b } = twoHosts({ a: { tcpMemoryLimit: 4 * 2 * MEMORY_FLOOR } });
    b.stack.tcpListen(80);
    const errors: string[] = [];
    for (let i = 0; i < 5; i++) {
      const c = a.stack.tcpConnect({ address: '10.0.0.2', port: 80 }, wire.now);
      c.events = { onClose: (e) => { if (e) errors.push(`${e.code}: ${e.message}`); } };
    }
    wire.run(100);
    // Each attempt holds its floors and the window its SYN offered (64 KiB) from the start.
    assert.ok(errors.length >= 1 && errors.length < 5, errors.join('; '));
    for (const e of errors) assert.match(e, /^ENOBUFS: no buffer space: the stack's TCP memory budget is exhausted \(tcpMemoryLimit 131072 bytes\)$/);
    assert.equal(a.stack.counters.tcpMemoryRefused, errors.length);
    assert.equal(a.stack.tcpConnectionCount, 5 - errors.length, 'a refused attempt takes no slot');
    assert.ok(a.stack.tcpMemory.inUse <= 4 * 2 * MEMORY_FLOOR);
  });

  it('rejects disordered thresholds with a ConfigError', () => {
    const make = (c: Partial<StackConfig>) => new TcpIpStack({ addresses: ['10.0.0.1'], ...c }, { output: () => {} });
    assert.throws(() => make({ tcpMemoryLimit: 1 * MiB, tcpMemoryPressure: 2 * MiB }), (e: unknown) =>
      e instanceof ConfigError && /tcpMemoryPressure .* ≤ tcpMemoryLimit/.test(e.message));
    assert.throws(() => make({ tcpMemoryLimit: 1000 }), ConfigError);
    const s = make({ tcpMemoryLimit: 8 * MiB });
    assert.deepEqual([s.tcpMemory.low, s.tcpMemory.pressure, s.tcpMemory.high], [4 * MiB, 6 * MiB, 8 * MiB]);
    assert.equal(make({}).tcpMemory.high, 128 * MiB, 'default budget');
  });
});

describe('buffer autotuning', () => {
  it('grows the receive window for a reading application and keeps it small for one that never reads', () => {
    const reading = connected({ conditions: { loss: 0, duplicate: 0, latency: 10, jitter: 0 } });
    const idle = connected({ conditions: { loss: 0, duplicate: 0, latency: 10, jitter: 0 }, autoRelease: false });
    for (const x of [reading, idle]) {
      x.wire.record = false;
      assert.equal(x.server.rcvBufSize, 64 * KiB, 'starts at the initial size');
      assert.equal(x.server.rcvWscale, 7, 'scaled for the 4 MiB it may grow to');
    }
    const data = pattern(16 * MiB, 6);
    writeAll(reading.client, data, reading.wire, () => reading.client.shutdown(reading.wire.now));
    writeAll(idle.client, data, idle.wire);
    const t0 = reading.wire.now;
    reading.wire.runWhile(() => !reading.serverLog.ended, 600_000);
    idle.wire.run(5000);
    const s = reading.server as Connection;
    assert.ok(equalBytes(reading.serverLog.received(), data), 'intact');
    assert.ok(s.rcvBufSize >= 2 * MiB, `grew to ${s.rcvBufSize}`);
    assert.ok(reading.b.stack.counters.tcpReceiveBufferGrown >= 4, 'grew step by step');
    // Doubling per RTT: 16 MiB over a 20 ms RTT takes well under a second of virtual time.
    assert.ok(reading.wire.now - t0 < 1500, `transfer took ${reading.wire.now - t0} ms`);
    assert.ok(reading.client.sndBufSize > 64 * KiB, `send buffer grew to ${reading.client.sndBufSize}`);
    const i = idle.server as Connection;
    assert.equal(i.rcvBufSize, 64 * KiB, 'a reader that never reads keeps the initial window');
    const held = idle.serverLog.received().length;
    // 64 KiB, and what rounding the scaled window up promised (at most a scale step per ACK).
    assert.ok(held <= 64 * KiB + 50 * 127 && held >= 60 * KiB, `it pins ${held} bytes`);
    assert.equal(idle.b.stack.counters.tcpMemoryDrops, 0, 'a well-behaved sender is never dropped');
    // The writer's buffer grows with cwnd only up to twice the peer's largest window (64 KiB here).
    assert.ok(idle.client.sndBufSize <= 2 * 64 * KiB, `the blocked writer's buffer stays small (${idle.client.sndBufSize})`);
    assert.equal(idle.client.bufferedAmount, idle.client.sndBufSize, 'full, and no fuller');
    assert.ok(idle.b.stack.tcpMemory.inUse <= 64 * KiB + 50 * 127 + MEMORY_FLOOR, `receiver reserves ${idle.b.stack.tcpMemory.inUse}`);
  });

  it('grows slowly for a slow reader: only what it consumes per RTT', () => {
    const { wire, client, server, serverLog } = connected({ conditions: { loss: 0, duplicate: 0, latency: 10, jitter: 0 }, autoRelease: false });
    wire.record = false;
    writeAll(client, pattern(4 * MiB, 7), wire);
    // The application reads 8 KiB every 100 ms.
    let released = 0;
    for (let t = 0; t < 50; t++) {
      wire.run(100);
      const avail = serverLog.received().length - released;
      const n = Math.min(avail, 8 * KiB);
      server.release(n, wire.now);
      released += n;
    }
    assert.equal(server.rcvBufSize, 64 * KiB, `a slow reader keeps a small buffer (${server.rcvBufSize})`);
  });
});
