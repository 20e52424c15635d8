/**
 * TCP state transitions (RFC 9293 §3.3.2): opens both ways, simultaneous open and close,
 * half-close, RST in each state (RFC 5961 checks), TIME-WAIT, backlog and connection limits,
 * and the options of the handshake (MSS, window scale, timestamps).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Connection } from '../../../src/netstack/stack/tcp/connection.ts';
import { ACK, RST, SYN } from '../../../src/netstack/stack/tcp/segment.ts';
import { connected, record } from './tcp-support.ts';
import { equalBytes, ipPacket, pattern, tcpOf, tcpPacket, twoHosts } from './wire.ts';
import type { Host, Wire } from './wire.ts';

/** A forged segment from `conn`'s peer, in sequence for `conn`. */
function forge(wire: Wire, to: Host, conn: Connection, flags: number, seqDelta = 0) {
  wire.inject(to, tcpPacket(conn.remote.address, conn.local.address, {
    srcPort: conn.remote.port, dstPort: conn.local.port, seq: (conn.rcvNxt + seqDelta) >>> 0, ack: conn.sndNxt, flags, window: 1000,
  }));
}

describe('TCP opening', () => {
  it('completes the three-way handshake with MSS, window scale and timestamps (IPv4)', () => {
    const { wire, a, client, server, clientLog } = connected();
    assert.equal(client.state, 'ESTABLISHED');
    assert.equal(server.state, 'ESTABLISHED');
    assert.ok(clientLog.connected, 'onConnect fired');
    const syn = tcpOf(a.sent[0]!)!;
    assert.equal(syn.flags, SYN);
    assert.equal(syn.options.mss, 1380);
    assert.equal(syn.options.wscale, 7, '4 MiB buffer needs scale 7');
    assert.ok(syn.options.tsVal !== undefined, 'timestamps offered');
    assert.ok(client.tsOk && server.tsOk, 'timestamps agreed');
    assert.equal(client.sndWscale, 7);
    assert.equal(client.smss, 1380 - 12, 'MSS less the timestamp option');
    assert.equal(wire.hosts.length, 2);
  });

  it('starts both receive windows at the buffer size, whatever the ISNs', () => {
    for (let seed = 1; seed <= 12; seed++) {
      const { wire, client, server } = connected({ seed });
      client.write(pattern(10), wire.now);
      server.write(pattern(10), wire.now);
      wire.run(100);
      for (const c of [client, server]) {
        const wnd = (c.rcvAdv - c.rcvNxt) | 0;
        assert.ok(wnd > 0 && wnd <= c.rcvBufSize + 128, `seed ${seed}: window ${wnd}`);
      }
    }
  });

  it('uses MSS = MTU − 60 over IPv6 and honours a smaller peer MSS', () => {
    const { a, client, server } = connected({ v6: true, b: { mtu: 1280 } });
    assert.equal(tcpOf(a.sent[0]!)!.options.mss, 1360);
    assert.equal(server.smss, 1220 - 12);
    assert.equal(client.smss, 1220 - 12, 'the client honours the server MSS');
  });

  it('leaves window scaling and timestamps off when the peer does not offer them', () => {
    const { b, client, server } = connected({ a: { tcpTimestamps: false, tcpWindowScaling: false } });
    const synAck = tcpOf(b.sent[0]!)!;
    assert.equal(synAck.flags, SYN | ACK);
    assert.equal(synAck.options.wscale, undefined);
    assert.equal(synAck.options.tsVal, undefined);
    assert.equal(server.tsOk, false);
    assert.equal(server.rcvWscale, 0);
    assert.equal(client.sndWscale, 0);
  });

  it('tolerates unknown options and SACK-permitted on a SYN', () => {
    const { wire, a, b } = twoHosts();
    b.stack.tcpListen(80);
    // MSS, SACK-permitted, an unknown option kind 30 of length 6, then a timestamp.
    const opts = [2, 4, 0x05, 0xb4, 4, 2, 30, 6, 1, 2, 3, 4, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0];
    const body = new Uint8Array(20 + opts.length);
    body[0] = 0x9c; body[1] = 0x40; body[3] = 80; body[7] = 100;
    body[12] = ((20 + opts.length) / 4) << 4; body[13] = SYN; body[14] = 0xff; body[15] = 0xff;
    body.set(opts, 20);
    void a;
    wire.inject(b, ipPacket('10.0.0.1', '10.0.0.2', 6, body, 16));
    wire.run(10);
    const synAck = b.sent.map(tcpOf).find((s) => s && s.flags === (SYN | ACK));
    assert.ok(synAck, 'SYN-ACK sent');
    assert.ok(synAck.options.tsVal !== undefined && synAck.options.tsEcr === 1, 'timestamp echoed');
    assert.equal(synAck.options.mss, 1380);
  });

  it('hands over a passive connection before the data that came with the handshake\'s last ACK', () => {
    const { wire, b } = twoHosts();
    const l = b.stack.tcpListen(80);
    const order: string[] = [];
    l.onConnection = (c) => {
      order.push(`connection ${c.state}`);
      c.events = { onData: (d) => order.push(`data ${d.length}`) };
    };
    wire.tap = () => 'drop';
    wire.inject(b, tcpPacket('10.0.0.1', '10.0.0.2', { srcPort: 4000, dstPort: 80, seq: 100, ack: 0, flags: SYN, window: 65535 }));
    wire.run(1);
    const synAck = tcpOf(b.sent[0]!)!;
    wire.inject(b, tcpPacket('10.0.0.1', '10.0.0.2', {
      srcPort: 4000, dstPort: 80, seq: 101, ack: (synAck.seq + 1) >>> 0, flags: ACK, window: 65535,
    }, pattern(20)));
    wire.run(1);
    assert.deepEqual(order, ['connection ESTABLISHED', 'data 20']);
  });

  it('gets ECONNREFUSED from a closed port (RST for the SYN)', () => {
    const { wire, a, b } = twoHosts();
    const c = a.stack.tcpConnect({ address: '10.0.0.2', port: 81 }, 0);
    const log = record(c, wire);
    wire.run(100);
    assert.equal(log.error, 'ECONNREFUSED');
    assert.equal(c.state, 'CLOSED');
    assert.equal(b.stack.counters.tcpNoSocket, 1);
    assert.equal(b.stack.counters.tcpRstSent, 1);
    assert.equal(a.stack.tcpConnectionCount, 0);
  });

  for (const [v6, code] of [[false, 3], [true, 4], [false, 1]] as const) {
    it(`fails a connection attempt on ICMP${v6 ? 'v6' : ''} unreachable code ${code} quoting its SYN`, () => {
      const { wire, a } = twoHosts();
      wire.tap = () => 'drop';
      const c = a.stack.tcpConnect({ address: v6 ? 'fd00::2' : '10.0.0.2', port: 80 }, 0);
      const log = record(c, wire);
      const syn = a.sent[0]!;
      const body = new Uint8Array(8 + syn.length);
      body[0] = v6 ? 1 : 3; body[1] = code;
      body.set(syn, 8);
      // A quote with the wrong sequence number is ignored (RFC 5927).
      const wrong = body.slice();
      wrong[8 + (v6 ? 40 : 20) + 7]! ^= 1;
      wire.inject(a, ipPacket(v6 ? 'fd00::2' : '10.0.0.2', v6 ? 'fd00::1' : '10.0.0.1', v6 ? 58 : 1, wrong, 2));
      wire.run(1);
      assert.equal(c.state, 'SYN-SENT');
      wire.inject(a, ipPacket(v6 ? 'fd00::2' : '10.0.0.2', v6 ? 'fd00::1' : '10.0.0.1', v6 ? 58 : 1, body, 2));
      wire.run(1);
      assert.equal(log.error, code === 1 ? 'EHOSTUNREACH' : 'ECONNREFUSED');
    });
  }

  it('opens simultaneously (SYN-SENT → SYN-RECEIVED → ESTABLISHED)', () => {
    const { wire, a, b } = twoHosts();
    const ca = a.stack.tcpConnect({ address: '10.0.0.2', port: 5000 }, 0, { port: 6000 }) as Connection;
    const cb = b.stack.tcpConnect({ address: '10.0.0.1', port: 6000 }, 0, { port: 5000 }) as Connection;
    const la = record(ca, wire);
    const lb = record(cb, wire);
    wire.run(200);
    assert.equal(ca.state, 'ESTABLISHED');
    assert.equal(cb.state, 'ESTABLISHED');
    assert.ok(la.connected && lb.connected, 'both connected');
    ca.write(pattern(10), wire.now);
    wire.run(100);
    assert.ok(equalBytes(lb.received(), pattern(10)), 'data flows');
  });

  it('reports EHOSTUNREACH at the next tick when no address of the family exists', () => {
    const { wire } = twoHosts();
    const only4 = wire.host('c', ['10.0.0.3']);
    const c = only4.stack.tcpConnect({ address: 'fd00::2', port: 80 }, wire.now);
    const log = record(c, wire);
    assert.equal(log.closed, false, 'not synchronously');
    wire.run(1);
    assert.equal(log.error, 'EHOSTUNREACH');
  });
});

