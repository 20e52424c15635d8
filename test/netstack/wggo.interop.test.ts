/**
 * Rootless wireweave (netstack: userspace TCP/IP, node:dgram, no TUN) against a real
 * wireguard-go whose TUN lives in a namespace with the kernel's TCP/IP and small node servers
 * (test/support/wggo.ts). Our side runs in this test process on loopback UDP. Shows bulk TCP both
 * ways with hashes, many concurrent connections, fetch, SOCKS5 (CONNECT via curl, UDP ASSOCIATE)
 * and the HTTP proxy driven by curl, TCP/UDP/reverse forwards, DNS through the tunnel, pings both
 * ways, and transfers through a lossy, reordering UDP shim.
 *
 * Needs root, wireguard-go, wg, ip and curl; skipped with the reason when missing, except under
 * CI where that is a failure. WIREWEAVE_INTEROP_MB sets the bulk transfer size (default 200).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { encodeBase64, generatePrivateKey } from '../../src/core/keys.ts';
import { systemRng } from '../../src/core/rng.ts';
import { nodeCrypto } from '../../src/crypto/node.ts';
import { netstack } from '../../src/netstack/api.ts';
import type { Netstack } from '../../src/netstack/api.ts';
import { decodeMessage, encodeQuery, TYPE_A } from '../../src/netstack/dns.ts';
import { forwardTcp, forwardUdp, reverseTcp } from '../../src/netstack/forward.ts';
import { startHttpProxy } from '../../src/netstack/http-proxy.ts';
import { decodeUdpRequest, encodeAddress, startSocks5 } from '../../src/netstack/socks5.ts';
import { canRunWireguardGo, run, startWireguardGo, which, withTimeout } from '../support/wggo.ts';
import type { WgGo } from '../support/wggo.ts';

function prerequisites(): string | undefined {
  const c = canRunWireguardGo();
  const missing = c.ok ? [] : [c.reason];
  if (!which('curl')) missing.push('curl not found on PATH');
  return missing.length ? missing.join('; ') : undefined;
}
const missing = prerequisites();
if (process.env.CI && missing) throw new Error(`interop prerequisites missing in CI: ${missing}`);
const skip = missing ? `needs root, wireguard-go and curl: ${missing}` : false;

const MB = Number(process.env.WIREWEAVE_INTEROP_MB ?? 200);
const n = 10 + (process.pid % 200);
const k4 = `10.${n}.7.1`, ours4 = `10.${n}.7.2`, lossy4 = `10.${n}.7.3`;
const hex = (process.pid % 0xffff).toString(16);
const k6 = `fd79:${hex}::1`, ours6 = `fd79:${hex}::2`;

/** Servers run by the kernel's TCP/IP in the namespace (plain JS for `node -e`). */
const SERVERS = `
const net = require('net'), http = require('http'), dgram = require('dgram'), crypto = require('crypto');
const [a4] = process.argv.slice(1);
const gen = (seed) => crypto.createCipheriv('aes-128-ctr', crypto.createHash('sha256').update(seed).digest().subarray(0, 16), Buffer.alloc(16));
const zero = Buffer.alloc(65536);
const pumpTo = (s, g, total, done) => { let left = total; const pump = () => { while (left > 0) { const c = g.update(zero.subarray(0, Math.min(65536, left))); left -= c.length; if (!s.write(c)) { s.once('drain', pump); return; } } done(); }; pump(); };
// 5000: sink, answers "sha256 bytes" after the client's FIN
net.createServer({ allowHalfOpen: true }, (s) => { const h = crypto.createHash('sha256'); let n = 0; s.on('data', (d) => { h.update(d); n += d.length; }); s.on('end', () => s.end(h.digest('hex') + ' ' + n + '\\n')); s.on('error', () => {}); }).listen(5000);
// 5001: source, "N SEED\\n" in, N bytes of the seeded stream out
net.createServer((s) => { let buf = ''; const onData = (d) => { buf += d; const i = buf.indexOf('\\n'); if (i < 0) return; s.off('data', onData); const [count, seed] = buf.slice(0, i).split(' '); pumpTo(s, gen(seed), Number(count), () => s.end()); }; s.on('data', onData); s.on('error', () => {}); }).listen(5001);
// 5002: echo
net.createServer({ allowHalfOpen: true }, (s) => { s.pipe(s); s.on('error', () => {}); }).listen(5002);
// 8080: HTTP, /bytes/N = N bytes of the 'http' stream
http.createServer((req, res) => { const m = /^\\/bytes\\/(\\d+)$/.exec(req.url); if (!m) { res.end('hello from the kernel\\n'); return; } res.setHeader('content-length', m[1]); pumpTo(res, gen('http'), Number(m[1]), () => res.end()); }).listen(8080);
// 53/udp: A records for *.wg.test → a4; NXDOMAIN for anything else
const d = dgram.createSocket('udp4');
d.on('message', (q, r) => {
  let p = 12, labels = []; while (p < q.length && q[p] !== 0) { labels.push(q.subarray(p + 1, p + 1 + q[p]).toString()); p += q[p] + 1; }
  const name = labels.join('.').toLowerCase(), qtype = q.readUInt16BE(p + 1), question = q.subarray(12, p + 5);
  const known = name.endsWith('.wg.test'), answer = known && qtype === 1;
  const head = Buffer.from([q[0], q[1], 0x81, known ? 0x80 : 0x83, 0, 1, 0, answer ? 1 : 0, 0, 0, 0, 0]);
  const rr = answer ? Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, ...a4.split('.').map(Number)]) : Buffer.alloc(0);
  d.send(Buffer.concat([head, question, rr]), r.port, r.address);
});
d.bind(53, a4, () => console.log('ready'));
`;

