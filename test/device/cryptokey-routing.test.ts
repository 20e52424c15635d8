/**
 * The device's data path around cryptokey routing (onTunPacket and deliver in device.ts), on
 * the in-memory twins: which TUN packets are routable at all, which decrypted packets reach the
 * TUN, and the counters that say why one did not. Written against the survivors of
 * `MUTATE_TARGET=routing npm run mutate` (docs/mutation.md).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Device } from '../../src/device/device.ts';
import { MemoryTun } from '../../src/device/tun-memory.ts';
import { MemoryBind, MemoryNetwork } from '../../src/device/bind-memory.ts';
import { ManualClock } from '../../src/device/clock.ts';
import { encodeHex, generatePrivateKey } from '../../src/core/keys.ts';
import { seededRng } from '../../src/core/rng.ts';
import { nodeCrypto } from '../../src/crypto/node.ts';
import { icmpEcho4, parseIPv4, parseIPv6 } from '../support/ip.ts';

interface Host { device: Device; tun: MemoryTun; pub: string }

async function host(net: MemoryNetwork, clock: ManualClock, address: string, seed: number): Promise<Host> {
  const rng = seededRng(seed);
  const key = generatePrivateKey(rng);
  const tun = new MemoryTun({ name: `wwr${seed}`, mtu: 1420 });
  // No foreign-datagram handler: the device must cope without one.
  const device = new Device({ tun, bind: new MemoryBind(net, address), clock, rng });
  await device.ipcSet(`private_key=${encodeHex(key)}\nlisten_port=51820\n`);
  await device.up();
  return { device, tun, pub: encodeHex(nodeCrypto.x25519PrivateKey(key).publicKey) };
}

/** a (10.9.0.1, fd09::1) and b (10.9.0.2, fd09::2), with a session up after one ping a → b. */
async function connected() {
  const net = new MemoryNetwork();
  const clock = new ManualClock();
  const a = await host(net, clock, '192.0.2.1', 11);
  const b = await host(net, clock, '192.0.2.2', 12);
  await a.device.ipcSet(`public_key=${b.pub}\nendpoint=192.0.2.2:51820\nallowed_ip=10.9.0.2/32\nallowed_ip=fd09::2/128\n`);
  await b.device.ipcSet(`public_key=${a.pub}\nallowed_ip=10.9.0.1/32\nallowed_ip=fd09::1/128\n`);
  a.tun.inject(icmpEcho4('10.9.0.1', '10.9.0.2', 1, 1, new Uint8Array(4)));
  await clock.advance(10);
  assert.equal(b.tun.written.length, 1, 'session up');
  return { net, clock, a, b };
}

/** An IPv4 header only (protocol 253, experimental), with `total` in its length field. */
function ipv4Header(src: string, dst: string, total = 20): Uint8Array {
  const p = new Uint8Array(20);
  p[0] = 0x45;
  p[2] = total >> 8; p[3] = total & 0xff;
  p[8] = 64; p[9] = 253;
  p.set(parseIPv4(src), 12);
  p.set(parseIPv4(dst), 16);
  return p;
}

/** An IPv6 header only (next header 59: no next header). */
function ipv6Header(src: string, dst: string): Uint8Array {
  const p = new Uint8Array(40);
  p[0] = 0x60;
  p[6] = 59; p[7] = 64;
  p.set(parseIPv6(src), 8);
  p.set(parseIPv6(dst), 24);
  return p;
}

describe('cryptokey routing in the device data path', () => {
  it('carries the shortest valid packets and ones needing no padding, and counts them', async () => {
    const { clock, a, b } = await connected();
    const packets = [
      ipv4Header('10.9.0.1', '10.9.0.2'), // 20 bytes: exactly the IPv4 minimum
      ipv6Header('fd09::1', 'fd09::2'), // 40 bytes: exactly the IPv6 minimum
      icmpEcho4('10.9.0.1', '10.9.0.2', 2, 1, new Uint8Array(20)), // 48 bytes: a multiple of 16
    ];
    for (const p of packets) a.tun.inject(p);
    await clock.advance(10);
    assert.deepEqual(b.tun.written.slice(1), packets);
    assert.equal(a.device.counters.tunPacketsIn, 4);
    assert.equal(b.device.counters.tunPacketsOut, 4);
    assert.equal(a.device.counters.invalidTunPacket, 0);
    assert.equal(b.device.counters.invalidDecrypted, 0);
  });

  it('refuses TUN packets shorter than their version\'s header, or of no IP version, before routing', async () => {
    const { clock, a, b } = await connected();
    const short4 = ipv4Header('10.9.0.1', '10.9.0.2').subarray(0, 19);
    const short6 = ipv6Header('fd09::1', 'fd09::2').subarray(0, 39);
    const v5 = ipv6Header('fd09::1', 'fd09::2');
    v5[0] = 0x50;
    for (const p of [short4, short6, v5, new Uint8Array(0)]) a.tun.inject(p);
    await clock.advance(10);
    assert.equal(a.device.counters.invalidTunPacket, 4);
    assert.equal(a.device.counters.noRoute, 0, 'none of them was looked up');
    assert.equal(b.tun.written.length, 1, 'only the first ping');
  });

  it('drops a decrypted packet whose IP header claims more bytes than arrived', async () => {
    const { clock, a, b } = await connected();
    // b's TUN side does not check the length field; a checks it after decryption.
    b.tun.inject(ipv4Header('10.9.0.2', '10.9.0.1', 100));
    await clock.advance(10);
    assert.equal(a.tun.written.length, 0);
    assert.equal(a.device.counters.invalidDecrypted, 1);
    assert.equal(a.device.counters.tunPacketsOut, 0);
    // The session is fine: a well-formed packet goes through.
    b.tun.inject(ipv4Header('10.9.0.2', '10.9.0.1'));
    await clock.advance(10);
    assert.equal(a.tun.written.length, 1);
    assert.equal(a.device.counters.tunPacketsOut, 1);
  });

  it('counts a non-WireGuard datagram and carries on when no foreign handler is set', async () => {
    const { net, clock, a, b } = await connected();
    const other = new MemoryBind(net, '192.0.2.9');
    await other.open(0, () => {});
    other.send(new TextEncoder().encode('not wireguard'), other.endpointFor('192.0.2.1', 51820));
    await clock.advance(1);
    assert.equal(a.device.counters.foreignDatagrams, 1);
    a.tun.inject(icmpEcho4('10.9.0.1', '10.9.0.2', 3, 1, new Uint8Array(4)));
    await clock.advance(10);
    assert.equal(b.tun.written.length, 2);
  });
});
