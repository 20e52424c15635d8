/**
 * Demultiplexing: every segment reaches the connection of its own four-tuple, also when
 * connections differ in one part only and their segments interleave (the lookup tries the last
 * connection found first, by ports and address bytes), and a SYN reopens a four-tuple in
 * TIME-WAIT (RFC 9293 §3.6.1).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ACK, SYN } from '../../../src/netstack/stack/tcp/segment.ts';
import type { TcpConnection } from '../../../src/netstack/stack/types.ts';
import { record } from './tcp-support.ts';
import type { Recorder } from './tcp-support.ts';
import { equalBytes, pattern, tcpOf, tcpPacket, Wire } from './wire.ts';

/** A (the given addresses) and B (10.0.0.2) on one wire; B listens on port 80 and records what it accepts. */
function setUp(addressesA: string[]) {
  const wire = new Wire({});
  const a = wire.host('a', addressesA);
  const b = wire.host('b', ['10.0.0.2']);
  const servers: { conn: TcpConnection; log: Recorder }[] = [];
  const listener = b.stack.tcpListen(80);
  listener.onConnection = (c) => { servers.push({ conn: c, log: record(c, wire) }); };
  const connect = (local: { address: string; port: number }) => {
    const c = a.stack.tcpConnect({ address: '10.0.0.2', port: 80 }, wire.now, local);
    record(c, wire);
    return c;
  };
  return { wire, a, b, listener, servers, connect };
}

describe('TCP demultiplexing', () => {
  it('keeps apart connections that differ only in the peer address or only in a port', () => {
    const { wire, servers, connect } = setUp(['10.0.0.1', '10.0.0.3']);
    const clients = [
      connect({ address: '10.0.0.1', port: 40000 }),
      connect({ address: '10.0.0.3', port: 40000 }),
      connect({ address: '10.0.0.1', port: 40001 }),
    ];
    wire.runWhile(() => servers.length < 3 || clients.some((c) => c.state !== 'ESTABLISHED'), 60_000);
    const sent = clients.map((_, i) => pattern(20_000, 10 + i));
    // Small writes in turn, so the three connections' segments interleave on the wire.
    for (let off = 0; off < 20_000; off += 1000) {
      clients.forEach((c, i) => assert.equal(c.write(sent[i]!.subarray(off, off + 1000), wire.now), 1000));
    }
    wire.runWhile(() => servers.some((s) => s.log.received().length < 20_000), 60_000);
    for (const s of servers) {
      const i = clients.findIndex((c) => c.local.address === s.conn.remote.address && c.local.port === s.conn.remote.port);
      assert.ok(i >= 0, `a server connection for ${s.conn.remote.address}:${s.conn.remote.port}`);
      assert.ok(equalBytes(s.log.received(), sent[i]!), `${s.conn.remote.address}:${s.conn.remote.port} got its own bytes`);
    }
  });

  it('sends a new connection with the four-tuple of one that ended to the new one', () => {
    const { wire, b, servers, connect } = setUp(['10.0.0.1']);
    const local = { address: '10.0.0.1', port: 40000 };
    const first = connect(local);
    wire.runWhile(() => servers.length < 1 || first.state !== 'ESTABLISHED', 60_000);
    first.write(pattern(3000, 1), wire.now);
    wire.runWhile(() => servers[0]!.log.received().length < 3000, 60_000);
    first.abort(wire.now); // B's side ends at the RST and is forgotten
    wire.runWhile(() => b.stack.tcpConnectionCount > 0, 60_000);
    const second = connect(local);
    wire.runWhile(() => servers.length < 2 || second.state !== 'ESTABLISHED', 60_000);
    assert.equal(second.state, 'ESTABLISHED');
    const data = pattern(5000, 2);
    second.write(data, wire.now);
    wire.runWhile(() => (servers[1]?.log.received().length ?? 0) < 5000, 60_000);
    assert.ok(equalBytes(servers[1]!.log.received(), data));
  });

  it('reopens a four-tuple in TIME-WAIT for a SYN beyond the old sequence numbers to a listening port, and only then', () => {
    const { wire, b, listener, servers, connect } = setUp(['10.0.0.1']);
    const client = connect({ address: '10.0.0.1', port: 40000 });
    wire.runWhile(() => servers.length < 1 || client.state !== 'ESTABLISHED', 60_000);
    const server = servers[0]!.conn as TcpConnection & { rcvNxt: number; state: string };
    server.close(wire.now); // B closes first, so B holds the TIME-WAIT
    wire.runWhile(() => client.state !== 'CLOSE-WAIT', 60_000);
    client.close(wire.now);
    wire.runWhile(() => server.state !== 'TIME-WAIT', 60_000);
    assert.equal(server.state, 'TIME-WAIT');
    const syn = (seq: number) => tcpPacket('10.0.0.1', '10.0.0.2', { srcPort: 40000, dstPort: 80, seq, ack: 0, flags: SYN, window: 65535 });
    const synAcks = () => b.sent.map(tcpOf).filter((s) => s && s.flags === (SYN | ACK) && s.dstPort === 40000).length;
    const before = synAcks();
    // An old SYN (not beyond RCV.NXT) is no new incarnation: TIME-WAIT answers it as TIME-WAIT does.
    b.stack.input(syn((server.rcvNxt - 10) >>> 0), wire.now);
    assert.equal(b.stack.counters.tcpTimeWaitReused, 0);
    assert.equal(server.state, 'TIME-WAIT');
    // Nobody listens any more: nothing to reopen for.
    listener.close();
    b.stack.input(syn((server.rcvNxt + 50_000) >>> 0), wire.now);
    assert.equal(b.stack.counters.tcpTimeWaitReused, 0);
    assert.equal(server.state, 'TIME-WAIT');
    b.stack.tcpListen(80);
    b.stack.input(syn((server.rcvNxt + 100_000) >>> 0), wire.now);
    assert.equal(b.stack.counters.tcpTimeWaitReused, 1);
    assert.equal(synAcks(), before + 1, 'the new incarnation is answered with a SYN-ACK');
  });
});