function generator(seed: string): (bytes: number) => Buffer {
  const cipher = createCipheriv('aes-128-ctr', createHash('sha256').update(seed).digest().subarray(0, 16), Buffer.alloc(16));
  const zero = Buffer.alloc(65536);
  return (bytes) => cipher.update(zero.subarray(0, bytes));
}

function expectedHash(seed: string, total: number): string {
  const g = generator(seed);
  const h = createHash('sha256');
  for (let left = total; left > 0; left -= 65536) h.update(g(Math.min(65536, left)));
  return h.digest('hex');
}

function keyPair(): { priv: string; pub: string } {
  const k = generatePrivateKey(systemRng);
  return { priv: encodeBase64(k), pub: encodeBase64(nodeCrypto.x25519PrivateKey(k).publicKey) };
}

/** Download `bytes` from the namespace's source server; returns the SHA-256 and the rate. */
async function download(tunnel: Netstack, bytes: number, seed: string): Promise<{ sha256: string; bytes: number; mbPerS: number }> {
  const s = tunnel.connect({ host: k4, port: 5001 });
  await once(s, 'connect');
  const started = performance.now();
  const h = createHash('sha256');
  let got = 0;
  s.on('data', (c: Buffer) => { h.update(c); got += c.length; });
  s.write(`${bytes} ${seed}\n`);
  await once(s, 'end');
  s.destroy();
  const seconds = (performance.now() - started) / 1000;
  return { sha256: h.digest('hex'), bytes: got, mbPerS: got / 1e6 / seconds };
}

/** Upload `bytes` to the namespace's sink; returns what it hashed and the rate. */
async function upload(tunnel: Netstack, bytes: number, seed: string): Promise<{ sha256: string; bytes: number; mbPerS: number }> {
  const s = tunnel.connect({ host: k4, port: 5000, allowHalfOpen: true });
  await once(s, 'connect');
  const started = performance.now();
  let answer = '';
  s.on('data', (c: Buffer) => { answer += c.toString(); });
  const ended = once(s, 'end');
  const g = generator(seed);
  for (let left = bytes; left > 0;) {
    const chunk = g(Math.min(65536, left));
    left -= chunk.length;
    if (!s.write(chunk)) await once(s, 'drain');
  }
  s.end();
  await ended;
  s.destroy();
  const seconds = (performance.now() - started) / 1000;
  const [sha256, count] = answer.trim().split(' ');
  return { sha256: sha256 ?? '', bytes: Number(count), mbPerS: bytes / 1e6 / seconds };
}

