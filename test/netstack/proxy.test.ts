/**
 * The SOCKS5 and HTTP proxies (src/netstack/socks5.ts, http-proxy.ts) on real host sockets,
 * reaching bob's services through a netstack tunnel on a memory network: CONNECT, UDP
 * ASSOCIATE, auth, forwarding, failing closed, and garbage / half-written requests.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import dgram from 'node:dgram';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { startHttpProxy } from '../../src/netstack/http-proxy.ts';
import { decodeUdpRequest, encodeAddress, startSocks5 } from '../../src/netstack/socks5.ts';
import { makePair } from './helpers.ts';
import type { Pair } from './helpers.ts';

const FAKE = process.env.WIREWEAVE_FAKE_STACK === '1';

/** Reads exactly n bytes (or what is there when the socket ends). */
function reader(s: net.Socket): (n: number) => Promise<Buffer> {
  let buf = Buffer.alloc(0);
  let ended = false;
  let wake: (() => void) | null = null;
  s.on('data', (c: Buffer) => { buf = Buffer.concat([buf, c]); wake?.(); });
  s.on('end', () => { ended = true; wake?.(); });
  s.on('close', () => { ended = true; wake?.(); });
  return async (n) => {
    while (buf.length < n && !ended) await new Promise<void>((r) => { wake = r; });
    const out = buf.subarray(0, Math.min(n, buf.length));
    buf = buf.subarray(out.length);
    return out;
  };
}

async function dial(port: number): Promise<net.Socket> {
  const s = net.connect({ host: '127.0.0.1', port });
  await once(s, 'connect');
  return s;
}

/** A SOCKS5 handshake: greeting (+auth), request; returns the reply code and the socket. */
async function socksRequest(port: number, cmd: number, addr: Buffer, auth?: [string, string]): Promise<{ s: net.Socket; read: (n: number) => Promise<Buffer>; rep: number; bound: Buffer }> {
  const s = await dial(port);
  const read = reader(s);
  s.write(Buffer.from([5, 1, auth ? 2 : 0]));
  const choice = await read(2);
  assert.equal(choice[1], auth ? 2 : 0, 'method chosen');
  if (auth) {
    s.write(Buffer.concat([Buffer.from([1, auth[0].length]), Buffer.from(auth[0]), Buffer.from([auth[1].length]), Buffer.from(auth[1])]));
    const r = await read(2);
    if (r[1] !== 0) return { s, read, rep: -1, bound: Buffer.alloc(0) };
  }
  s.write(Buffer.concat([Buffer.from([5, cmd, 0]), addr]));
  const head = await read(4);
  const rest = await read(head[3] === 4 ? 18 : 6);
  return { s, read, rep: head[1]!, bound: rest };
}

function domain(name: string, port: number): Buffer {
  return Buffer.concat([Buffer.from([3, name.length]), Buffer.from(name), Buffer.from([port >> 8, port & 0xff])]);
}

