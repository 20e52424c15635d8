// Testing your own code on the device's in-memory twins, as wireweave tests its own: no root,
// no sockets, no real time. The code under test here is `tunnelFromConfig`, which brings a
// Device up from a wg-quick file's text; the test joins two such devices on a MemoryNetwork
// and checks what comes out of the far end of the tunnel.
//
//   node --test examples/device-memory.test.mjs      (or just node examples/device-memory.test.mjs)
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeBase64, generatePrivateKey, publicKey, systemRng } from 'wireweave/core';
import { defaultCrypto } from 'wireweave/crypto';
import { Device, ManualClock, MemoryBind, MemoryNetwork, MemoryTun, parseWgQuickConfig, toSetRequest } from 'wireweave/device';

// ---- the code under test (yours)

/** A Device on `tun`/`bind`/`clock`, configured from a wg-quick file's text, and up. */
async function tunnelFromConfig(text, { tun, bind, clock }) {
  const device = new Device({ tun, bind, clock });
  await device.applySet(await toSetRequest(parseWgQuickConfig(text, 'wg0.conf')));
  await device.up();
  return device;
}

// ---- the test

/** An IPv4/UDP packet (checksums left zero: the device routes by addresses, it does not check them). */
function udp4(src, dst, text) {
  const data = new TextEncoder().encode(text);
  const p = new Uint8Array(28 + data.length);
  p.set([0x45, 0, 0, p.length, 0, 0, 0, 0, 64, 17], 0); // version/IHL, length, TTL, protocol UDP
  p.set(src.split('.').map(Number), 12);
  p.set(dst.split('.').map(Number), 16);
  p.set([0x30, 0x39, 0x00, 0x35, 0, 8 + data.length], 20); // ports 12345 → 53, UDP length
  p.set(data, 28);
  return p;
}

test('a packet into alice\'s tunnel comes out of bob\'s, and only from addresses alice owns', async () => {
  const network = new MemoryNetwork();
  const clock = new ManualClock();
  const aliceKey = generatePrivateKey(systemRng);
  const bobKey = generatePrivateKey(systemRng);
  const pub = (key) => encodeBase64(publicKey(defaultCrypto, key));
  const aliceTun = new MemoryTun({ name: 'alice' });
  const bobTun = new MemoryTun({ name: 'bob' });

  const alice = await tunnelFromConfig(
    `[Interface]\nPrivateKey = ${encodeBase64(aliceKey)}\n\n[Peer]\nPublicKey = ${pub(bobKey)}\nAllowedIPs = 10.0.0.2/32\nEndpoint = 192.0.2.2:51820\n`,
    { tun: aliceTun, bind: new MemoryBind(network, '192.0.2.1'), clock });
  const bob = await tunnelFromConfig(
    `[Interface]\nPrivateKey = ${encodeBase64(bobKey)}\nListenPort = 51820\n\n[Peer]\nPublicKey = ${pub(aliceKey)}\nAllowedIPs = 10.0.0.1/32\n`,
    { tun: bobTun, bind: new MemoryBind(network, '192.0.2.2'), clock });

  const packet = udp4('10.0.0.1', '10.0.0.2', 'hello bob');
  aliceTun.inject(packet); // as if the OS routed it into alice's interface
  await clock.advance(100); // the handshake and the packet, in virtual time
  assert.deepEqual(bobTun.written, [packet]);

  // A source address alice is not allowed to use never comes out at bob's end.
  aliceTun.inject(udp4('10.0.0.99', '10.0.0.2', 'spoofed'));
  await clock.advance(100);
  assert.equal(bobTun.written.length, 1);
  assert.equal(bob.counters.sourceNotAllowed, 1);

  await alice.close();
  await bob.close();
});
