/**
 * Must-show 4 of issue 14: one interface with a mesh peer and a plain WireGuard peer. A has B as
 * a mesh peer (no Endpoint; A and B reach only the hub's namespace H) and D, a stock
 * wireguard-go, as a static peer with an Endpoint. Both work at once; only the mesh peer gets a
 * relay endpoint and a `path:` line.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { skipUnlessRig, WIREWEAVE_BIN } from '../support/netns.ts';
import type { Rig } from '../support/netns.ts';
import { meshConf, meshLab, meshPeer, until, writeConf } from './mesh-rig.ts';
import type { MeshLab, MeshSide } from './mesh-rig.ts';

const skip = skipUnlessRig(['wireweave', 'wireguard-go']);

describe('mesh: a mesh peer and a static wireguard-go peer on one interface', { skip }, () => {
  let lab: MeshLab | undefined;
  let rig: Rig;
  let a: MeshSide, b: MeshSide, d: MeshSide;
  const port = 20000 + ((process.pid + 7) % 20000);

  before(async () => {
    // D (wireguard-go, a plain peer) is not isolated: it reaches A directly.
    lab = await meshLab({ name: 'mesh-mixed', port, sides: [{ ifname: 'xa', isolated: true }, { ifname: 'xb', isolated: true }, { ifname: 'xd', isolated: false }] });
    rig = lab.rig;
    [a, b, d] = lab.sides as [MeshSide, MeshSide, MeshSide];
    const { hub, dir: confDir } = lab;
    const staticD = ['[Peer]', `PublicKey = ${d.keys.publicKey}`, `AllowedIPs = ${d.node.tun4}/32, ${d.node.tun6}/128`, `Endpoint = ${d.node.addr4}:51830`, ''].join('\n');
    writeConf(confDir, a, meshConf(a, hub.url, [meshPeer(b), staticD], ['ListenPort = 51820']));
    writeConf(confDir, b, meshConf(b, hub.url, [meshPeer(a)]));
    await rig.startDaemon(d.node, 'wireguard-go', d.ifname);
    await rig.configure(d.node, d.ifname, {
      privateKey: d.keys.privateKey, listenPort: 51830, address4: `${d.node.tun4}/24`, address6: `${d.node.tun6}/64`,
      peers: [{ publicKey: a.keys.publicKey, endpoint: `${a.node.addr4}:51820`, allowedIPs: [`${a.node.tun4}/32`, `${a.node.tun6}/128`] }],
    });
  });

  after(async () => {
    await lab?.destroy();
  });

  it('A reaches B through the relay and D directly, v4 and v6, both ways', async () => {
    assert.equal((await rig.ping(a.node, b.node.addr4, { count: 2, wait: 1 })).received, 0, 'A must not reach B directly');
    for (const s of [a, b]) {
      const up = await rig.exec(s.node, [WIREWEAVE_BIN, 'up', s.file], { timeoutMs: 30_000 });
      assert.equal(up.code, 0, up.stderr);
    }
    await until('a ping A -> B', async () => (await rig.ping(a.node, b.node.tun4, { count: 1, wait: 1 })).received === 1, 30_000);
    await until('a ping A -> D', async () => (await rig.ping(a.node, d.node.tun4, { count: 1, wait: 1 })).received === 1, 30_000);
    for (const [from, to] of [[a, b], [b, a], [a, d], [d, a]] as const) {
      for (const target of [to.node.tun4, to.node.tun6]) {
        const r = await rig.ping(from.node, target, { count: 3, interval: 0.2 });
        assert.equal(r.received, 3, `${from.node.label} -> ${target}: ${r.output}`);
      }
    }
  });

  it('show: B is relayed, D is a plain peer at its Endpoint with no path line; wg show agrees', async () => {
    const out = (await rig.exec(a.node, [WIREWEAVE_BIN, 'show', a.ifname])).stdout;
    const blocks = out.split('\n\n');
    const blockOf = (key: string) => blocks.find((bl) => bl.includes(`peer: ${key}`)) ?? '';
    assert.match(blockOf(b.keys.publicKey), /endpoint: 127\.3\.3\.40:\d+\n/);
    assert.match(blockOf(b.keys.publicKey), /path: relay ws:\/\/\S+ \(/);
    assert.match(blockOf(d.keys.publicKey), new RegExp(`endpoint: ${d.node.addr4.replaceAll('.', '\\.')}:51830\n`));
    assert.doesNotMatch(blockOf(d.keys.publicKey), /path:/);
    const dump = await rig.dump(a.ifname);
    assert.equal(dump.peers.length, 2);
    for (const p of dump.peers) assert.ok(p.latestHandshake > 0, `no handshake with ${p.endpoint}`);
  });
});