describe('TCP closing', () => {
  it('half-closes: the other direction keeps flowing until its FIN, then TIME-WAIT expires', () => {
    const { wire, a, client, server, clientLog, serverLog } = connected({ a: { tcpMsl: 1000 } });
    client.shutdown(wire.now);
    wire.run(100);
    assert.ok(serverLog.ended, 'server saw FIN');
    assert.equal(server.state, 'CLOSE-WAIT');
    assert.equal(client.state, 'FIN-WAIT-2');
    assert.equal(client.write(pattern(1), wire.now), 0, 'no writing after shutdown');
    server.write(pattern(5000), wire.now);
    wire.run(100);
    assert.ok(equalBytes(clientLog.received(), pattern(5000)), 'half-closed client still reads');
    server.close(wire.now);
    assert.equal(server.state, 'LAST-ACK');
    wire.run(100);
    assert.equal(server.state, 'CLOSED');
    assert.ok(serverLog.closed && serverLog.error === undefined, 'server closed cleanly');
    assert.equal(client.state, 'TIME-WAIT');
    assert.ok(clientLog.ended && clientLog.closed, 'client ended and closed');
    assert.equal(a.stack.tcpConnectionCount, 1, 'TIME-WAIT keeps the connection');
    wire.run(1999 - 100);
    assert.equal(client.state, 'TIME-WAIT');
    wire.run(200);
    assert.equal(a.stack.tcpConnectionCount, 0, 'gone after 2 MSL');
  });

  it('closes simultaneously (FIN-WAIT-1 → CLOSING → TIME-WAIT on both sides)', () => {
    const { wire, client, server } = connected();
    const seen = new Set<string>();
    client.shutdown(wire.now);
    server.shutdown(wire.now);
    assert.equal(client.state, 'FIN-WAIT-1');
    assert.equal(server.state, 'FIN-WAIT-1');
    wire.runWhile(() => { seen.add(client.state); return client.state !== 'TIME-WAIT'; }, 1000);
    wire.run(50);
    assert.ok(seen.has('CLOSING'), `went through CLOSING: ${[...seen]}`);
    assert.equal(client.state, 'TIME-WAIT');
    assert.equal(server.state, 'TIME-WAIT');
  });

  it('retransmits a lost FIN and answers a repeated FIN in TIME-WAIT', () => {
    const { wire, a, b, client, server } = connected();
    let finsDropped = 0;
    let acksDropped = 0;
    wire.tap = (from, p) => {
      const s = tcpOf(p);
      if (s && from === a && s.flags & 1 && finsDropped < 2) { finsDropped++; return 'drop'; }
      if (s && from === a && client.state === 'TIME-WAIT' && acksDropped < 1) { acksDropped++; return 'drop'; }
      return 'pass';
    };
    client.close(wire.now);
    wire.run(5000);
    assert.equal(finsDropped, 2);
    assert.equal(server.state, 'CLOSE-WAIT', 'the third FIN arrived');
    server.close(wire.now);
    wire.run(10_000);
    assert.equal(acksDropped, 1);
    assert.ok(b.stack.counters.tcpRetransmits >= 1, 'server retransmitted its FIN');
    assert.equal(server.state, 'CLOSED', 'TIME-WAIT answered the repeated FIN');
    assert.equal(client.state, 'TIME-WAIT');
  });

  it('abort sends RST: the peer gets ECONNRESET', () => {
    const { wire, client, serverLog, clientLog } = connected();
    client.abort(wire.now);
    assert.equal(client.state, 'CLOSED');
    wire.run(100);
    assert.equal(serverLog.error, 'ECONNRESET');
    assert.ok(clientLog.closed && clientLog.error === undefined, 'abort closes without error');
  });
});

