/**
 * Port forwards (src/netstack/forward.ts) and the `proxy` / `forward` commands
 * (src/cli/proxy.ts, src/cli/forward.ts): spec parsing, TCP and UDP local forwards, a reverse
 * forward, one-line errors for bad input, and a full command run from a config file.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { forward } from '../../src/cli/forward.ts';
import { proxy } from '../../src/cli/proxy.ts';
import { MemoryBind, MemoryNetwork } from '../../src/device/bind-memory.ts';
import { decodeMessage, encodeQuery, encodeResponse, TYPE_A } from '../../src/netstack/dns.ts';
import { forwardTcp, forwardUdp, parseForwardSpec, reverseTcp } from '../../src/netstack/forward.ts';
import type { StackFactory } from '../../src/netstack/api.ts';
import { FakeStack } from './fake-stack.ts';
import { keyPair, makePair } from './helpers.ts';
import type { Pair } from './helpers.ts';

const FAKE = process.env.WIREWEAVE_FAKE_STACK === '1';

function sink(): { stream: Writable; text: () => string } {
  const chunks: string[] = [];
  return { stream: new Writable({ write(c: Buffer, _e, cb) { chunks.push(c.toString()); cb(); } }), text: () => chunks.join('') };
}

async function roundTrip(port: number, data: Buffer): Promise<Buffer> {
  const s = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  await once(s, 'connect');
  s.end(data);
  await once(s, 'end');
  s.destroy();
  return Buffer.concat(chunks);
}

describe('forward specs', () => {
  it('parses ssh -L shapes and rejects malformed ones', () => {
    assert.deepEqual(parseForwardSpec('8080:10.0.0.2:80'), { bindHost: undefined, bindPort: 8080, host: '10.0.0.2', hostPort: 80 });
    assert.deepEqual(parseForwardSpec('0.0.0.0:8080:db.internal:5432'), { bindHost: '0.0.0.0', bindPort: 8080, host: 'db.internal', hostPort: 5432 });
    assert.deepEqual(parseForwardSpec('[::1]:53:[fd00::2]:53'), { bindHost: '::1', bindPort: 53, host: 'fd00::2', hostPort: 53 });
    for (const bad of ['', '80', '80:host', '80:host:0', '70000:h:1', 'a:b:c:d:e', ':80:h:1', '80::1', '[::1:80:h:1']) {
      assert.equal(parseForwardSpec(bad), null, `rejects ${JSON.stringify(bad)}`);
    }
  });
});

describe('forwards through the tunnel', () => {
  let pair: Pair;
  before(async () => {
    pair = await makePair({ fake: FAKE });
    pair.bob.listen(7, undefined, { allowHalfOpen: true }).on('connection', (s) => s.pipe(s));
    const dns = pair.bob.udp(53);
    dns.on('message', (msg: Buffer, r: { address: string; port: number }) => {
      const q = decodeMessage(msg);
      if (!q) return;
      dns.send(encodeResponse(q, [{ name: q.questions[0]!.name, type: TYPE_A, ttl: 1, value: '10.0.0.99' }]), r.port, r.address);
    });
  });
  after(async () => { await pair.close(); });

  it('TCP: a host port reaches a tunnel service', async () => {
    const f = await forwardTcp(pair.alice, { bindHost: '127.0.0.1', bindPort: 0, host: '10.0.0.2', hostPort: 7 });
    const port = Number(f.listening.split(':').pop());
    const data = randomBytes(300_000);
    assert.ok((await roundTrip(port, data)).equals(data), 'echoed through the forward');
    await f.close();
  });

  it('TCP: a forward to a refused or unroutable target closes the client', async () => {
    const logs: string[] = [];
    const f = await forwardTcp(pair.alice, { bindHost: '127.0.0.1', bindPort: 0, host: '10.0.0.2', hostPort: 9 }, (l) => logs.push(l));
    const port = Number(f.listening.split(':').pop());
    const s = net.connect({ host: '127.0.0.1', port });
    s.on('error', () => {});
    await once(s, 'close');
    assert.match(logs.join('\n'), /ECONNREFUSED/, 'logged why');
    await f.close();
    await assert.rejects(forwardUdp(pair.alice, { bindHost: '127.0.0.1', bindPort: 0, host: '8.8.8.8', hostPort: 53 }), /outside every peer's allowed IPs/);
  });

  it('UDP: DNS queries through a forwarded port', async () => {
    const f = await forwardUdp(pair.alice, { bindHost: '127.0.0.1', bindPort: 0, host: '10.0.0.2', hostPort: 53 });
    const port = Number(f.listening.split(':').pop());
    const u = dgram.createSocket('udp4');
    for (let i = 0; i < 5; i++) {
      const got = once(u, 'message');
      u.send(encodeQuery(1000 + i, `host${i}.test`, TYPE_A), port, '127.0.0.1');
      const [msg] = (await got) as [Buffer];
      const m = decodeMessage(msg);
      assert.equal(m?.id, 1000 + i, 'our query answered');
      assert.equal(m?.answers[0]?.value, '10.0.0.99', 'the answer');
    }
    u.close();
    await f.close();
  });

  it('reverse TCP: a tunnel port reaches a host service', async () => {
    const host = net.createServer({ allowHalfOpen: true }, (s) => s.pipe(s));
    await new Promise<void>((r) => host.listen(0, '127.0.0.1', () => r()));
    const hostPort = (host.address() as net.AddressInfo).port;
    const f = await reverseTcp(pair.alice, { bindHost: undefined, bindPort: 2222, host: '127.0.0.1', hostPort });
    const c = pair.bob.connect({ host: '10.0.0.1', port: 2222, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    c.on('data', (d: Buffer) => chunks.push(d));
    await once(c, 'connect');
    const data = randomBytes(200_000);
    c.end(data);
    await once(c, 'end');
    assert.ok(Buffer.concat(chunks).equals(data), 'echoed by the host service');
    await f.close();
    host.close();
  });
});

describe('proxy and forward commands', () => {
  let dir: string;
  before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ww-netstack-')); });
  after(() => { fs.rmSync(dir, { recursive: true, force: true }); });

  it('one-line errors for bad arguments and configs, never echoing secrets', async () => {
    const cases: [string[], RegExp][] = [
      [[], /missing CONFIG/],
      [['x.conf', '--socks5', 'nope'], /--socks5: not \[HOST:\]PORT/],
      [['x.conf', '--bogus'], /unknown option '--bogus'/],
      [['/nonexistent/wg0.conf'], /cannot read config \/nonexistent\/wg0\.conf: ENOENT/],
      [['x.conf', '--auth-file', '/nonexistent'], /cannot read --auth-file/],
    ];
    for (const [args, re] of cases) {
      const err = sink();
      const code = await proxy(args, { stdout: sink().stream, stderr: err.stream });
      assert.equal(code, 1, `exit 1 for ${args.join(' ')}`);
      assert.match(err.text(), re, 'the problem is named');
      assert.equal(err.text().trim().split('\n').length, 1, 'one line');
    }
    const secret = keyPair().priv;
    const bad = path.join(dir, 'bad.conf');
    fs.writeFileSync(bad, `[Interface]\nPrivateKey = ${secret}\nAddress = 10.0.0.1/24\nBogus = 1\n`);
    const err = sink();
    assert.equal(await forward([bad, '--tcp', '1:10.0.0.2:1'], { stdout: sink().stream, stderr: err.stream }), 1, 'bad config');
    assert.match(err.text(), /bad\.conf:4:/, 'file:line');
    assert.ok(!err.text().includes(secret), 'no key in the message');
    const err2 = sink();
    assert.equal(await forward(['x.conf', '--tcp', '80:h'], { stdout: sink().stream, stderr: err2.stream }), 1, 'bad spec');
    assert.match(err2.text(), /--tcp: not \[BIND:\]PORT:HOST:HOSTPORT/, 'names the flag');
  });

  it('`forward` runs from a config file until stopped', async () => {
    const network = new MemoryNetwork();
    const a = keyPair(), b = keyPair();
    const conf = path.join(dir, 'wg0.conf');
    fs.writeFileSync(conf, `[Interface]\nPrivateKey = ${a.priv}\nAddress = 10.0.0.1/24\n\n[Peer]\nPublicKey = ${b.pub}\nAllowedIPs = 10.0.0.0/24\nEndpoint = 192.0.2.2:51820\n`, { mode: 0o600 });
    const createStack: StackFactory | undefined = FAKE ? (c, io) => new FakeStack(c, io) : undefined;
    const { netstack } = await import('../../src/netstack/api.ts');
    const bob = await netstack(`[Interface]\nPrivateKey = ${b.priv}\nListenPort = 51820\nAddress = 10.0.0.2/24\n\n[Peer]\nPublicKey = ${a.pub}\nAllowedIPs = 10.0.0.1/32\n`, { bind: new MemoryBind(network, '192.0.2.2'), createStack });
    bob.listen(7, undefined, { allowHalfOpen: true }).on('connection', (s) => s.pipe(s));
    const stop = new AbortController();
    const err = sink();
    let listening: Record<string, string> = {};
    const ready = new Promise<void>((resolve) => {
      void forward([conf, '--tcp', '0:10.0.0.2:7'], { stdout: sink().stream, stderr: err.stream }, {
        signal: stop.signal,
        netstack: { bind: new MemoryBind(network, '192.0.2.1'), createStack },
        onReady: (info) => { listening = info.listening; resolve(); },
      }).then((code) => { assert.equal(code, 0, `exit code; stderr: ${err.text()}`); });
    });
    await ready;
    const port = Number(Object.values(listening)[0]!.split(':').pop());
    assert.ok((await roundTrip(port, Buffer.from('via the command'))).equals(Buffer.from('via the command')), 'forwarded');
    stop.abort();
    await bob.close();
    assert.match(err.text(), /tunnel started: 10\.0\.0\.1 via UDP port \d+, 1 peer; waiting for a handshake/, 'says the tunnel started');
    assert.match(err.text(), /TCP forward host 127\.0\.0\.1:\d+ → tunnel 10\.0\.0\.2:7/, 'says what it forwards');
    assert.ok(!err.text().includes(a.priv), 'no key printed');
  });
});