describe('SOCKS5 and HTTP proxies through the tunnel', () => {
  let pair: Pair;
  let socksPort: number;
  let socksAuthPort: number;
  let httpPort: number;
  const servers: { close(): unknown }[] = [];
  const logs: string[] = [];

  before(async () => {
    pair = await makePair({ fake: FAKE, aliceInterface: 'DNS = 10.0.0.2' });
    // bob: a TCP echo on 7, an HTTP server on 80, a UDP echo on 7, DNS for bob.test on 53.
    pair.bob.listen(7, undefined, { allowHalfOpen: true }).on('connection', (s) => s.pipe(s));
    const web = http.createServer((req, res) => res.end(`bob says hi to ${req.method} ${req.url}`));
    pair.bob.listen(80).on('connection', (s) => web.emit('connection', s));
    const echo = pair.bob.udp(7);
    echo.on('message', (m: Buffer, r: { address: string; port: number }) => echo.send(m, r.port, r.address));
    const dns = pair.bob.udp(53);
    const { decodeMessage, encodeResponse, TYPE_A } = await import('../../src/netstack/dns.ts');
    dns.on('message', (msg: Buffer, r: { address: string; port: number }) => {
      const q = decodeMessage(msg)!;
      const { name, type } = q.questions[0]!;
      const answers = name === 'bob.test' && type === TYPE_A ? [{ name, type, ttl: 5, value: '10.0.0.2' }]
        : name === 'evil.test' && type === TYPE_A ? [{ name, type, ttl: 5, value: '1.1.1.1' }] : [];
      dns.send(encodeResponse(q, answers), r.port, r.address);
    });
    const log = (l: string) => logs.push(l);
    const s1 = await startSocks5(pair.alice, '127.0.0.1', 0, { handshakeTimeoutMs: 300, log });
    const s2 = await startSocks5(pair.alice, '127.0.0.1', 0, { auth: { username: 'u', password: 'secret-pw' }, log });
    const h = await startHttpProxy(pair.alice, '127.0.0.1', 0, { handshakeTimeoutMs: 300, log });
    servers.push(s1, s2, h);
    socksPort = (s1.address() as AddressInfo).port;
    socksAuthPort = (s2.address() as AddressInfo).port;
    httpPort = (h.address() as AddressInfo).port;
  });
  after(async () => {
    for (const s of servers) s.close();
    await pair.close();
    assert.ok(!logs.join('\n').includes('secret-pw'), 'the password never appears in logs');
  });

  it('SOCKS5 CONNECT by IP and by name (resolved through the tunnel) relays both ways', async () => {
    for (const addr of [encodeAddress('10.0.0.2', 7), domain('bob.test', 7), encodeAddress('fd00::2', 7)]) {
      const { s, read, rep } = await socksRequest(socksPort, 1, addr);
      assert.equal(rep, 0, 'succeeded');
      const data = randomBytes(100_000);
      s.write(data);
      const back = await read(data.length);
      assert.ok(back.equals(data), 'echoed intact');
      s.destroy();
    }
  });

  it('SOCKS5 with username/password: right credentials pass, wrong ones are refused', async () => {
    const ok = await socksRequest(socksAuthPort, 1, encodeAddress('10.0.0.2', 7), ['u', 'secret-pw']);
    assert.equal(ok.rep, 0, 'authenticated CONNECT');
    ok.s.destroy();
    const bad = await socksRequest(socksAuthPort, 1, encodeAddress('10.0.0.2', 7), ['u', 'wrong']);
    assert.equal(bad.rep, -1, 'auth refused');
    bad.s.destroy();
    // No auth offered to a server that requires it: 0xFF.
    const s = await dial(socksAuthPort);
    const read = reader(s);
    s.write(Buffer.from([5, 1, 0]));
    assert.deepEqual([...(await read(2))], [5, 0xff], 'no acceptable method');
    s.destroy();
  });

  it('SOCKS5 fails closed: outside allowed IPs is 0x02, refused port 0x05, unknown name 0x04', async () => {
    const sent = pair.aliceBind.sent.length;
    assert.equal((await socksRequest(socksPort, 1, encodeAddress('1.1.1.1', 80))).rep, 0x02, 'outside allowed IPs');
    assert.equal((await socksRequest(socksPort, 1, domain('evil.test', 80))).rep, 0x02, 'name resolving outside allowed IPs');
    assert.equal((await socksRequest(socksPort, 1, encodeAddress('10.0.0.2', 9))).rep, 0x05, 'connection refused');
    assert.equal((await socksRequest(socksPort, 1, domain('nope.test', 80))).rep, 0x04, 'host not found');
    assert.equal((await socksRequest(socksPort, 2, encodeAddress('10.0.0.2', 80))).rep, 0x07, 'BIND not supported');
    assert.ok(pair.aliceBind.sent.length > sent, 'sanity: traffic went through the tunnel');
  });

  it('SOCKS5 UDP ASSOCIATE relays datagrams through the tunnel', async () => {
    const { s, rep, bound } = await socksRequest(socksPort, 3, encodeAddress('0.0.0.0', 0));
    assert.equal(rep, 0, 'associated');
    const relayPort = bound.readUInt16BE(4);
    const u = dgram.createSocket('udp4');
    await new Promise<void>((r) => u.bind(0, '127.0.0.1', () => r()));
    const got = once(u, 'message');
    u.send(Buffer.concat([Buffer.from([0, 0, 0]), encodeAddress('10.0.0.2', 7), Buffer.from('datagram!')]), relayPort, '127.0.0.1');
    const [msg] = (await got) as [Buffer];
    const decoded = decodeUdpRequest(msg);
    assert.ok(decoded, 'a SOCKS UDP header');
    assert.equal(decoded.target.host, '10.0.0.2', 'from bob');
    assert.equal(decoded.data.toString(), 'datagram!', 'payload echoed');
    u.close();
    s.destroy();
  });

  it('SOCKS5 UDP ASSOCIATE works for an IPv4 client of a dual-stack listener', async () => {
    const dual = await startSocks5(pair.alice, '::', 0);
    try {
      const { s, rep, bound } = await socksRequest((dual.address() as AddressInfo).port, 3, encodeAddress('0.0.0.0', 0));
      assert.equal(rep, 0, 'associated');
      assert.deepEqual([...bound.subarray(0, 4)], [127, 0, 0, 1], 'BND.ADDR is IPv4 127.0.0.1 (not ::ffff:127.0.0.1)');
      const u = dgram.createSocket('udp4');
      await new Promise<void>((r) => u.bind(0, '127.0.0.1', () => r()));
      const got = once(u, 'message');
      u.send(Buffer.concat([Buffer.from([0, 0, 0]), encodeAddress('10.0.0.2', 7), Buffer.from('dual')]), bound.readUInt16BE(4), '127.0.0.1');
      const [msg] = (await got) as [Buffer];
      assert.equal(decodeUdpRequest(msg)?.data.toString(), 'dual', 'echoed');
      u.close();
      s.destroy();
    } finally {
      dual.close();
    }
  });

  it('SOCKS5 survives garbage and half-written handshakes', async () => {
    for (let i = 0; i < 20; i++) {
      const s = await dial(socksPort);
      s.on('error', () => {});
      // Read whatever comes back: garbage that starts like a greeting gets a method choice
      // before the close, and an unread reply would hold 'end' (and so 'close') back for ever.
      s.resume();
      s.write(randomBytes(1 + (i * 37) % 700));
      s.end();
      await once(s, 'close');
    }
    // Half a request: refused (general failure) after the handshake timeout.
    const s = await dial(socksPort);
    const read = reader(s);
    s.write(Buffer.from([5, 1, 0]));
    await read(2);
    s.write(Buffer.from([5, 1, 0, 3, 20, 0x61]));
    const r = await read(10);
    assert.equal(r[1], 0x01, 'refused after the timeout');
    // And it still works.
    const ok = await socksRequest(socksPort, 1, encodeAddress('10.0.0.2', 7));
    assert.equal(ok.rep, 0, 'still serving');
    ok.s.destroy();
  });

  it('HTTP proxy: absolute-URI forwarding and CONNECT', async () => {
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: httpPort, path: 'http://bob.test/some/path?q=1', headers: { host: 'bob.test' } }, resolve).on('error', reject);
    });
    let body = '';
    for await (const c of res) body += c;
    assert.equal(res.statusCode, 200, 'forwarded');
    assert.equal(body, 'bob says hi to GET /some/path?q=1', 'origin-form path upstream');

    const s = await dial(httpPort);
    const read = reader(s);
    s.write('CONNECT 10.0.0.2:7 HTTP/1.1\r\nHost: 10.0.0.2:7\r\n\r\n');
    const head = (await read(39)).toString();
    assert.match(head, /^HTTP\/1\.1 200 Connection Established\r\n\r\n$/, 'tunnel established');
    s.write('through CONNECT');
    assert.equal((await read(15)).toString(), 'through CONNECT', 'echoed');
    s.destroy();
  });

  it('HTTP proxy with Basic auth: 407 without or with wrong credentials, served with them (IPv6 target too)', async () => {
    const authed = await startHttpProxy(pair.alice, '127.0.0.1', 0, { auth: { username: 'u', password: 'secret-pw' } });
    const port = (authed.address() as AddressInfo).port;
    const get = (auth?: string) => new Promise<{ status: number; body: string }>((resolve, reject) => {
      const headers: Record<string, string> = auth ? { 'proxy-authorization': `Basic ${Buffer.from(auth).toString('base64')}` } : {};
      http.get({ host: '127.0.0.1', port, path: 'http://[fd00::2]/six', headers }, async (res) => {
        let body = '';
        for await (const c of res) body += c;
        resolve({ status: res.statusCode ?? 0, body });
      }).on('error', reject);
    });
    try {
      assert.equal((await get()).status, 407, 'no credentials');
      assert.equal((await get('u:wrong')).status, 407, 'wrong password');
      const ok = await get('u:secret-pw');
      assert.equal(ok.status, 200, 'right credentials');
      assert.equal(ok.body, 'bob says hi to GET /six', 'forwarded to an IPv6 literal');
    } finally {
      authed.close();
    }
  });

  it('HTTP proxy fails closed with 502 and a reason, answers garbage with 400 and stalls with 408', async () => {
    const get = (path: string) => new Promise<{ status: number; body: string }>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: httpPort, path }, async (res) => {
        let body = '';
        for await (const c of res) body += c;
        resolve({ status: res.statusCode ?? 0, body });
      }).on('error', reject);
    });
    const outside = await get('http://1.1.1.1/');
    assert.equal(outside.status, 502, 'outside allowed IPs');
    assert.match(outside.body, /outside every peer's allowed IPs/, 'with the reason');
    assert.equal((await get('http://evil.test/')).status, 502, 'name resolving outside');
    assert.equal((await get('/relative')).status, 400, 'not an absolute URI');

    const s = await dial(httpPort);
    const read = reader(s);
    s.write('CONNECT 1.1.1.1:443 HTTP/1.1\r\n\r\n');
    assert.match((await read(200)).toString(), /^HTTP\/1\.1 502 /, 'CONNECT outside allowed IPs');
    s.destroy();

    const g = await dial(httpPort);
    const readG = reader(g);
    g.write(randomBytes(300));
    assert.match((await readG(12)).toString(), /^HTTP\/1\.1 400/, 'garbage gets 400');
    g.destroy();

    const stall = await dial(httpPort);
    const readS = reader(stall);
    stall.write('GET http://bob.test/ HTTP/1.1\r\nHost: bob');
    const answer = (await readS(12)).toString();
    assert.match(answer, /^HTTP\/1\.1 408/, 'stalled headers get 408');
    stall.destroy();
  });
});
