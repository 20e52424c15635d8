/**
 * The UDP relays at their limits (issue 11 §1, the audit of the stream glue): datagrams to a
 * name wait for it in a bounded queue (one lookup per name, their order kept), every datagram
 * handed to send() is either sent or reported, also when the tunnel closes under it; a SOCKS5
 * UDP association lives exactly as long as its TCP connection; forward --udp keeps a bounded
 * set of flows and forgets idle ones.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import dgram from 'node:dgram';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { decodeMessage, encodeResponse, TYPE_A } from '../../src/netstack/dns.ts';
import { forwardUdp } from '../../src/netstack/forward.ts';
import type { TunnelNet } from '../../src/netstack/relay.ts';
import { decodeUdpRequest, encodeAddress, startSocks5 } from '../../src/netstack/socks5.ts';
import { MAX_WAITING_DATAGRAMS } from '../../src/netstack/udp.ts';
import type { TunnelUdpSocket } from '../../src/netstack/udp.ts';
import { makePair } from './helpers.ts';
import type { Pair } from './helpers.ts';

/** Polls `ok` every 5 ms until it holds (the test's own timeout bounds the wait). */
async function until(ok: () => boolean): Promise<void> {
  while (!ok()) await sleep(5);
}

function udpClient(): Promise<dgram.Socket> {
  const u = dgram.createSocket('udp4');
  return new Promise((resolve) => u.bind(0, '127.0.0.1', () => resolve(u)));
}

function domain(name: string, port: number): Buffer {
  return Buffer.concat([Buffer.from([3, name.length]), Buffer.from(name), Buffer.from([port >> 8, port & 0xff])]);
}

