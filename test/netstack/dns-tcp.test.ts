/**
 * DNS over TCP through the tunnel (issue 11 §1, the audit of the stream glue): an answer too
 * large for a datagram comes with the TC bit, and the resolver asks again over TCP. The TCP
 * answer spans several segments and the server half-closes right after writing it: every record
 * arrives. A TCP answer cut by a FIN or a reset is a failure, never a shorter answer; a query in
 * flight when the tunnel closes fails at once.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Duplex } from 'node:stream';
import { decodeMessage, encodeResponse, TYPE_A } from '../../src/netstack/dns.ts';
import type { DnsMessage } from '../../src/netstack/dns.ts';
import type { TunnelSocket } from '../../src/netstack/socket.ts';
import { makePair } from './helpers.ts';
import type { Pair } from './helpers.ts';

/** 400 A records: ~9.6 KB of answer, seven segments at MTU 1420. */
const MANY = Array.from({ length: 400 }, (_, i) => `10.9.${i >> 8}.${i & 0xff}`);
/** What a UDP answer carries before it sets TC (a 512-byte server). */
const FIT = 10;

function answer(q: DnsMessage, values: string[]): Buffer {
  const { name, type } = q.questions[0]!;
  return Buffer.from(encodeResponse(q, type === TYPE_A ? values.map((value) => ({ name, type, ttl: 60, value })) : []));
}

function framed(m: Buffer): Buffer {
  const b = Buffer.alloc(2 + m.length);
  b.writeUInt16BE(m.length, 0);
  m.copy(b, 2);
  return b;
}

/** Reads one length-framed DNS query from a TCP connection. */
function readQuery(s: Duplex): Promise<DnsMessage> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    s.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) return;
      const q = decodeMessage(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      if (q) resolve(q); else reject(new Error('bad query'));
    });
    s.on('error', reject);
  });
}

describe('DNS over TCP through the tunnel', () => {
  let pair: Pair;
  let tcpQueries = 0;
  before(async () => {
    pair = await makePair({ aliceInterface: 'DNS = 10.0.0.2', options: { dnsTimeoutMs: 5000 } });
    // UDP: every answer to a *.test name is truncated to FIT records with TC set.
    const udp = pair.bob.udp(53);
    udp.on('message', (msg: Buffer, r: { address: string; port: number }) => {
      const q = decodeMessage(msg);
      if (!q || q.questions.length !== 1) return;
      if (q.questions[0]!.name === 'silent.test') return;
      const m = answer(q, MANY.slice(0, FIT));
      m[2]! |= 0x02; // TC
      udp.send(m, r.port, r.address);
    });
    // TCP: the whole answer, written in pieces, then a half-close at once (or a cut).
    pair.bob.listen(53, undefined, { allowHalfOpen: true }).on('connection', (s: TunnelSocket) => {
      tcpQueries++;
      readQuery(s).then((q) => {
        const whole = framed(answer(q, MANY));
        const name = q.questions[0]!.name;
        if (name === 'fin-cut.test') { s.end(whole.subarray(0, 3000)); return; }
        if (name === 'rst-cut.test') {
          s.write(whole.subarray(0, 3000));
          const cut = () => { if (s.bufferedAmount === 0) s.resetAndDestroy(); else setTimeout(cut, 5); };
          setTimeout(cut, 5);
          return;
        }
        for (let o = 0; o < whole.length; o += 1000) s.write(whole.subarray(o, o + 1000));
        s.end();
      }, () => s.destroy());
    });
  });
  after(async () => { await pair.close(); });

  it('asks again over TCP when the UDP answer is truncated, and gets every record of a multi-segment answer', { timeout: 30_000 }, async () => {
    const before = tcpQueries;
    const got = await pair.alice.resolve('big.test', { family: 4 });
    assert.equal(tcpQueries - before, 1, 'one TCP query');
    assert.equal(got.length, MANY.length, `records (the truncated UDP answer had ${FIT})`);
    assert.deepEqual(got, MANY);
  });

  it('an answer cut by a FIN is an error, never a shorter answer', { timeout: 30_000 }, async () => {
    await assert.rejects(pair.alice.resolve('fin-cut.test', { family: 4 }), (err: NodeJS.ErrnoException) => {
      assert.equal(err.code, 'ESERVFAIL');
      assert.match(err.message, /closed the TCP connection 3000 byte\(s\) into its answer/);
      return true;
    });
  });

  it('an answer cut by a reset is an error', { timeout: 30_000 }, async () => {
    await assert.rejects(pair.alice.resolve('rst-cut.test', { family: 4 }), (err: NodeJS.ErrnoException) => {
      assert.equal(err.code, 'ECONNRESET');
      return true;
    });
  });

  it('a query in flight when the tunnel closes fails at once with ERR_NETSTACK_CLOSED', { timeout: 30_000 }, async () => {
    // Its own tunnel, with a query timeout longer than the test: only the close can end it.
    const other = await makePair({ aliceInterface: 'DNS = 10.0.0.2', options: { dnsTimeoutMs: 600_000 } });
    try {
      other.bob.udp(53).on('message', () => {});
      // The query's UDP socket is open as soon as resolve() returns.
      const pending = other.alice.resolve('silent.test', { family: 4 });
      const closing = other.alice.close();
      await assert.rejects(pending, (err: NodeJS.ErrnoException) => err.code === 'ERR_NETSTACK_CLOSED');
      await closing;
    } finally {
      await other.close().catch(() => {});
    }
  });
});