describe('RST and SYN checks (RFC 5961)', () => {
  it('ESTABLISHED: exact RST resets, in-window RST gets a challenge ACK, out-of-window is dropped', () => {
    const { wire, a, client, clientLog } = connected();
    forge(wire, a, client, RST | ACK, 100);
    wire.run(10);
    assert.equal(client.state, 'ESTABLISHED');
    assert.equal(a.stack.counters.tcpChallengeAck, 1);
    forge(wire, a, client, RST | ACK, -100_000);
    wire.run(10);
    assert.equal(client.state, 'ESTABLISHED');
    assert.equal(a.stack.counters.tcpOutOfWindow, 1);
    forge(wire, a, client, SYN, 0);
    wire.run(10);
    assert.equal(client.state, 'ESTABLISHED', 'SYN does not reset');
    assert.equal(a.stack.counters.tcpSynInWindow, 1);
    forge(wire, a, client, RST, 0);
    wire.run(10);
    assert.equal(client.state, 'CLOSED');
    assert.equal(clientLog.error, 'ECONNRESET');
  });

  it('FIN-WAIT-1 and CLOSING: RST resets (ECONNRESET) or closes (CLOSING)', () => {
    const { wire, a, b, client, clientLog } = connected();
    // Hold back everything B sends so A's FIN stays unacknowledged.
    wire.tap = (from) => from === b ? 'drop' : 'pass';
    client.shutdown(wire.now);
    wire.run(50);
    assert.equal(client.state, 'FIN-WAIT-1');
    forge(wire, a, client, RST, 0);
    wire.run(1);
    assert.equal(client.state, 'CLOSED');
    assert.equal(clientLog.error, 'ECONNRESET');

    const p = connected({ seed: 2 });
    p.wire.tap = (from, pkt) => (tcpOf(pkt)?.flags ?? 0) & 1 ? 'pass' : 'drop'; // only FINs pass
    p.client.shutdown(p.wire.now);
    p.server.shutdown(p.wire.now);
    p.wire.run(50);
    assert.equal(p.client.state, 'CLOSING');
    forge(p.wire, p.a, p.client, RST, 0);
    p.wire.run(1);
    assert.equal(p.client.state, 'CLOSED');
    assert.equal(p.clientLog.error, undefined);
  });

  it('PAWS drops a segment with an old timestamp (RFC 7323 §5)', () => {
    const { wire, a, client, clientLog } = connected();
    const old = (client.tsRecent - 1000) >>> 0;
    wire.inject(a, tcpPacket(client.remote.address, client.local.address, {
      srcPort: client.remote.port, dstPort: client.local.port, seq: client.rcvNxt, ack: client.sndNxt, flags: ACK,
      window: 1000, ts: { val: old, ecr: 0 },
    }, pattern(100)));
    wire.run(10);
    assert.equal(a.stack.counters.tcpPawsRejected, 1);
    assert.equal(clientLog.received().length, 0, 'old duplicate not delivered');
  });

  for (const state of ['FIN-WAIT-2', 'CLOSE-WAIT'] as const) {
    it(`${state}: RST gives ECONNRESET`, () => {
      const { wire, a, b, client, server, clientLog, serverLog } = connected();
      client.shutdown(wire.now);
      wire.run(100);
      const [conn, host, log] = state === 'FIN-WAIT-2' ? [client, a, clientLog] : [server, b, serverLog];
      assert.equal(conn.state, state);
      forge(wire, host, conn, RST, 0);
      wire.run(10);
      assert.equal(conn.state, 'CLOSED');
      assert.equal(log.error, 'ECONNRESET');
    });
  }

  it('LAST-ACK and TIME-WAIT: RST just closes', () => {
    const { wire, a, b, client, server, serverLog } = connected();
    wire.tap = (from) => from === a && client.state === 'TIME-WAIT' ? 'drop' : 'pass';
    client.shutdown(wire.now);
    wire.run(100);
    server.close(wire.now);
    wire.run(100);
    assert.equal(server.state, 'LAST-ACK', 'final ACK was dropped');
    forge(wire, b, server, RST, 0);
    forge(wire, a, client, RST, 0);
    wire.run(10);
    assert.equal(server.state, 'CLOSED');
    assert.equal(serverLog.error, undefined);
    assert.equal(client.state, 'CLOSED');
    assert.equal(a.stack.tcpConnectionCount, 0);
  });

  it('SYN-RECEIVED: RST sends the half-open connection away silently', () => {
    const { wire, b } = twoHosts();
    const l = b.stack.tcpListen(80);
    let accepted = 0;
    l.onConnection = () => accepted++;
    wire.tap = () => 'drop';
    wire.inject(b, tcpPacket('10.0.0.1', '10.0.0.2', { srcPort: 1234, dstPort: 80, seq: 1000, ack: 0, flags: SYN, window: 1000 }));
    wire.run(1);
    assert.equal(b.stack.tcpConnectionCount, 1);
    wire.inject(b, tcpPacket('10.0.0.1', '10.0.0.2', { srcPort: 1234, dstPort: 80, seq: 1001, ack: 0, flags: RST, window: 0 }));
    wire.run(1);
    assert.equal(b.stack.tcpConnectionCount, 0);
    assert.equal(accepted, 0);
  });

  it('an ACK to a listener without a connection gets RST with SEQ = SEG.ACK', () => {
    const { wire, b } = twoHosts();
    b.stack.tcpListen(80);
    wire.inject(b, tcpPacket('10.0.0.1', '10.0.0.2', { srcPort: 1234, dstPort: 80, seq: 5, ack: 777, flags: ACK, window: 1000 }));
    wire.run(10);
    const rst = tcpOf(b.sent[0]!)!;
    assert.equal(rst.flags, RST);
    assert.equal(rst.seq, 777);
  });
});

