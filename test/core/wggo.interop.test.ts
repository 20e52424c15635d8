/**
 * The core against a real wireguard-go over loopback UDP. wireguard-go's TUN device lives in a
 * namespace of its own (test/support/wggo.ts), so the kernel there answers our pings; our side
 * is the bare core driven by test/support/udp-endpoint.ts, with no TUN at all.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { canRunWireguardGo, parseWgDump, startWireguardGo } from '../support/wggo.ts';
import type { WgGo } from '../support/wggo.ts';
import { UdpEndpoint } from '../support/udp-endpoint.ts';
import { icmpEcho4, icmpEcho6, parseEcho, parseIPv4 } from '../support/ip.ts';
import { decodeBase64, encodeBase64, generatePresharedKey, generatePrivateKey } from '../../src/core/keys.ts';
import { systemRng } from '../../src/core/rng.ts';
import { nodeCrypto } from '../../src/crypto/node.ts';
import { REKEY_TIMEOUT } from '../../src/core/constants.ts';

const can = canRunWireguardGo();
// In CI the tools are installed by .ci/run: missing tools there are a failure, not a skip.
if (process.env.CI && !can.ok) throw new Error(`interop prerequisites missing in CI: ${can.reason}`);
const skip = can.ok ? false : `needs root and wireguard-go: ${(can as { reason: string }).reason}`;

const net = 10 + (process.pid % 200);
const ours4 = `10.${net}.0.2`, theirs4 = `10.${net}.0.1`;
const ours6 = `fd00:${(process.pid % 0xffff).toString(16)}::2`, theirs6 = `fd00:${(process.pid % 0xffff).toString(16)}::1`;

describe('core ↔ wireguard-go over UDP', { skip }, () => {
  let wg: WgGo;
  let us: UdpEndpoint;
  let peer: number;
  const ourKey = generatePrivateKey(systemRng);
  const psk = generatePresharedKey(systemRng);

  before(async () => {
    us = new UdpEndpoint({ privateKey: ourKey });
    const port = await us.bind();
    wg = await startWireguardGo({
      privateKey: encodeBase64(generatePrivateKey(systemRng)),
      peers: [{
        publicKey: encodeBase64(nodeCrypto.x25519PrivateKey(ourKey).publicKey),
        presharedKey: encodeBase64(psk),
        endpoint: `127.0.0.1:${port}`,
        allowedIPs: [`${ours4}/32`, `${ours6}/128`],
      }],
      tunAddress4: `${theirs4}/24`,
      tunAddress6: `${theirs6}/64`,
    });
    peer = us.addPeer(decodeBase64(wg.publicKey), { address: '127.0.0.1', port: wg.listenPort }, { presharedKey: psk });
    // Answer pings from the namespace: we are a host at ours4/ours6 behind the tunnel.
    us.onDeliver = (from, data) => {
      const e = parseEcho(data);
      if (!e || e.reply) return;
      const src = e.version === 4 ? ours4 : ours6, dst = e.version === 4 ? theirs4 : theirs6;
      const reply = (e.version === 4 ? icmpEcho4 : icmpEcho6)(src, dst, e.id, e.seq, e.payload, true);
      us.send(from, reply);
    };
  });

  after(async () => {
    us?.close();
    await wg?.stop();
  });

  it('handshakes as initiator and gets ICMP echo replies from the kernel behind wireguard-go (IPv4 and IPv6)', async () => {
    const payload = new TextEncoder().encode('wireweave interop ping');
    us.send(peer, icmpEcho4(ours4, theirs4, 0x77, 1, payload));
    const reply4 = parseEcho(await us.waitFor((d) => parseEcho(d)?.reply === true && parseEcho(d)?.version === 4, 5000, 'IPv4 echo reply'))!;
    assert.equal(reply4.id, 0x77);
    assert.equal(reply4.seq, 1);
    assert.deepEqual(reply4.src, parseIPv4(theirs4));
    assert.deepEqual(reply4.payload, payload);
    assert.ok(reply4.checksumOk, 'kernel reply checksums');
    assert.ok(us.events.some((e) => e.type === 'handshakeCompleted' && e.initiator), 'we completed as initiator');

    us.send(peer, icmpEcho6(ours6, theirs6, 0x78, 2, payload));
    const reply6 = parseEcho(await us.waitFor((d) => parseEcho(d)?.reply === true && parseEcho(d)?.version === 6, 5000, 'IPv6 echo reply'))!;
    assert.equal(reply6.seq, 2);
    assert.deepEqual(reply6.payload, payload);
    assert.ok(reply6.checksumOk, 'ICMPv6 checksum');

    // Many packets of many sizes, all answered (padding, counters and the replay window agree).
    // Paced in groups of 10 so socket buffers, not the protocol, are never the limit.
    for (let i = 0; i < 200; i++) {
      us.send(peer, icmpEcho4(ours4, theirs4, 0x79, i, new Uint8Array(1000 + (i % 37))));
      if (i % 10 === 9) await new Promise((r) => setTimeout(r, 5));
    }
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline && us.delivered.filter((d) => parseEcho(d.data)?.id === 0x79).length < 200) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(us.delivered.filter((d) => parseEcho(d.data)?.id === 0x79).length, 200);

    const dump = parseWgDump(await wg.show());
    assert.ok(dump.peers[0]!.latestHandshake > 0, 'wg show reports the handshake');
    assert.ok(dump.peers[0]!.transferRx > 200 * 1000, `wg rx ${dump.peers[0]!.transferRx}`);
    assert.equal(dump.peers[0]!.endpoint, `127.0.0.1:${us.socket.address().port}`);
  });

  it('answers as responder: the namespace pings us through wireguard-go after a fresh handshake', async () => {
    // Make wireguard-go forget its session so it must initiate towards us.
    await wg.wgSet(['peer', encodeBase64(nodeCrypto.x25519PrivateKey(ourKey).publicKey), 'remove']);
    await wg.wgSet(['peer', encodeBase64(nodeCrypto.x25519PrivateKey(ourKey).publicKey),
      'allowed-ips', `${ours4}/32,${ours6}/128`, 'endpoint', `127.0.0.1:${us.socket.address().port}`]);
    await setPsk(wg, encodeBase64(nodeCrypto.x25519PrivateKey(ourKey).publicKey), encodeBase64(psk));
    await wg.exec(['ip', 'route', 'replace', `${ours4}/32`, 'dev', wg.ifname]);
    const before = us.events.filter((e) => e.type === 'handshakeCompleted' && !e.initiator).length;
    const ping = await wg.exec(['ping', '-c', '3', '-i', '0.2', '-W', '3', ours4], { timeoutMs: 15000 });
    assert.equal(ping.code, 0, ping.stdout + ping.stderr);
    assert.match(ping.stdout, /3 received/);
    assert.ok(us.events.filter((e) => e.type === 'handshakeCompleted' && !e.initiator).length > before, 'we completed as responder');
    const ping6 = await wg.exec(['ping', '-6', '-c', '2', '-i', '0.2', '-W', '3', ours6], { timeoutMs: 15000 });
    assert.equal(ping6.code, 0, ping6.stdout + ping6.stderr);
  });

  it('sends a cookie reply wireguard-go accepts: under load it retries with mac2 and gets through', async () => {
    us.endpoint.setUnderLoad(true);
    // Expire the sessions on our side so the next packet from wireguard-go needs a new handshake.
    us.endpoint.setPrivateKey(new Uint8Array(32));
    us.endpoint.setPrivateKey(ourKey);
    await wg.wgSet(['peer', encodeBase64(nodeCrypto.x25519PrivateKey(ourKey).publicKey), 'remove']);
    await wg.wgSet(['peer', encodeBase64(nodeCrypto.x25519PrivateKey(ourKey).publicKey),
      'allowed-ips', `${ours4}/32,${ours6}/128`, 'endpoint', `127.0.0.1:${us.socket.address().port}`]);
    await setPsk(wg, encodeBase64(nodeCrypto.x25519PrivateKey(ourKey).publicKey), encodeBase64(psk));
    await wg.exec(['ip', 'route', 'replace', `${ours4}/32`, 'dev', wg.ifname]);
    const cookiesBefore = us.endpoint.counters.cookieRepliesSent;
    const ping = await wg.exec(['ping', '-c', '1', '-W', String((3 * REKEY_TIMEOUT) / 1000), ours4], { timeoutMs: 30000 });
    us.endpoint.setUnderLoad('auto');
    assert.equal(ping.code, 0, ping.stdout + ping.stderr + wg.logs().slice(-2000));
    assert.ok(us.endpoint.counters.cookieRepliesSent > cookiesBefore, 'we sent a cookie reply');
    assert.ok(us.endpoint.counters.dropped.cookieRequired >= 1, 'the first initiation lacked mac2');
  });
});

/** Sets a preshared key through a 0600 temp file (keys never go on a command line). */
async function setPsk(wg: WgGo, publicKey: string, psk: string): Promise<void> {
  const fs = await import('node:fs/promises');
  const os = await import('node:os');
  const path = await import('node:path');
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ww-psk-'));
  const file = path.join(dir, 'psk');
  try {
    await fs.writeFile(file, psk + '\n', { mode: 0o600 });
    await wg.wgSet(['peer', publicKey, 'preshared-key', file]);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}
