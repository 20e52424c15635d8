/**
 * Demultiplexing: every segment reaches the connection of its own four-tuple, also when
 * connections differ in one part only and their segments interleave (the lookup tries the last
 * connection found first, by ports and address bytes).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { TcpConnection } from '../../../src/netstack/stack/types.ts';
import { record } from './tcp-support.ts';
import type { Recorder } from './tcp-support.ts';
import { equalBytes, pattern, Wire } from './wire.ts';

describe('TCP demultiplexing', () => {
  it('keeps apart connections that differ only in the peer address or only in a port', () => {
    const wire = new Wire({});
    const a = wire.host('a', ['10.0.0.1', '10.0.0.3']);
    const b = wire.host('b', ['10.0.0.2']);
    const servers: { conn: TcpConnection; log: Recorder }[] = [];
    b.stack.tcpListen(80).onConnection = (c) => { servers.push({ conn: c, log: record(c, wire) }); };
    const clients = [
      a.stack.tcpConnect({ address: '10.0.0.2', port: 80 }, wire.now, { address: '10.0.0.1', port: 40000 }),
      a.stack.tcpConnect({ address: '10.0.0.2', port: 80 }, wire.now, { address: '10.0.0.3', port: 40000 }),
      a.stack.tcpConnect({ address: '10.0.0.2', port: 80 }, wire.now, { address: '10.0.0.1', port: 40001 }),
    ];
    for (const c of clients) record(c, wire);
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
    const wire = new Wire({});
    const a = wire.host('a', ['10.0.0.1']);
    const b = wire.host('b', ['10.0.0.2']);
    const servers: { conn: TcpConnection; log: Recorder }[] = [];
    b.stack.tcpListen(80).onConnection = (c) => { servers.push({ conn: c, log: record(c, wire) }); };
    const local = { address: '10.0.0.1', port: 40000 };
    const first = a.stack.tcpConnect({ address: '10.0.0.2', port: 80 }, wire.now, local);
    record(first, wire);
    wire.runWhile(() => servers.length < 1 || first.state !== 'ESTABLISHED', 60_000);
    first.write(pattern(3000, 1), wire.now);
    wire.runWhile(() => servers[0]!.log.received().length < 3000, 60_000);
    first.abort(wire.now); // B's side ends at the RST and is forgotten
    wire.runWhile(() => b.stack.tcpConnectionCount > 0, 60_000);
    const second = a.stack.tcpConnect({ address: '10.0.0.2', port: 80 }, wire.now, local);
    record(second, wire);
    wire.runWhile(() => servers.length < 2 || second.state !== 'ESTABLISHED', 60_000);
    assert.equal(second.state, 'ESTABLISHED');
    const data = pattern(5000, 2);
    second.write(data, wire.now);
    wire.runWhile(() => (servers[1]?.log.received().length ?? 0) < 5000, 60_000);
    assert.ok(equalBytes(servers[1]!.log.received(), data));
  });
});