describe('listen backlog and limits', () => {
  it('survives a SYN flood: half-open connections stay bounded and a real client still connects', () => {
    const { wire, a, b } = twoHosts({ b: { synBacklog: 16 } });
    const l = b.stack.tcpListen(80);
    const accepted: Connection[] = [];
    l.onConnection = (c) => accepted.push(c as Connection);
    // 200 spoofed SYNs from an address nobody answers for.
    for (let i = 0; i < 200; i++) {
      wire.inject(b, tcpPacket('10.9.0.1', '10.0.0.2', { srcPort: 10000 + i, dstPort: 80, seq: i * 1000, ack: 0, flags: SYN, window: 1000 }));
    }
    wire.run(10);
    assert.equal(b.stack.tcpConnectionCount, 16, 'backlog bounds half-open connections');
    assert.equal(b.stack.counters.tcpSynBacklogFull, 184);
    const c = a.stack.tcpConnect({ address: '10.0.0.2', port: 80 }, wire.now);
    const log = record(c, wire);
    wire.runWhile(() => !log.connected || accepted.length === 0, 30_000);
    assert.ok(log.connected, 'legitimate client connected');
    assert.equal(accepted.length, 1);
    assert.ok(b.stack.counters.tcpSynBacklogEvicted >= 1, 'an old half-open entry made room');
    wire.run(120_000);
    assert.equal(b.stack.tcpConnectionCount, 1, 'half-open entries gave up');
    assert.ok(b.stack.counters.tcpSynAckGiveUp > 0, 'SYN-ACK retries gave up');
  });

  it('refuses connections beyond maxConnections with RST', () => {
    const { wire, a, b } = twoHosts({ b: { maxConnections: 2 } });
    b.stack.tcpListen(80);
    const logs = [0, 1, 2].map(() => record(a.stack.tcpConnect({ address: '10.0.0.2', port: 80 }, wire.now), wire));
    wire.run(500);
    assert.equal(logs.filter((l) => l.connected).length, 2);
    assert.equal(logs[2]!.error, 'ECONNREFUSED');
    assert.equal(b.stack.counters.tcpConnectionLimit, 1);
  });

  it('shares ephemeral ports between different remotes once the range is used up', () => {
    const { wire, a, b } = twoHosts({ a: { ephemeralPortMin: 40000, ephemeralPortMax: 40003 } });
    b.stack.tcpListen(80);
    b.stack.tcpListen(81);
    const conns = [80, 80, 80, 80, 81, 81].map((port) => a.stack.tcpConnect({ address: '10.0.0.2', port }, wire.now));
    const logs = conns.map((c) => record(c, wire));
    wire.run(200);
    assert.equal(logs.filter((l) => l.connected).length, 6);
    const seventh = record(a.stack.tcpConnect({ address: '10.0.0.2', port: 80 }, wire.now), wire);
    wire.run(10);
    assert.equal(seventh.error, 'ECONNABORTED', 'no 4-tuple left to port 80');
  });

  it('refuses a second listener on the same port', () => {
    const { b } = twoHosts();
    const l = b.stack.tcpListen(80);
    assert.throws(() => b.stack.tcpListen(80), { code: 'ERR_ADDRESS_IN_USE' });
    assert.throws(() => b.stack.tcpListen(80, '10.0.0.2'), { code: 'ERR_ADDRESS_IN_USE' });
    l.close();
    b.stack.tcpListen(80, '10.0.0.2').close();
  });
});
