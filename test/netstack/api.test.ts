/**
 * The rootless API (src/netstack/api.ts) end to end in one process: two netstacks with real
 * WireGuard devices on a MemoryNetwork. TCP as Duplex streams (data, half-close, backpressure,
 * errors), servers, UDP, ping, DNS through the tunnel, fetch, and failing closed.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import { encodeResponse, decodeMessage, TYPE_A, TYPE_AAAA } from '../../src/netstack/dns.ts';
import type { TunnelSocket } from '../../src/netstack/socket.ts';
import { makePair } from './helpers.ts';
import type { Pair } from './helpers.ts';

const FAKE = process.env.WIREWEAVE_FAKE_STACK === '1';

function readAll(s: Duplex): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => resolve(Buffer.concat(chunks)));
    s.on('error', reject);
  });
}

function sha(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

async function errorOf(s: Duplex): Promise<NodeJS.ErrnoException> {
  const [err] = (await once(s, 'error')) as [NodeJS.ErrnoException];
  return err;
}

describe('netstack API over a memory network', () => {
  let pair: Pair;
  before(async () => {
    pair = await makePair({ fake: FAKE, aliceInterface: 'DNS = 10.0.0.2' });
    // bob answers DNS for a few names on 10.0.0.2:53.
    const dns = pair.bob.udp(53);
    const zone: Record<string, { a?: string[]; aaaa?: string[] }> = {
      'bob.test': { a: ['10.0.0.2'], aaaa: ['fd00::2'] },
      'outside.test': { a: ['192.168.77.1'] },
    };
    dns.on('message', (msg: Buffer, rinfo: { address: string; port: number }) => {
      const q = decodeMessage(msg);
      if (!q || q.questions.length !== 1) return;
      const { name, type } = q.questions[0]!;
      const entry = zone[name.toLowerCase()];
      const values = entry ? (type === TYPE_A ? entry.a : type === TYPE_AAAA ? entry.aaaa : undefined) ?? [] : [];
      const answers = values.map((value) => ({ name, type, ttl: 60, value }));
      dns.send(encodeResponse(q, answers, entry ? 0 : 3), rinfo.port, rinfo.address);
    });
  });
  after(async () => { await pair.close(); });

  it('carries TCP both ways with half-close, hashes intact', async () => {
    const server = pair.bob.listen(7001, undefined, { allowHalfOpen: true });
    const payloadUp = randomBytes(1_500_000);
    const payloadDown = randomBytes(700_000);
    server.on('connection', (s: TunnelSocket) => {
      s.setNoDelay(true);
      void readAll(s).then((got) => {
        s.end(Buffer.concat([Buffer.from(sha(got)), payloadDown]));
      });
    });
    const c = pair.alice.connect({ host: '10.0.0.2', port: 7001, allowHalfOpen: true });
    await once(c, 'connect');
    assert.equal(c.remoteAddress, '10.0.0.2', 'remoteAddress');
    assert.equal(c.remotePort, 7001, 'remotePort');
    assert.equal(c.localAddress, '10.0.0.1', 'localAddress');
    const reply = readAll(c);
    c.end(payloadUp);
    const got = await reply;
    assert.equal(got.subarray(0, 64).toString(), sha(payloadUp), 'server hashed what we sent');
    assert.equal(sha(got.subarray(64)), sha(payloadDown), 'we got what the server sent');
    server.close();
  });

  it('applies backpressure: a paused reader stops the writer until it resumes', async () => {
    const server = pair.bob.listen(7002);
    const accepted = once(server, 'connection');
    const c = pair.alice.connect({ host: 'fd00::2', port: 7002 });
    await once(c, 'connect');
    const [s] = (await accepted) as [TunnelSocket];
    s.pause();
    // Write until the writer stalls: the stack's send buffer and the paused reader's window
    // are full, so 'drain' stops coming.
    const chunk = Buffer.alloc(64 * 1024, 7);
    let total = 0;
    for (;;) {
      total += chunk.length;
      if (c.write(chunk)) continue;
      const drained = await Promise.race([once(c, 'drain').then(() => true), new Promise((r) => setTimeout(() => r(false), 300))]);
      if (!drained) break;
      assert.ok(total < 128 * 1024 * 1024, 'the writer must stall at some point');
    }
    assert.ok(c.writableLength > 0, 'data waits in our writable buffer while the reader is paused');
    let received = 0;
    s.on('data', (d: Buffer) => { received += d.length; });
    s.resume();
    await once(c, 'drain');
    c.end();
    await once(s, 'end');
    assert.equal(received, total, 'every byte arrived after resuming');
    server.close();
  });

  it('refuses with ECONNREFUSED, and fails closed with EHOSTUNREACH without sending anything', async () => {
    const refused = await errorOf(pair.alice.connect({ host: '10.0.0.2', port: 1 }));
    assert.equal(refused.code, 'ECONNREFUSED', refused.message);

    const sentBefore = pair.aliceBind.sent.length;
    const unreachable = await errorOf(pair.alice.connect({ host: '192.168.77.1', port: 80 }));
    assert.equal(unreachable.code, 'EHOSTUNREACH', unreachable.message);
    assert.match(unreachable.message, /outside every peer's allowed IPs/);
    const byName = await errorOf(pair.alice.connect({ host: 'outside.test', port: 80 }));
    assert.equal(byName.code, 'EHOSTUNREACH', byName.message);
    await assert.rejects(pair.alice.ping('192.168.77.1'), (e: NodeJS.ErrnoException) => e.code === 'EHOSTUNREACH');
    const u = pair.alice.udp();
    const [udpErr] = await new Promise<[Error | null]>((r) => u.send('x', 53, '8.8.8.8', (e) => r([e])));
    assert.equal((udpErr as NodeJS.ErrnoException | null)?.code, 'EHOSTUNREACH', 'UDP outside allowed IPs');
    u.close();
    assert.ok(pair.aliceBind.sent.length - sentBefore <= 2, 'at most the DNS query went out (no dial of the outside address)');
    assert.equal(pair.alice.device.counters.noRoute, 0, 'nothing reached the device without a route');
  });

  it('resolves names only through the tunnel DNS', async () => {
    assert.deepEqual(await pair.alice.resolve('bob.test'), ['10.0.0.2', 'fd00::2'], 'A then AAAA');
    assert.deepEqual(await pair.alice.resolve('BOB.test', { family: 6 }), ['fd00::2'], 'AAAA only, case-insensitive');
    await assert.rejects(pair.alice.resolve('nope.test'), (e: NodeJS.ErrnoException) => e.code === 'ENOTFOUND' && /NXDOMAIN/.test(e.message));
    await assert.rejects(pair.alice.resolve('bad..name'), (e: NodeJS.ErrnoException) => e.code === 'ENOTFOUND');
    await assert.rejects(pair.bob.resolve('bob.test'), (e: NodeJS.ErrnoException) => e.code === 'ENOTFOUND' && /no DNS servers/.test(e.message));
  });

  it('exchanges UDP datagrams and pings', async () => {
    const echo = pair.bob.udp(9999);
    echo.on('message', (m: Buffer, r: { address: string; port: number }) => echo.send(m, r.port, r.address));
    const u = pair.alice.udp();
    const reply = once(u, 'message');
    u.send('hello', 9999, '10.0.0.2');
    const [msg, rinfo] = (await reply) as [Buffer, { address: string; port: number }];
    assert.equal(msg.toString(), 'hello', 'echoed');
    assert.equal(rinfo.address, '10.0.0.2', 'from bob');
    u.close();
    echo.close();
    // The round-trip time is measured on the stack's clock: within the time the call took.
    const called = performance.now();
    const p = await pair.alice.ping('10.0.0.2');
    const took = performance.now() - called;
    assert.equal(p.address, '10.0.0.2', 'echo reply from bob');
    assert.ok(p.time > 0 && p.time <= took, `round-trip time ${p.time} ms within the ${took} ms the call took`);
    const p6 = await pair.alice.ping('bob.test');
    assert.equal(p6.address, '10.0.0.2', 'ping by name');
  });

  it('serves node:http on the netstack and fetches from it, by address and by name', async () => {
    const web = http.createServer((req, res) => {
      if (req.url === '/redirect') { res.writeHead(302, { location: '/hello' }); res.end(); return; }
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        res.setHeader('x-method', req.method ?? '');
        res.end(req.method === 'POST' ? `got ${Buffer.concat(chunks).toString()}` : 'hello from bob');
      });
    });
    const server = pair.bob.listen(8080);
    server.on('connection', (s) => web.emit('connection', s));
    const r1 = await pair.alice.fetch('http://10.0.0.2:8080/hello');
    assert.equal(r1.status, 200, 'status');
    assert.equal(await r1.text(), 'hello from bob', 'body');
    const r2 = await pair.alice.fetch('http://bob.test:8080/x', { method: 'POST', body: 'ping' });
    assert.equal(await r2.text(), 'got ping', 'POST body arrived');
    assert.equal(r2.headers.get('x-method'), 'POST', 'headers');
    const r3 = await pair.alice.fetch('http://bob.test:8080/redirect');
    assert.equal(await r3.text(), 'hello from bob', 'redirect followed');
    assert.equal(r3.url, 'http://bob.test:8080/hello', 'final URL');
    await assert.rejects(pair.alice.fetch('http://outside.test/'), (e: NodeJS.ErrnoException) => e.code === 'EHOSTUNREACH');
    server.close();
    web.close();
  });

  it('destroy() on either end ends the other; errors after the peer aborts', async () => {
    const server = pair.bob.listen(7003);
    const accepted = once(server, 'connection');
    const c = pair.alice.connect({ host: '10.0.0.2', port: 7003 });
    await once(c, 'connect');
    const [s] = (await accepted) as [TunnelSocket];
    const ended = once(s, 'close');
    c.destroy();
    s.resume();
    await ended;
    const c2 = pair.alice.connect({ host: '10.0.0.2', port: 7003 });
    const accepted2 = once(server, 'connection');
    await once(c2, 'connect');
    const [s2] = (await accepted2) as [TunnelSocket];
    s2.on('error', () => {});
    s2.destroy(new Error('go away'));
    const err = await errorOf(c2);
    assert.equal(err.code, 'ECONNRESET', err.message);
    server.close();
  });

  it('times out with ETIMEDOUT when SYNs go unanswered', { skip: FAKE && 'the stand-in stack has no SYN retransmission settings' }, async () => {
    const quiet = await makePair({ fake: FAKE, options: { stack: { tcpSynRetries: 1, tcpInitialRto: 100 } } });
    try {
      await quiet.alice.ping('10.0.0.2'); // the WireGuard handshake first, then silence
      // Count what alice still sends (SYNs, sealed: transport messages longer than a keepalive).
      let syns = 0;
      quiet.network.filter = (d) => { if (d[0] === 4 && d.length > 32) syns++; return false; };
      // The stack's timers are unref'd and a memory network holds no handle: keep the loop alive.
      const hold = setInterval(() => {}, 1000);
      const err = await errorOf(quiet.alice.connect({ host: '10.0.0.2', port: 80 })).finally(() => clearInterval(hold));
      assert.equal(err.code, 'ETIMEDOUT', err.message);
      assert.equal(syns, 2, 'gave up after the configured retries: the SYN and one retransmission');
    } finally {
      await quiet.close();
    }
  });
});