/** A UDP relay between a netstack and wireguard-go that drops and reorders datagrams. */
class LossyShim {
  readonly socket = dgram.createSocket('udp4');
  loss = 0;
  reorder = 0;
  client: { port: number } | null = null;
  forwarded = 0;
  dropped = 0;
  delayed = 0;
  private readonly target: number;
  constructor(target: number) { this.target = target; }
  async start(): Promise<number> {
    this.socket.on('message', (m, r) => {
      const toServer = r.port !== this.target;
      if (toServer) this.client = { port: r.port };
      const port = toServer ? this.target : this.client?.port;
      if (port === undefined) return;
      if (Math.random() < this.loss) { this.dropped++; return; }
      this.forwarded++;
      if (Math.random() < this.reorder) {
        this.delayed++;
        setTimeout(() => this.socket.send(m, port, '127.0.0.1'), 1 + Math.random() * 8);
      } else this.socket.send(m, port, '127.0.0.1');
    });
    await new Promise<void>((r) => this.socket.bind(0, '127.0.0.1', () => r()));
    return (this.socket.address() as AddressInfo).port;
  }
  close(): void { this.socket.close(); }
}

describe('rootless wireweave ↔ wireguard-go and the kernel', { skip }, () => {
  let wg: WgGo;
  let servers: ChildProcess;
  let tunnel: Netstack;
  let lossy: Netstack;
  let shim: LossyShim;
  const report: string[] = [];
  const ours = keyPair(), lossyKeys = keyPair();
  let tmp: string;

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ww-netstack-interop-'));
    wg = await startWireguardGo({
      privateKey: keyPair().priv,
      peers: [
        { publicKey: ours.pub, allowedIPs: [`${ours4}/32`, `${ours6}/128`] },
        { publicKey: lossyKeys.pub, allowedIPs: [`${lossy4}/32`] },
      ],
      tunAddress4: `${k4}/24`,
      tunAddress6: `${k6}/64`,
    });
    servers = spawn('ip', ['netns', 'exec', wg.netns, process.execPath, '-e', SERVERS, k4], { stdio: ['ignore', 'pipe', 'pipe'] });
    let serverErr = '';
    servers.stderr!.on('data', (d: Buffer) => { serverErr += d.toString(); });
    await withTimeout(new Promise<void>((resolve, reject) => {
      servers.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('ready')) resolve(); });
      servers.on('exit', (code) => reject(new Error(`namespace servers exited (${code}): ${serverErr}`)));
    }), 15_000, 'namespace servers');
    const peerOf = (endpointPort: number, allowed: string) => `[Peer]\nPublicKey = ${wg.publicKey}\nAllowedIPs = ${allowed}\nEndpoint = 127.0.0.1:${endpointPort}\n`;
    tunnel = await netstack(`[Interface]\nPrivateKey = ${ours.priv}\nAddress = ${ours4}/24, ${ours6}/64\nDNS = ${k4}\n\n${peerOf(wg.listenPort, `${k4}/32, ${k6}/128`)}`);
    shim = new LossyShim(wg.listenPort);
    const shimPort = await shim.start();
    lossy = await netstack(`[Interface]\nPrivateKey = ${lossyKeys.priv}\nAddress = ${lossy4}/24\n\n${peerOf(shimPort, `${k4}/32`)}`);
  });

  after(async () => {
    await tunnel?.close();
    await lossy?.close();
    shim?.close();
    if (servers && servers.exitCode === null) {
      servers.kill('SIGTERM');
      await withTimeout(once(servers, 'exit'), 5000, 'namespace servers to exit').catch(() => servers.kill('SIGKILL'));
    }
    await wg?.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    if (report.length) process.stdout.write(`# netstack ↔ wireguard-go figures:\n${report.map((l) => `#   ${l}`).join('\n')}\n`);
  });

  it('pings both ways, IPv4 and IPv6', { timeout: 60_000 }, async () => {
    const p4 = await tunnel.ping(k4, { timeoutMs: 10_000 });
    assert.equal(p4.address, k4, 'IPv4 echo reply from the kernel');
    const p6 = await tunnel.ping(k6, { timeoutMs: 5000 });
    assert.equal(p6.address, k6, 'IPv6 echo reply from the kernel');
    const back4 = await wg.exec(['ping', '-c', '3', '-i', '0.2', '-W', '2', ours4], { timeoutMs: 15_000 });
    assert.match(back4.stdout, / 0% packet loss/, `kernel → netstack IPv4: ${back4.stdout}${back4.stderr}`);
    const back6 = await wg.exec(['ping', '-6', '-c', '3', '-i', '0.2', '-W', '2', ours6], { timeoutMs: 15_000 });
    assert.match(back6.stdout, / 0% packet loss/, `kernel → netstack IPv6: ${back6.stdout}${back6.stderr}`);
    report.push(`ping ${k4}: ${p4.time.toFixed(1)} ms (first, incl. handshake); kernel → us 3/3 v4 and v6`);
  });

  it(`downloads and uploads ${MB} MB over one connection each, hashes intact`, { timeout: 600_000 }, async () => {
    const bytes = MB * 1_000_000;
    const down = await download(tunnel, bytes, 'down');
    assert.equal(down.bytes, bytes, 'every byte downloaded');
    assert.equal(down.sha256, expectedHash('down', bytes), 'download hash');
    const up = await upload(tunnel, bytes, 'up');
    assert.equal(up.bytes, bytes, 'every byte uploaded');
    assert.equal(up.sha256, expectedHash('up', bytes), 'upload hash');
    report.push(`${MB} MB download ${down.mbPerS.toFixed(1)} MB/s, upload ${up.mbPerS.toFixed(1)} MB/s (one TCP connection each, hashes match)`);
  });

  it('carries 100 concurrent connections', { timeout: 120_000 }, async () => {
    const started = performance.now();
    const results = await Promise.all(Array.from({ length: 100 }, async (_, i) => {
      const data = randomBytes(32 * 1024 + i * 97);
      const s = tunnel.connect({ host: i % 2 ? k6 : k4, port: 5002, allowHalfOpen: true });
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => chunks.push(c));
      await once(s, 'connect');
      s.end(data);
      await once(s, 'end');
      s.destroy();
      return Buffer.concat(chunks).equals(data);
    }));
    assert.equal(results.filter(Boolean).length, 100, 'all 100 echoes intact');
    report.push(`100 concurrent echo connections (v4 and v6, ~3.7 MB) in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  });

  it('fetches over HTTP by address and by a name resolved through the tunnel DNS', { timeout: 60_000 }, async () => {
    const hello = await tunnel.fetch(`http://${k4}:8080/`);
    assert.equal(await hello.text(), 'hello from the kernel\n', 'by address');
    assert.deepEqual(await tunnel.resolve('web.wg.test', { family: 4 }), [k4], 'DNS through the tunnel');
    const r = await tunnel.fetch('http://web.wg.test:8080/bytes/3000000');
    const body = Buffer.from(await r.arrayBuffer());
    assert.equal(body.length, 3_000_000, 'length');
    assert.equal(createHash('sha256').update(body).digest('hex'), expectedHash('http', 3_000_000), 'hash');
    await assert.rejects(tunnel.fetch('http://93.184.215.14/'), (e: NodeJS.ErrnoException) => e.code === 'EHOSTUNREACH', 'outside allowed IPs');
  });

  it('serves curl through SOCKS5 (--socks5-hostname) and the HTTP proxy (-x, and CONNECT with -p)', { timeout: 120_000 }, async () => {
    const socks = await startSocks5(tunnel, '127.0.0.1', 0);
    const proxy = await startHttpProxy(tunnel, '127.0.0.1', 0);
    try {
      const sp = (socks.address() as AddressInfo).port, hp = (proxy.address() as AddressInfo).port;
      const want = expectedHash('http', 2_000_000);
      const url = 'http://web.wg.test:8080/bytes/2000000';
      for (const [what, args] of [
        ['SOCKS5', ['--socks5-hostname', `127.0.0.1:${sp}`]],
        ['HTTP proxy', ['-x', `http://127.0.0.1:${hp}`]],
        ['HTTP CONNECT', ['-p', '-x', `http://127.0.0.1:${hp}`]],
      ] as const) {
        const file = path.join(tmp, 'curl.out');
        const r = await run('curl', ['-sS', '--max-time', '60', ...args, '-o', file, url], { timeoutMs: 70_000 });
        assert.equal(r.code, 0, `${what}: curl failed: ${r.stderr}`);
        assert.equal(createHash('sha256').update(fs.readFileSync(file)).digest('hex'), want, `${what}: body hash`);
      }
      // Fail closed: curl gets a refusal, and nothing is fetched from outside.
      const s = await run('curl', ['-sS', '--max-time', '20', '--socks5-hostname', `127.0.0.1:${sp}`, 'http://1.1.1.1/'], { timeoutMs: 30_000 });
      assert.notEqual(s.code, 0, 'SOCKS5 refuses outside allowed IPs');
      assert.match(s.stderr, /not allowed|refused|connection/i, `SOCKS refusal: ${s.stderr}`);
      const h = await run('curl', ['-sS', '--max-time', '20', '-o', '/dev/null', '-w', '%{http_code}', '-x', `http://127.0.0.1:${hp}`, 'http://1.1.1.1/'], { timeoutMs: 30_000 });
      assert.equal(h.stdout, '502', 'HTTP proxy answers 502 outside allowed IPs');
    } finally {
      socks.close();
      proxy.close();
    }
  });

  it('relays DNS over SOCKS5 UDP ASSOCIATE to the kernel side', { timeout: 60_000 }, async () => {
    const socks = await startSocks5(tunnel, '127.0.0.1', 0);
    const control = net.connect({ host: '127.0.0.1', port: (socks.address() as AddressInfo).port });
    const u = dgram.createSocket('udp4');
    try {
      await once(control, 'connect');
      let buf = Buffer.alloc(0);
      control.on('data', (d: Buffer) => { buf = Buffer.concat([buf, d]); });
      control.write(Buffer.from([5, 1, 0]));
      control.write(Buffer.concat([Buffer.from([5, 3, 0]), encodeAddress('0.0.0.0', 0)]));
      const deadline = Date.now() + 10_000;
      while (buf.length < 2 + 10 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.equal(buf[3], 0, 'UDP ASSOCIATE granted');
      const relayPort = buf.readUInt16BE(2 + 8);
      await new Promise<void>((r) => u.bind(0, '127.0.0.1', () => r()));
      for (let i = 0; i < 5; i++) {
        const reply = once(u, 'message');
        u.send(Buffer.concat([Buffer.from([0, 0, 0]), encodeAddress(k4, 53), encodeQuery(7000 + i, `socks${i}.wg.test`, TYPE_A)]), relayPort, '127.0.0.1');
        const [msg] = (await withTimeout(reply, 5000, 'DNS answer through SOCKS5 UDP')) as [Buffer];
        const d = decodeUdpRequest(msg);
        assert.equal(d?.target.host, k4, 'from the kernel side DNS server');
        assert.equal(decodeMessage(d!.data)?.answers[0]?.value, k4, 'the A record');
      }
    } finally {
      u.close();
      control.destroy();
      socks.close();
    }
  });

  it('forwards TCP, reverse TCP and UDP (DNS queries)', { timeout: 60_000 }, async () => {
    const tcp = await forwardTcp(tunnel, { bindHost: '127.0.0.1', bindPort: 0, host: k4, hostPort: 8080 });
    const port = Number(tcp.listening.split(':').pop());
    const file = path.join(tmp, 'fwd.out');
    const r = await run('curl', ['-sS', '--max-time', '30', '-o', file, `http://127.0.0.1:${port}/bytes/1000000`], { timeoutMs: 40_000 });
    assert.equal(r.code, 0, `curl through the forward: ${r.stderr}`);
    assert.equal(createHash('sha256').update(fs.readFileSync(file)).digest('hex'), expectedHash('http', 1_000_000), 'forwarded body');
    await tcp.close();

    const local = http.createServer((req, res) => res.end(`reverse ok ${req.url}`));
    await new Promise<void>((resolve) => local.listen(0, '127.0.0.1', () => resolve()));
    const rev = await reverseTcp(tunnel, { bindHost: undefined, bindPort: 9000, host: '127.0.0.1', hostPort: (local.address() as AddressInfo).port });
    const fromKernel = await wg.exec(['curl', '-sS', '--max-time', '15', `http://${ours4}:9000/x`], { timeoutMs: 20_000 });
    assert.equal(fromKernel.stdout, 'reverse ok /x', `kernel → tunnel:9000 → host service: ${fromKernel.stderr}`);
    const fromKernel6 = await wg.exec(['curl', '-sS', '--max-time', '15', `http://[${ours6}]:9000/y`], { timeoutMs: 20_000 });
    assert.equal(fromKernel6.stdout, 'reverse ok /y', `over IPv6: ${fromKernel6.stderr}`);
    await rev.close();
    local.close();

    const udp = await forwardUdp(tunnel, { bindHost: '127.0.0.1', bindPort: 0, host: k4, hostPort: 53 });
    const u = dgram.createSocket('udp4');
    for (let i = 0; i < 10; i++) {
      const reply = once(u, 'message');
      u.send(encodeQuery(4000 + i, `host${i}.wg.test`, TYPE_A), Number(udp.listening.split(':').pop()), '127.0.0.1');
      const [msg] = (await withTimeout(reply, 5000, 'DNS answer through the UDP forward')) as [Buffer];
      const m = decodeMessage(msg);
      assert.equal(m?.id, 4000 + i, 'answer to our query');
      assert.equal(m?.answers[0]?.value, k4, 'the A record');
    }
    u.close();
    await udp.close();
  });

  for (const [loss, mb] of [[0.01, 6], [0.05, 2], [0.2, 0.25]] as const) {
    it(`transfers ${mb} MB each way with ${loss * 100}% loss and reordering, hashes intact`, { timeout: 240_000 }, async () => {
      shim.loss = 0;
      shim.reorder = 0;
      await lossy.ping(k4, { timeoutMs: 10_000 }); // handshake before the loss starts
      shim.loss = loss;
      shim.reorder = 0.05;
      const before = { dropped: shim.dropped, delayed: shim.delayed };
      const bytes = mb * 1_000_000;
      const down = await download(lossy, bytes, `lossy-down-${loss}`);
      assert.equal(down.sha256, expectedHash(`lossy-down-${loss}`, bytes), 'download hash');
      const up = await upload(lossy, bytes, `lossy-up-${loss}`);
      assert.equal(up.sha256, expectedHash(`lossy-up-${loss}`, bytes), 'upload hash');
      shim.loss = 0;
      report.push(`${loss * 100}% loss + 5% reordered: ${mb} MB down ${down.mbPerS.toFixed(2)} MB/s, up ${up.mbPerS.toFixed(2)} MB/s; shim dropped ${shim.dropped - before.dropped}, delayed ${shim.delayed - before.delayed}`);
    });
  }
});
