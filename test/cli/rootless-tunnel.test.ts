/**
 * `wireweave proxy` / `forward` as a wireproxy or tsnet user runs them, in process over a memory
 * network: the handshake reported (and a dead peer named), -v logging handshakes as
 * wireguard-go's LOG_LEVEL=verbose does, --metrics, the control socket read by `wireweave show`
 * (the same socket protocol `wg show` reads), proxies and forwards in one process, and
 * --connect-timeout turning a dead peer into a quick SOCKS5 reply 6.
 */
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { forward } from '../../src/cli/forward.ts';
import { parseTunnelArgs, proxy } from '../../src/cli/proxy.ts';
import type { RunOptions } from '../../src/cli/proxy.ts';
import { show } from '../../src/cli/show.ts';
import { MemoryBind, MemoryNetwork } from '../../src/device/bind-memory.ts';
import { ManualClock } from '../../src/device/clock.ts';
import { netstack } from '../../src/netstack/api.ts';
import type { Netstack } from '../../src/netstack/api.ts';
import { encodeAddress } from '../../src/netstack/socks5.ts';
import { keyPair } from '../netstack/helpers.ts';

function sink(): { stream: Writable; text: () => string } {
  const chunks: string[] = [];
  return { stream: new Writable({ write(c: Buffer, _e, cb) { chunks.push(c.toString()); cb(); } }), text: () => chunks.join('') };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(cond(), `timed out waiting for ${what}`);
}

async function echo(port: number, text: string): Promise<string> {
  const s = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  let got = '';
  s.on('data', (d: Buffer) => { got += d.toString(); });
  await once(s, 'connect');
  s.end(text);
  await once(s, 'end');
  s.destroy();
  return got;
}

/** SOCKS5 CONNECT without auth; the reply code. */
async function socksConnect(port: number, host: string, dport: number): Promise<{ rep: number; s: net.Socket }> {
  const s = net.connect({ host: '127.0.0.1', port });
  await once(s, 'connect');
  let buf = Buffer.alloc(0);
  s.on('data', (c: Buffer) => { buf = Buffer.concat([buf, c]); });
  s.write(Buffer.from([5, 1, 0]));
  s.write(Buffer.concat([Buffer.from([5, 1, 0]), encodeAddress(host, dport)]));
  while (buf.length < 4 && !s.destroyed && !s.readableEnded) await new Promise((r) => setTimeout(r, 5));
  return { rep: buf[3]!, s };
}

