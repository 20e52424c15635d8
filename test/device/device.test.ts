/**
 * The device on its in-memory twins: MemoryTun, MemoryBind on a MemoryNetwork, ManualClock.
 * Configured through UAPI text exactly as `wg` would send it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Device } from '../../src/device/device.ts';
import { MemoryTun } from '../../src/device/tun-memory.ts';
import { MemoryBind, MemoryNetwork } from '../../src/device/bind-memory.ts';
import { ManualClock } from '../../src/device/clock.ts';
import { UapiError } from '../../src/device/config.ts';
import { encodeHex, generatePrivateKey } from '../../src/core/keys.ts';
import { seededRng } from '../../src/core/rng.ts';
import { nodeCrypto } from '../../src/crypto/node.ts';
import { icmpEcho4, icmpEcho6, parseEcho } from '../support/ip.ts';
import { REKEY_AFTER_TIME } from '../../src/core/constants.ts';

interface Host { device: Device; tun: MemoryTun; bind: MemoryBind; key: Uint8Array; pub: string }

async function host(net: MemoryNetwork, clock: ManualClock, address: string, seed: number, extra: Partial<{ onForeign: (d: Uint8Array) => void }> = {}): Promise<Host> {
  const rng = seededRng(seed);
  const key = generatePrivateKey(rng); // clamped, as wireguard-go stores it
  const tun = new MemoryTun({ name: `wwm${seed}`, mtu: 1420 });
  const bind = new MemoryBind(net, address);
  const device = new Device({ tun, bind, clock, rng, onForeignDatagram: extra.onForeign ? (d) => extra.onForeign!(d) : undefined });
  await device.ipcSet(`private_key=${encodeHex(key)}\nlisten_port=51820\n`);
  await device.up();
  return { device, tun, bind, key, pub: encodeHex(nodeCrypto.x25519PrivateKey(key).publicKey) };
}

async function twoHosts() {
  const net = new MemoryNetwork();
  const clock = new ManualClock();
  const a = await host(net, clock, '192.0.2.1', 1);
  const b = await host(net, clock, '192.0.2.2', 2);
  await a.device.ipcSet(`public_key=${b.pub}\nendpoint=192.0.2.2:51820\nallowed_ip=10.9.0.2/32\nallowed_ip=fd09::2/128\n`);
  await b.device.ipcSet(`public_key=${a.pub}\nallowed_ip=10.9.0.1/32\nallowed_ip=fd09::1/128\n`);
  return { net, clock, a, b };
}

const payload = new TextEncoder().encode('through the tunnel');

describe('device on memory twins', () => {
  it('carries IPv4 and IPv6 packets both ways, trimming padding, and learns the endpoint', async () => {
    const { clock, a, b } = await twoHosts();
    const ping = icmpEcho4('10.9.0.1', '10.9.0.2', 1, 1, payload);
    a.tun.inject(ping);
    await clock.advance(10);
    assert.equal(b.tun.written.length, 1);
    assert.deepEqual(b.tun.written[0], ping, 'exact packet, padding removed');
    // b learnt a's address from the authenticated handshake (roaming) and can answer.
    const pong6 = icmpEcho6('fd09::2', 'fd09::1', 2, 1, payload, true);
    b.tun.inject(pong6);
    await clock.advance(10);
    assert.deepEqual(a.tun.written.at(-1), pong6);
    const state = b.device.getState();
    assert.equal(state.peers[0]!.endpoint, '192.0.2.1:51820');
    assert.ok(state.peers[0]!.lastHandshakeTimeSec > 1_600_000_000, 'handshake time');
    assert.ok(state.peers[0]!.rxBytes > 0 && state.peers[0]!.txBytes > 0, 'byte counters');
  });

  it('answers get=1 with the configured state and the counters, as wg reads it', async () => {
    const { clock, a, b } = await twoHosts();
    a.tun.inject(icmpEcho4('10.9.0.1', '10.9.0.2', 1, 1, payload));
    await clock.advance(10);
    const text = a.device.ipcGet();
    assert.match(text, new RegExp(`^private_key=${encodeHex(a.key)}\nlisten_port=51820\npublic_key=${b.pub}\n`));
    assert.match(text, /\nendpoint=192\.0\.2\.2:51820\n/);
    assert.match(text, /\nallowed_ip=10\.9\.0\.2\/32\nallowed_ip=fd09::2\/128\n/);
    assert.match(text, /\ntx_bytes=[1-9]\d*\nrx_bytes=[1-9]\d*\n/);
    assert.ok(text.endsWith('errno=0\n\n'), 'terminated like wireguard-go');
  });

  it('drops decrypted packets whose source the sending peer does not own', async () => {
    const { clock, a, b } = await twoHosts();
    a.tun.inject(icmpEcho4('10.9.0.1', '10.9.0.2', 1, 1, payload));
    await clock.advance(10);
    // b sends a packet claiming a source it is not allowed: a refuses to deliver it.
    await b.device.ipcSet(`public_key=${a.pub}\nallowed_ip=10.0.0.0/8\n`);
    b.tun.inject(icmpEcho4('10.66.0.7', '10.9.0.1', 3, 3, payload));
    await clock.advance(10);
    assert.equal(a.tun.written.length, 0);
    assert.equal(a.device.counters.sourceNotAllowed, 1);
    // Allowed IPs moving to another peer take effect at once.
    b.tun.inject(icmpEcho4('10.9.0.2', '10.9.0.1', 4, 4, payload));
    await clock.advance(10);
    assert.equal(a.tun.written.length, 1);
  });

  it('drops a packet from one peer that carries another peer\'s address', async () => {
    const { net, clock, a, b } = await twoHosts();
    const c = await host(net, clock, '192.0.2.3', 3);
    await a.device.ipcSet(`public_key=${c.pub}\nendpoint=192.0.2.3:51820\nallowed_ip=10.9.0.3/32\n`);
    await c.device.ipcSet(`public_key=${a.pub}\nendpoint=192.0.2.1:51820\nallowed_ip=10.9.0.0/24\n`);
    // c's own address gets through; then c claims b's address 10.9.0.2, which a knows as b's.
    c.tun.inject(icmpEcho4('10.9.0.3', '10.9.0.1', 5, 1, payload));
    await clock.advance(10);
    assert.equal(a.tun.written.length, 1);
    c.tun.inject(icmpEcho4('10.9.0.2', '10.9.0.1', 5, 2, payload));
    await clock.advance(10);
    assert.equal(a.tun.written.length, 1, 'not delivered');
    assert.equal(a.device.counters.sourceNotAllowed, 1);
    // b itself may still use it (once a's packet has told b where a is).
    a.tun.inject(icmpEcho4('10.9.0.1', '10.9.0.2', 6, 1, payload));
    await clock.advance(10);
    b.tun.inject(icmpEcho4('10.9.0.2', '10.9.0.1', 6, 1, payload, true));
    await clock.advance(10);
    assert.equal(a.tun.written.length, 2);
    assert.equal(a.device.counters.sourceNotAllowed, 1);
  });

  it('drops packets with no route and packets that are not IP', async () => {
    const { clock, a } = await twoHosts();
    a.tun.inject(icmpEcho4('10.9.0.1', '10.200.0.1', 1, 1, payload));
    a.tun.inject(new Uint8Array([0x12, 0x34]));
    await clock.advance(10);
    assert.equal(a.device.counters.noRoute, 1);
    assert.equal(a.device.counters.invalidTunPacket, 1);
  });

  it('follows a roaming peer to its new address', async () => {
    const { clock, a, b } = await twoHosts();
    a.tun.inject(icmpEcho4('10.9.0.1', '10.9.0.2', 1, 1, payload));
    await clock.advance(10);
    a.bind.moveTo('198.51.100.7');
    a.tun.inject(icmpEcho4('10.9.0.1', '10.9.0.2', 1, 2, payload));
    await clock.advance(10);
    assert.equal(b.device.getState().peers[0]!.endpoint, '198.51.100.7:51820');
    b.tun.inject(icmpEcho4('10.9.0.2', '10.9.0.1', 1, 2, payload, true));
    await clock.advance(10);
    assert.equal(parseEcho(a.tun.written.at(-1)!)!.seq, 2);
  });

  it('keeps traffic flowing across rekeys driven by its own timers', async () => {
    const { clock, a, b } = await twoHosts();
    let seq = 0;
    for (let t = 0; t < 2.5 * REKEY_AFTER_TIME; t += 1000) {
      a.tun.inject(icmpEcho4('10.9.0.1', '10.9.0.2', 7, seq++ & 0xffff, payload));
      await clock.advance(1000);
    }
    assert.equal(b.tun.written.length, seq);
    assert.ok(a.device.endpoint.counters.handshakesCompleted >= 3, 'rekeyed twice');
  });

  it('rejects a malformed set without changing anything', async () => {
    const { a, b } = await twoHosts();
    const before = a.device.ipcGet();
    await assert.rejects(a.device.ipcSet(`listen_port=51821\npublic_key=${b.pub}\nallowed_ip=10.1.2.3/40\n`), UapiError);
    await assert.rejects(a.device.ipcSet('bogus_key=1\n'), UapiError);
    await assert.rejects(a.device.ipcSet(`public_key=${b.pub.slice(2)}\n`), UapiError);
    assert.equal(a.device.ipcGet(), before);
  });

  it('answers EADDRINUSE and keeps its port when the new one is taken', async () => {
    const { net, clock, a } = await twoHosts();
    const squatter = new MemoryBind(net, '192.0.2.1');
    await squatter.open(40001, () => {});
    const before = a.device.ipcGet();
    await assert.rejects(a.device.ipcSet('listen_port=40001\n'), (e: UapiError) => e.errno === 98);
    assert.equal(a.device.ipcGet(), before);
    void clock;
  });

  it('changes nothing when the fwmark fails after a new listen port was bound (all or nothing)', async () => {
    // As after `--user` dropped root: SO_MARK needs CAP_NET_ADMIN. The bind records the mark
    // before the syscall fails, as bind-node and bind-linux do.
    class NoMarkBind extends MemoryBind {
      marks: number[] = [];
      recorded = 0;
      override setMark(mark: number): void {
        this.recorded = mark;
        this.marks.push(mark);
        if (mark !== 0) throw Object.assign(new Error('setsockopt(SO_MARK): EPERM'), { code: 'EPERM' });
      }
    }
    const net = new MemoryNetwork();
    const clock = new ManualClock();
    const bind = new NoMarkBind(net, '192.0.2.1');
    const device = new Device({ tun: new MemoryTun({ name: 'wwmark', mtu: 1420 }), bind, clock, rng: seededRng(9) });
    await device.ipcSet(`private_key=${encodeHex(generatePrivateKey(seededRng(9)))}\nlisten_port=51820\n`);
    // Not up yet: the port is only recorded, and a failing fwmark leaves it alone too.
    await assert.rejects(device.ipcSet('listen_port=6000\nfwmark=7\n'), UapiError);
    assert.equal(device.port, 51820);
    await device.up();
    const before = device.ipcGet();
    await assert.rejects(device.ipcSet('listen_port=5555\nfwmark=7\n'), (e: UapiError) => e.errno === 98 && /fwmark/.test(e.message));
    assert.equal(device.ipcGet(), before);
    assert.equal(device.port, 51820);
    assert.equal(bind.port, 51820, 'the old port is bound again');
    assert.equal(bind.recorded, 0, 'the bind holds the old mark again');
    // The freed port and the old one both work: 5555 can be taken by another, 51820 receives.
    await new MemoryBind(net, '192.0.2.1').open(5555, () => {});
    await assert.rejects(new MemoryBind(net, '192.0.2.1').open(51820, () => {}), { code: 'EADDRINUSE' });
    // Without the fwmark the same port change goes through.
    await device.ipcSet('listen_port=5556\n');
    assert.equal(device.port, 5556);
    assert.equal(bind.port, 5556);
    await device.close();
  });

  it('removes and re-adds peers, replaces peers, and ignores a peer with its own key', async () => {
    const { clock, a, b } = await twoHosts();
    await a.device.ipcSet(`public_key=${b.pub}\nremove=true\n`);
    assert.equal(a.device.getState().peers.length, 0);
    a.tun.inject(icmpEcho4('10.9.0.1', '10.9.0.2', 1, 1, payload));
    await clock.advance(10);
    assert.equal(a.device.counters.noRoute, 1);
    await a.device.ipcSet(`public_key=${b.pub}\nendpoint=192.0.2.2:51820\nallowed_ip=10.9.0.2/32\n`);
    await a.device.ipcSet(`public_key=${a.pub}\nallowed_ip=10.77.0.0/16\n`);
    assert.equal(a.device.getState().peers.length, 1);
    a.tun.inject(icmpEcho4('10.9.0.1', '10.9.0.2', 1, 2, payload));
    await clock.advance(10);
    assert.equal(b.tun.written.length, 1);
    await a.device.ipcSet(`replace_peers=true\n`);
    assert.equal(a.device.getState().peers.length, 0);
    // update_only does not create.
    await a.device.ipcSet(`public_key=${b.pub}\nupdate_only=true\nallowed_ip=10.9.0.2/32\n`);
    assert.equal(a.device.getState().peers.length, 0);
  });

  it('hands non-WireGuard datagrams on its port to a foreign handler', async () => {
    const net = new MemoryNetwork();
    const clock = new ManualClock();
    const seen: Uint8Array[] = [];
    const a = await host(net, clock, '192.0.2.1', 1, { onForeign: (d) => seen.push(d.slice()) });
    const other = new MemoryBind(net, '192.0.2.9');
    await other.open(0, () => {});
    other.send(new TextEncoder().encode('STUN?'), other.endpointFor('192.0.2.1', 51820));
    await clock.advance(1);
    assert.equal(new TextDecoder().decode(seen[0]), 'STUN?');
    assert.equal(a.device.counters.foreignDatagrams, 1);
  });

  it('closes when its TUN goes away', async () => {
    const { a } = await twoHosts();
    let reason = '';
    a.device.onClose((r) => { reason = r; });
    a.tun.simulateDelete();
    await new Promise((r) => setImmediate(r));
    assert.match(reason, /tun/);
  });

  it('sets and reads back 1000 peers with 10 allowed IPs each', async () => {
    const { a } = await twoHosts();
    const rng = seededRng(99);
    const lines: string[] = ['replace_peers=true'];
    const keys: string[] = [];
    for (let i = 0; i < 1000; i++) {
      const k = new Uint8Array(32);
      rng.fill(k);
      keys.push(encodeHex(k));
      lines.push(`public_key=${encodeHex(k)}`, `endpoint=203.0.113.${i % 250}:${1000 + i}`, 'replace_allowed_ips=true');
      for (let j = 0; j < 10; j++) lines.push(`allowed_ip=10.${i >> 8}.${i & 255}.${j * 16}/28`);
    }
    await a.device.ipcSet(lines.join('\n') + '\n');
    const state = a.device.getState();
    assert.equal(state.peers.length, 1000);
    assert.equal(state.peers.reduce((n, p) => n + p.allowedIps.length, 0), 10_000);
    const text = a.device.ipcGet();
    for (const k of keys) assert.ok(text.includes(`public_key=${k}\n`), 'listed');
  });
});
