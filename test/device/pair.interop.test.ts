/**
 * The `wireweave` daemon on both ends, end to end in network namespaces (test/support/netns.ts):
 * the core cases shared with wggo.interop.test.ts (pings IPv4/IPv6 both ways, a hashed 100 MB
 * TCP transfer, roaming, allowed-IPs source filtering, ...), then a hub and two spokes where the
 * hub forwards between the spokes through its one interface (cryptokey routing picks the peer).
 *
 * Needs root, /dev/net/tun, wg, ip, ping, sysctl; skipped with the reason otherwise, except
 * under CI (process.env.CI set), where that fails.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRig, describePair, genKeyPair, requireRig, rigLeftovers, skipUnlessRig } from '../support/netns.ts';
import type { Daemon, KeyPair, Rig, RigNode } from '../support/netns.ts';

describePair('wireweave (A) <-> wireweave (B) in network namespaces', 'wireweave', 'wireweave', [
  'ping IPv4 and IPv6 through the tunnel, both ways',
  'flood ping both ways, at most 1% loss',
  'TCP transfer with sha256 check: 100 MB A -> B, 20 MB B -> A',
  'wg show dump: handshake, transfer, endpoints, preshared key',
  'IPv6 underlay: endpoints on the veth IPv6 addresses',
  'multi-homed: A answers from the address B talks to',
  "roaming: A's underlay address changes, B follows",
  'allowed-IPs source filtering: a spoofed source is dropped',
  'UDP datagrams through the tunnel, content checked',
  'wg show/showconf/set/setconf/syncconf against the A daemon',
  'the daemon exits when its interface is deleted',
]);

describe('wireweave hub and two spokes', { skip: skipUnlessRig(['wireweave']) }, () => {
  let rig: Rig | undefined;
  let nodes: { node: RigNode; daemon: Daemon; keys: KeyPair }[] = [];

  before(async () => {
    requireRig(['wireweave']);
    rig = await createRig({ name: 'hub', nodes: 3 });
    const r = rig;
    const daemons = await Promise.all(r.nodes.map((n) => r.startDaemon(n, 'wireweave')));
    nodes = r.nodes.map((node, i) => ({ node, daemon: daemons[i]!, keys: genKeyPair() }));
    const [hub, ...spokes] = nodes as [(typeof nodes)[number], ...typeof nodes];
    const port = (i: number): number => 51820 + i;
    await r.execOk(hub.node, ['sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1',
      'net.ipv4.conf.all.send_redirects=0']);
    await r.configure(hub.node, hub.daemon.ifname, {
      privateKey: hub.keys.privateKey,
      listenPort: port(0),
      peers: spokes.map((s) => ({
        publicKey: s.keys.publicKey,
        endpoint: `${s.node.addr4}:${port(s.node.index)}`,
        allowedIPs: [`${s.node.tun4}/32`, `${s.node.tun6}/128`],
      })),
      address4: `${hub.node.tun4}/24`,
      address6: `${hub.node.tun6}/64`,
    });
    for (const s of spokes) {
      await r.configure(s.node, s.daemon.ifname, {
        privateKey: s.keys.privateKey,
        listenPort: port(s.node.index),
        peers: [{
          publicKey: hub.keys.publicKey,
          endpoint: `${hub.node.addr4}:${port(0)}`,
          // The whole tunnel subnet is behind the hub.
          allowedIPs: [r.tunnel4, r.tunnel6],
        }],
        address4: `${s.node.tun4}/24`,
        address6: `${s.node.tun6}/64`,
      });
    }
  });

  after(async () => {
    await rig?.destroy();
    assert.deepEqual(rigLeftovers(), [], 'left behind');
  });

  it('spoke 1 pings spoke 2 (IPv4 and IPv6) through the hub', async (t) => {
    assert.ok(rig);
    const [hub, s1, s2] = nodes as [(typeof nodes)[number], (typeof nodes)[number], (typeof nodes)[number]];
    const logs = (): string => nodes.map((n) => `--- ${n.node.label} ---\n${n.daemon.logs().slice(-2000)}`).join('\n');
    for (const [from, to] of [[s1, s2], [s2, s1]] as const) {
      for (const target of [to.node.tun4, to.node.tun6]) {
        const r = await rig.ping(from.node, target, { count: 3, interval: 0.2, wait: 2 });
        t.diagnostic(`${from.node.label} -> ${to.node.label} (${target}) via ${hub.node.label}: ${r.received}/${r.transmitted}`);
        assert.equal(r.received, 3, `${r.output}\n${logs()}`);
      }
    }
    // The traffic really went through the hub: it has a session with, and data from, both spokes.
    const dump = await rig.dump(hub.daemon.ifname);
    for (const s of [s1, s2]) {
      const peer = dump.peers.find((p) => p.publicKey === s.keys.publicKey);
      assert.ok(peer && peer.latestHandshake > 0 && peer.transferRx > 0 && peer.transferTx > 0, `hub <-> ${s.node.label}: ${JSON.stringify(peer)}`);
    }
    // ...and the spokes never talked to each other directly: each has only the hub as a peer.
    for (const s of [s1, s2]) assert.equal((await rig.dump(s.daemon.ifname)).peers.length, 1);
  });
});