describe('rootless tunnel commands', () => {
  let dir: string;
  let conf: string;
  let network: MemoryNetwork;
  let bob: Netstack;
  const alice = keyPair(), b = keyPair();
  const name = `wwt${process.pid % 100000}`;
  const runs: { stop: AbortController; done: Promise<number> }[] = [];

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ww-rootless-'));
    conf = path.join(dir, `${name}.conf`);
    fs.writeFileSync(conf, `[Interface]\nPrivateKey = ${alice.priv}\nAddress = 10.0.0.1/24\n\n[Peer]\nPublicKey = ${b.pub}\nAllowedIPs = 10.0.0.2/32\nEndpoint = 192.0.2.2:51820\n`, { mode: 0o600 });
    network = new MemoryNetwork();
    bob = await netstack(`[Interface]\nPrivateKey = ${b.priv}\nListenPort = 51820\nAddress = 10.0.0.2/24\n\n[Peer]\nPublicKey = ${alice.pub}\nAllowedIPs = 10.0.0.1/32\n`, { bind: new MemoryBind(network, '192.0.2.2') });
    bob.listen(7, undefined, { allowHalfOpen: true }).on('connection', (s) => s.pipe(s));
  });
  afterEach(async () => {
    for (const r of runs.splice(0)) { r.stop.abort(); assert.equal(await r.done, 0, 'exit status'); }
    network.filter = () => true;
  });
  after(async () => {
    await bob.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Runs `command` in process; resolves once it listens. */
  async function run(command: typeof proxy, args: string[], extra: Partial<RunOptions> = {}) {
    const err = sink();
    const stop = new AbortController();
    let info: Parameters<NonNullable<RunOptions['onReady']>>[0] | undefined;
    const done = command(args, { stdout: sink().stream, stderr: err.stream }, {
      signal: stop.signal,
      env: { XDG_RUNTIME_DIR: dir },
      systemSocketDir: path.join(dir, 'system'),
      ...extra,
      netstack: { bind: new MemoryBind(network, '192.0.2.1'), ...extra.netstack },
      onReady: (i) => { info = i; },
    });
    runs.push({ stop, done });
    await until(() => info !== undefined || err.text().includes(': proxy: ') || err.text().includes(': forward: '), 'the command to be ready');
    return { err, info: info!, done };
  }

  it('reports the handshake, not just "tunnel up"', async () => {
    const { err } = await run(proxy, [conf, '--socks5', '0', '--no-control']);
    await until(() => /handshake with peer/.test(err.text()), 'the handshake line');
    assert.match(err.text(), /tunnel started: 10\.0\.0\.1 via UDP port \d+, 1 peer; waiting for a handshake\n/);
    assert.ok(err.text().includes(`handshake with peer ${b.pub} (192.0.2.2:51820) completed`), err.text());
    assert.ok(!/DEBUG/.test(err.text()), 'no verbose lines by default');
  });

  it('names a peer that does not answer after 15 s, with what to check', async () => {
    network.filter = (_d, _from, to) => to.port !== 51820;
    const clock = new ManualClock();
    const { err } = await run(proxy, [conf, '--socks5', '0', '--no-control'], { netstack: { clock } });
    await clock.advance(15_000);
    assert.ok(err.text().includes(`no handshake with peer ${b.pub} (192.0.2.2:51820) after 15 s; check its Endpoint, its keys and that it lists our public key`), err.text());
    assert.ok(!err.text().includes('completed'), 'no handshake claimed');
  });

  it('-v logs handshakes and events as wireguard-go does at LOG_LEVEL=verbose', async () => {
    const { err } = await run(proxy, [conf, '--socks5', '0', '--no-control', '-v']);
    await until(() => /handshake completed/.test(err.text()), 'the verbose handshake line');
    assert.match(err.text(), new RegExp(`DEBUG: \\(${name}\\) \\S+ \\S+ peer\\(.+\\) sending handshake initiation`));
    assert.match(err.text(), new RegExp(`DEBUG: \\(${name}\\) \\S+ \\S+ peer\\(.+\\) handshake completed \\(initiator\\)`));
  });

  it('--metrics serves the device\'s Prometheus metrics', async () => {
    const { err } = await run(proxy, [conf, '--socks5', '0', '--no-control', '--metrics', '127.0.0.1:0']);
    const m = /metrics on (http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(err.text());
    assert.ok(m, err.text());
    await until(() => /handshake with peer/.test(err.text()), 'the handshake');
    const body = await (await fetch(m[1]!)).text();
    assert.match(body, new RegExp(`wireweave_up\\{interface="${name}"\\} 1`));
    assert.match(body, /wireweave_handshakes_completed_total\{[^}]*\} [1-9]/);
    assert.ok(body.includes(`public_key="${b.pub}"`), 'per-peer series');
  });

  it('--metrics with a bad address is a one-line error naming the flag', async () => {
    assert.throws(() => parseTunnelArgs('proxy', [conf, '--metrics', 'nope']), /--metrics: invalid metrics address "nope"/);
  });

  it('serves a control socket that `wireweave show NAME` reads (system dir as root when free)', async () => {
    const { info, err } = await run(proxy, [conf, '--socks5', '0'], { uid: 0 });
    assert.equal(info.control, path.join(dir, 'system', `${name}.sock`), err.text());
    await until(() => /handshake with peer/.test(err.text()), 'the handshake');
    const out = sink(), errOut = sink();
    assert.equal(await show([name], { stdout: out.stream, stderr: errOut.stream }, {}, path.join(dir, 'system')), 0, errOut.text());
    assert.match(out.text(), new RegExp(`^interface: ${name}\\n  public key: ${alice.pub.replace(/[+/]/g, '\\$&')}\\n  private key: \\(hidden\\)\\n  listening port: \\d+\\n\\npeer: ${b.pub.replace(/[+/]/g, '\\$&')}\\n  endpoint: 192\\.0\\.2\\.2:51820\\n  allowed ips: 10\\.0\\.0\\.2/32\\n  latest handshake: `));
    const dump = sink();
    assert.equal(await show([name, 'endpoints'], { stdout: dump.stream, stderr: errOut.stream }, {}, path.join(dir, 'system')), 0);
    assert.equal(dump.text(), `${b.pub}\t192.0.2.2:51820\n`);
  });

  it('falls back to $XDG_RUNTIME_DIR/wireweave when the name is taken, where `show` finds it', async () => {
    fs.mkdirSync(path.join(dir, 'system'), { recursive: true });
    const squatter = net.createServer().listen(path.join(dir, 'system', `${name}.sock`));
    await once(squatter, 'listening');
    try {
      const { info, err } = await run(proxy, [conf, '--socks5', '0'], { uid: process.getuid!() });
      assert.equal(info.control, path.join(dir, 'wireweave', `${name}.sock`), err.text());
      assert.equal(fs.statSync(path.join(dir, 'wireweave')).mode & 0o777, 0o700, 'a private directory');
      assert.equal(fs.statSync(info.control!).mode & 0o777, 0o600, 'a socket only its owner can use');
      const out = sink(), errOut = sink();
      // No socket of that name in the system directory we pass: show looks in the runtime directory.
      assert.equal(await show([name, 'peers'], { stdout: out.stream, stderr: errOut.stream }, { XDG_RUNTIME_DIR: dir }, path.join(dir, 'nowhere')), 0, errOut.text());
      assert.equal(out.text(), `${b.pub}\n`);
    } finally {
      squatter.close();
    }
  });

  it('runs proxies and forwards in one process', async () => {
    const { info, err } = await run(proxy, [conf, '--socks5', '0', '--http', '0', '--tcp', '0:10.0.0.2:7', '--no-control']);
    assert.deepEqual(Object.keys(info.listening).sort(), ['--tcp 0:10.0.0.2:7', 'http', 'socks5'].sort(), err.text());
    const tcpPort = Number(info.listening['--tcp 0:10.0.0.2:7']!.split(':').pop());
    assert.equal(await echo(tcpPort, 'forwarded'), 'forwarded');
    const socks = await socksConnect(Number(info.listening.socks5!.split(':').pop()), '10.0.0.2', 7);
    assert.equal(socks.rep, 0, 'SOCKS5 CONNECT succeeded in the same process');
    socks.s.destroy();
    // And `forward` takes the proxy flags as well: the same command.
    const f = await run(forward, [conf, '--tcp', '0:10.0.0.2:7', '--socks5', '0', '--no-control'], { netstack: { bind: new MemoryBind(network, '192.0.2.3') } });
    assert.ok(f.info.listening.socks5, f.err.text());
  });

  it('forward without a forward or proxy still says what is missing', () => {
    assert.throws(() => parseTunnelArgs('forward', [conf]), /nothing to forward/);
    assert.equal((parseTunnelArgs('proxy', [conf]) as { socks5?: unknown }).socks5 !== undefined, true, 'proxy defaults to SOCKS5');
  });

  it('--connect-timeout bounds a CONNECT to a dead peer: SOCKS5 reply 6', async () => {
    network.filter = (_d, _from, to) => to.port !== 51820;
    const { info } = await run(proxy, [conf, '--socks5', '0', '--no-control', '--connect-timeout', '200']);
    const { rep, s } = await socksConnect(Number(info.listening.socks5!.split(':').pop()), '10.0.0.2', 7);
    assert.equal(rep, 6, 'TTL expired: the connection timed out');
    s.destroy();
    assert.throws(() => parseTunnelArgs('proxy', [conf, '--connect-timeout', 'soon']), /--connect-timeout needs milliseconds/);
  });
});