describe('UDP relays: bounded queues, nothing dropped silently, lifetimes', () => {
  let pair: Pair;
  /** DNS questions bob received, by name. */
  const asked = new Map<string, number>();
  /** Where bob's UDP echo on port 7 saw each datagram come from ("payload" → port). */
  const seenFrom: { data: string; port: number }[] = [];

  before(async () => {
    // A query timeout longer than any test: names of silent.test only end with the tunnel.
    pair = await makePair({ aliceInterface: 'DNS = 10.0.0.2', options: { dnsTimeoutMs: 600_000 } });
    const dns = pair.bob.udp(53);
    dns.on('message', (msg: Buffer, r: { address: string; port: number }) => {
      const q = decodeMessage(msg);
      if (!q || q.questions.length !== 1) return;
      const { name, type } = q.questions[0]!;
      asked.set(name, (asked.get(name) ?? 0) + 1);
      if (name === 'silent.test') return;
      dns.send(encodeResponse(q, name === 'bob.test' && type === TYPE_A ? [{ name, type, ttl: 60, value: '10.0.0.2' }] : []), r.port, r.address);
    });
    const echo = pair.bob.udp(7);
    echo.on('message', (m: Buffer, r: { address: string; port: number }) => {
      seenFrom.push({ data: m.toString(), port: r.port });
      echo.send(m, r.port, r.address);
    });
  });
  after(async () => { await pair.close(); });

  it('datagrams to a name wait in a bounded queue behind one lookup; the rest fail with ENOBUFS', { timeout: 30_000 }, async () => {
    const u = pair.alice.udp();
    const results: (string | null)[] = [];
    const total = MAX_WAITING_DATAGRAMS + 136;
    for (let i = 0; i < total; i++) {
      u.send(Buffer.from(`d${i}`), 9, 'silent.test', (err) => { results.push(err ? (err as NodeJS.ErrnoException).code ?? 'error' : null); });
    }
    assert.equal(u.waitingDatagrams, MAX_WAITING_DATAGRAMS, 'datagrams waiting for the name');
    assert.equal(results.filter((r) => r === 'ENOBUFS').length, total - MAX_WAITING_DATAGRAMS, 'the rest refused at once, each reported');
    // One lookup (A and AAAA) for all of them, not one per datagram.
    await until(() => (asked.get('silent.test') ?? 0) >= 2);
    await sleep(50);
    assert.equal(asked.get('silent.test'), 2, 'questions bob received for silent.test');
    u.close();
    await until(() => results.length === total);
    assert.equal(u.waitingDatagrams, 0, 'closing the socket reports every waiting datagram');
    assert.ok(results.every((r) => r !== null), 'none reported as sent');
  });

  it('datagrams to a name are sent in the order given, once it resolves', { timeout: 30_000 }, async () => {
    const u = pair.alice.udp();
    const back: string[] = [];
    u.on('message', (m: Buffer) => back.push(m.toString()));
    const n = 40;
    for (let i = 0; i < n; i++) u.send(Buffer.from(`o${i}`), 7, 'bob.test', (err) => assert.ifError(err));
    await until(() => back.length === n);
    assert.deepEqual(back, Array.from({ length: n }, (_, i) => `o${i}`));
    u.close();
  });

  it('SOCKS5 UDP ASSOCIATE: a client faster than the resolver is dropped with a log line, not queued without bound', { timeout: 30_000 }, async () => {
    const logs: string[] = [];
    const server = await startSocks5(pair.alice, '127.0.0.1', 0, { log: (l) => logs.push(l) });
    const { s, relayPort } = await associate(server);
    const u = await udpClient();
    const total = MAX_WAITING_DATAGRAMS + 36;
    for (let i = 0; i < total; i++) {
      u.send(Buffer.concat([Buffer.from([0, 0, 0]), domain('silent.test', 9), Buffer.from(`s${i}`)]), relayPort, '127.0.0.1');
      // Loopback buffers are large, but not unbounded: let the relay read as we go.
      if (i % 16 === 15) await sleep(1);
    }
    await until(() => logs.filter((l) => /ENOBUFS|datagrams already wait/.test(l)).length >= total - MAX_WAITING_DATAGRAMS);
    s.destroy();
    // Closing the association reports the datagrams still waiting for the name.
    await until(() => logs.filter((l) => /dropped/.test(l)).length === total);
    u.close();
    server.close();
  });

  it('SOCKS5 UDP ASSOCIATE lives as long as its TCP connection', { timeout: 30_000 }, async () => {
    const opened: TunnelUdpSocket[] = [];
    const spy: TunnelNet = {
      connect: (o) => pair.alice.connect(o),
      udp: () => { const t = pair.alice.udp(); opened.push(t); return t; },
    };
    const server = await startSocks5(spy, '127.0.0.1', 0);
    const { s, relayPort } = await associate(server);
    const u = await udpClient();
    const got = once(u, 'message');
    u.send(Buffer.concat([Buffer.from([0, 0, 0]), encodeAddress('10.0.0.2', 7), Buffer.from('alive')]), relayPort, '127.0.0.1');
    const [msg] = (await got) as [Buffer];
    assert.equal(decodeUdpRequest(msg)?.data.toString(), 'alive', 'relayed while the TCP connection is open');
    assert.equal(opened.length, 1);
    const closed = once(opened[0]!, 'close');
    s.destroy();
    await closed;
    u.close();
    server.close();
  });

  it('Netstack.close() closes its UDP sockets: a send after it is reported, not lost silently', { timeout: 30_000 }, async () => {
    const other = await makePair();
    try {
      const u = other.alice.udp();
      const closed = once(u, 'close');
      await other.alice.close();
      await closed;
      const [err] = await new Promise<[Error | null]>((resolve) => u.send(Buffer.from('late'), 7, '10.0.0.2', (e) => resolve([e])));
      assert.equal((err as NodeJS.ErrnoException | null)?.code, 'ERR_SOCKET_DGRAM_NOT_RUNNING');
    } finally {
      await other.close().catch(() => {});
    }
  });

  it('forward --udp keeps at most maxFlows flows (least recently used goes) and forgets idle ones', { timeout: 30_000 }, async () => {
    const f = await forwardUdp(pair.alice, { bindHost: '127.0.0.1', bindPort: 0, host: '10.0.0.2', hostPort: 7 }, () => {}, { maxFlows: 2, idleMs: 100 });
    const port = Number(f.listening.split(':').pop());
    const clients = [await udpClient(), await udpClient(), await udpClient()];
    /** Sends `tag` from client i, waits for its echo; returns the tunnel port bob saw. */
    const hit = async (i: number, tag: string): Promise<number> => {
      const got = once(clients[i]!, 'message');
      clients[i]!.send(Buffer.from(tag), port, '127.0.0.1');
      const [m] = (await got) as [Buffer];
      assert.equal(m.toString(), tag);
      return seenFrom.find((x) => x.data === tag)!.port;
    };
    const c0 = await hit(0, 'f0a');
    assert.equal(await hit(0, 'f0b'), c0, 'a flow keeps its tunnel socket');
    const c1 = await hit(1, 'f1a');
    await hit(2, 'f2a'); // a third flow: client 0's, the least recently used, goes
    assert.equal(await hit(1, 'f1b'), c1, 'a recent flow stays');
    assert.notEqual(await hit(0, 'f0c'), c0, 'the evicted flow got a new tunnel socket');
    await sleep(400); // > idleMs and the sweep's period
    assert.notEqual(await hit(1, 'f1c'), c1, 'an idle flow was forgotten');
    for (const c of clients) c.close();
    await f.close();
  });
});

/** A SOCKS5 UDP ASSOCIATE on `server`: the control connection and the relay's UDP port. */
async function associate(server: net.Server): Promise<{ s: net.Socket; relayPort: number }> {
  const s = net.connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port });
  await once(s, 'connect');
  s.write(Buffer.from([5, 1, 0, 5, 3, 0, 1, 0, 0, 0, 0, 0, 0]));
  const reply = await new Promise<Buffer>((resolve) => {
    let b = Buffer.alloc(0);
    s.on('data', (c: Buffer) => { b = Buffer.concat([b, c]); if (b.length >= 12) resolve(b); });
  });
  return { s, relayPort: reply.readUInt16BE(10) };
}
