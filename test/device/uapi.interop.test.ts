/**
 * startUapiServer driven by the real `wg` tool (wireguard-tools), which only looks for sockets
 * in /var/run/wireguard: a server for a unique interface name (`wwu<pid>`) is started there
 * with a fake UapiTarget, and `wg show / show dump / set / setconf / showconf` are checked
 * against what the target answered and received. Needs root and `wg`: skipped without them,
 * except under CI (process.env.CI set), where either missing fails.
 */
import { after, before, describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { lstat, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { x25519 } from '@noble/curves/ed25519.js';
import { encodeBase64 } from '../../src/core/keys.ts';
import type { DeviceState, SetRequest, UapiTarget } from '../../src/device/config.ts';
import { Errno, UapiError } from '../../src/device/config.ts';
import { formatPrefix } from '../../src/device/allowedips.ts';
import { parseUapiPrefix } from '../../src/device/uapi.ts';
import type { UapiServer } from '../../src/device/uapi-server.ts';
import { DEFAULT_SOCKET_DIR, startUapiServer } from '../../src/device/uapi-server.ts';

const HAS_WG = spawnSync('wg', ['--version'], { stdio: 'ignore' }).error === undefined;
const IS_ROOT = process.getuid?.() === 0;
const IFNAME = `wwu${process.pid}`;

function needsWg(t: TestContext): boolean {
  if (!IS_ROOT) {
    if (process.env.CI) assert.fail('needs root (the socket goes to /var/run/wireguard); CI runs it as root');
    t.skip('needs root (the socket goes to /var/run/wireguard)');
    return false;
  }
  if (HAS_WG) return true;
  if (process.env.CI) assert.fail('`wg` (wireguard-tools) is not on PATH; CI requires it for this test');
  t.skip('`wg` (wireguard-tools) is not installed');
  return false;
}

/** Runs wg without blocking the event loop (the server answering it lives in this process). */
function wg(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('wg', args, { encoding: 'utf8', timeout: 20_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

async function wgOk(...args: string[]): Promise<string> {
  const r = await wg(...args);
  assert.equal(r.code, 0, `wg ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

const key = (byte: number): Uint8Array => new Uint8Array(32).fill(byte);
const b64 = encodeBase64;
const PRIVATE = Uint8Array.from({ length: 32 }, (_, i) => (i * 7 + 1) & 0xff);
PRIVATE[0]! &= 248;
PRIVATE[31] = (PRIVATE[31]! & 127) | 64;
const PEER_A = key(0xa1);
const PEER_B = key(0xb2);
const PSK = key(0xc3);

const STATE: DeviceState = {
  privateKey: PRIVATE,
  listenPort: 51820,
  fwmark: 0x1234,
  peers: [
    {
      publicKey: PEER_A,
      presharedKey: PSK,
      endpoint: '[fd00::1]:51820',
      lastHandshakeTimeSec: 1700000000,
      lastHandshakeTimeNsec: 5,
      rxBytes: 2048,
      txBytes: 1024,
      persistentKeepalive: 25,
      allowedIps: ['10.0.0.0/24', 'fd00::/64', '::ffff:1.2.3.4/128'].map(parseUapiPrefix),
      protocolVersion: 1,
    },
    {
      publicKey: PEER_B,
      presharedKey: null,
      endpoint: null,
      lastHandshakeTimeSec: 0,
      lastHandshakeTimeNsec: 0,
      rxBytes: 0,
      txBytes: 0,
      persistentKeepalive: 0,
      allowedIps: [],
      protocolVersion: 1,
    },
  ],
};

class FakeTarget implements UapiTarget {
  applied: SetRequest[] = [];
  failWith: unknown = null;
  state: DeviceState = STATE;
  getState(): DeviceState {
    return this.state;
  }
  async applySet(request: SetRequest): Promise<void> {
    if (this.failWith !== null) throw this.failWith;
    this.applied.push(request);
  }
}

describe('UAPI server against the real wg tool', () => {
  const target = new FakeTarget();
  let server: UapiServer | null = null;
  let files = '';

  before(async () => {
    if (!IS_ROOT || !HAS_WG) return;
    server = await startUapiServer(IFNAME, target);
    files = await mkdtemp(join(tmpdir(), 'wwuapi-wg-'));
  });

  after(async () => {
    if (server) {
      const path = server.path;
      await server.close();
      await assert.rejects(lstat(path), { code: 'ENOENT' });
    }
    if (files) await rm(files, { recursive: true, force: true });
  });

  it('serves /var/run/wireguard/<if>.sock, 0600, listed by `wg show interfaces`', async (t) => {
    if (!needsWg(t)) return;
    assert.equal(server!.path, join(DEFAULT_SOCKET_DIR, `${IFNAME}.sock`));
    assert.equal((await lstat(server!.path)).mode & 0o777, 0o600);
    assert.ok((await wgOk('show', 'interfaces')).split(/\s+/).includes(IFNAME));
  });

  it('wg show', async (t) => {
    if (!needsWg(t)) return;
    const out = await wgOk('show', IFNAME);
    assert.match(out, new RegExp(`^interface: ${IFNAME}\n`));
    assert.ok(out.includes(`public key: ${b64(x25519.getPublicKey(PRIVATE))}`), out);
    assert.ok(out.includes('listening port: 51820'));
    assert.ok(out.includes('fwmark: 0x1234'));
    assert.ok(out.includes(`peer: ${b64(PEER_A)}`));
    assert.ok(out.includes('preshared key: (hidden)'));
    assert.ok(out.includes('endpoint: [fd00::1]:51820'));
    assert.ok(out.includes('allowed ips: 10.0.0.0/24, fd00::/64, ::ffff:1.2.3.4/128'));
    assert.ok(out.includes('transfer: 2.00 KiB received, 1.00 KiB sent'));
    assert.ok(out.includes('persistent keepalive: every 25 seconds'));
    assert.ok(out.includes(`peer: ${b64(PEER_B)}`));
  });

  it('wg show dump', async (t) => {
    if (!needsWg(t)) return;
    const out = await wgOk('show', IFNAME, 'dump');
    assert.equal(out, [
      [b64(PRIVATE), b64(x25519.getPublicKey(PRIVATE)), '51820', '0x1234'].join('\t'),
      [b64(PEER_A), b64(PSK), '[fd00::1]:51820', '10.0.0.0/24,fd00::/64,::ffff:1.2.3.4/128', '1700000000', '2048', '1024', '25'].join('\t'),
      [b64(PEER_B), '(none)', '(none)', '(none)', '0', '0', '0', 'off'].join('\t'),
      '',
    ].join('\n'));
  });

  it('wg showconf', async (t) => {
    if (!needsWg(t)) return;
    const out = await wgOk('showconf', IFNAME);
    assert.equal(out, [
      '[Interface]',
      'ListenPort = 51820',
      'FwMark = 0x1234',
      `PrivateKey = ${b64(PRIVATE)}`,
      '',
      '[Peer]',
      `PublicKey = ${b64(PEER_A)}`,
      `PresharedKey = ${b64(PSK)}`,
      'AllowedIPs = 10.0.0.0/24, fd00::/64, ::ffff:1.2.3.4/128',
      'Endpoint = [fd00::1]:51820',
      'PersistentKeepalive = 25',
      '',
      '[Peer]',
      `PublicKey = ${b64(PEER_B)}`,
      '',
    ].join('\n'));
  });

  it('wg set: device keys, a peer with everything, a removal', async (t) => {
    if (!needsWg(t)) return;
    const pskFile = join(files, 'psk');
    const keyFile = join(files, 'key');
    await writeFile(pskFile, `${b64(PSK)}\n`, { mode: 0o600 });
    await writeFile(keyFile, `${b64(PRIVATE)}\n`, { mode: 0o600 });
    target.applied = [];
    await wgOk('set', IFNAME, 'listen-port', '0', 'fwmark', '0x10', 'private-key', keyFile,
      'peer', b64(PEER_A), 'preshared-key', pskFile, 'endpoint', '192.0.2.7:4500', 'persistent-keepalive', '7',
      'allowed-ips', '10.9.0.0/16,fd09::1/48',
      'peer', b64(PEER_B), 'remove');
    assert.equal(target.applied.length, 1);
    const req = target.applied[0]!;
    assert.deepEqual(req.privateKey, PRIVATE);
    assert.equal(req.listenPort, 0);
    assert.equal(req.fwmark, 16);
    assert.equal(req.replacePeers, false);
    assert.equal(req.peers.length, 2);
    const [a, b] = req.peers;
    assert.deepEqual(a!.publicKey, PEER_A);
    assert.deepEqual(a!.presharedKey, PSK);
    assert.deepEqual(a!.endpoint, { address: '192.0.2.7', port: 4500 });
    assert.equal(a!.persistentKeepalive, 7);
    assert.equal(a!.replaceAllowedIps, true);
    assert.deepEqual(a!.allowedIps.map((e) => `${e.op} ${formatPrefix(e.prefix)}`), ['add 10.9.0.0/16', 'add fd09::/48']);
    assert.equal(a!.remove, false);
    assert.deepEqual(b!.publicKey, PEER_B);
    assert.equal(b!.remove, true);
  });

  it('wg set: an IPv6 endpoint with a scope', async (t) => {
    if (!needsWg(t)) return;
    target.applied = [];
    await wgOk('set', IFNAME, 'peer', b64(PEER_A), 'endpoint', '[fe80::1%lo]:51820');
    assert.deepEqual(target.applied[0]!.peers[0]!.endpoint, { address: 'fe80::1%lo', port: 51820 });
  });

  it('wg setconf', async (t) => {
    if (!needsWg(t)) return;
    const conf = join(files, 'wg.conf');
    await writeFile(conf, [
      '[Interface]',
      `PrivateKey = ${b64(PRIVATE)}`,
      'ListenPort = 40000',
      'FwMark = 51',
      '',
      '[Peer]',
      `PublicKey = ${b64(PEER_A)}`,
      `PresharedKey = ${b64(PSK)}`,
      'AllowedIPs = 10.0.0.2/32, fd00::2/128',
      'Endpoint = 198.51.100.1:51820',
      'PersistentKeepalive = 15',
      '',
      '[Peer]',
      `PublicKey = ${b64(PEER_B)}`,
      'AllowedIPs = 0.0.0.0/0',
      '',
    ].join('\n'), { mode: 0o600 });
    target.applied = [];
    await wgOk('setconf', IFNAME, conf);
    assert.equal(target.applied.length, 1);
    const req = target.applied[0]!;
    assert.equal(req.replacePeers, true);
    assert.deepEqual(req.privateKey, PRIVATE);
    assert.equal(req.listenPort, 40000);
    assert.equal(req.fwmark, 51);
    assert.equal(req.peers.length, 2);
    assert.deepEqual(req.peers[0]!.presharedKey, PSK);
    assert.deepEqual(req.peers[0]!.endpoint, { address: '198.51.100.1', port: 51820 });
    assert.equal(req.peers[0]!.persistentKeepalive, 15);
    assert.equal(req.peers[0]!.replaceAllowedIps, true);
    assert.deepEqual(req.peers[0]!.allowedIps.map((e) => formatPrefix(e.prefix)), ['10.0.0.2/32', 'fd00::2/128']);
    // Nothing is sent for what the file leaves out (replace_peers starts the peer afresh).
    assert.equal(req.peers[1]!.presharedKey, undefined);
    assert.equal(req.peers[1]!.persistentKeepalive, undefined);
    assert.equal(req.peers[1]!.endpoint, undefined);
    assert.deepEqual(req.peers[1]!.allowedIps.map((e) => formatPrefix(e.prefix)), ['0.0.0.0/0']);
  });

  it('wg setconf with 1000 peers × 10 allowed IPs', async (t) => {
    if (!needsWg(t)) return;
    const lines = ['[Interface]', `PrivateKey = ${b64(PRIVATE)}`, 'ListenPort = 51820', ''];
    for (let i = 0; i < 1000; i++) {
      const pk = new Uint8Array(32);
      new DataView(pk.buffer).setUint32(0, i + 1);
      const ips = Array.from({ length: 10 }, (_, j) => (j % 2 === 0
        ? `10.${i >> 8}.${i & 255}.${j}/32`
        : `fd00:1234:5678:9abc:def0:${i.toString(16)}:${j.toString(16)}:ffff/128`));
      lines.push('[Peer]', `PublicKey = ${b64(pk)}`, `PresharedKey = ${b64(PSK)}`, `AllowedIPs = ${ips.join(', ')}`,
        `Endpoint = [2001:db8::${i.toString(16)}]:51820`, 'PersistentKeepalive = 25', '');
    }
    const conf = join(files, 'big.conf');
    await writeFile(conf, lines.join('\n'), { mode: 0o600 });
    target.applied = [];
    const t0 = performance.now();
    await wgOk('setconf', IFNAME, conf);
    const ms = performance.now() - t0;
    const req = target.applied[0]!;
    assert.equal(req.peers.length, 1000);
    assert.ok(req.peers.every((p) => p.allowedIps.length === 10));
    assert.ok(ms < 2000, `took ${ms.toFixed(0)} ms`);
  });

  it('a failing applySet makes wg fail with that errno', async (t) => {
    if (!needsWg(t)) return;
    target.failWith = new UapiError(Errno.EADDRINUSE, 'port taken');
    try {
      const r = await wg('set', IFNAME, 'listen-port', '1');
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Address already in use/);
    } finally {
      target.failWith = null;
    }
  });

  it('a second daemon for the same interface is refused', async (t) => {
    if (!needsWg(t)) return;
    await assert.rejects(startUapiServer(IFNAME, new FakeTarget()), { code: 'EADDRINUSE' });
    assert.equal((await wg('show', IFNAME)).code, 0);
  });
});
