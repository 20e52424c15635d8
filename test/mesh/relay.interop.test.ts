/**
 * Must-show 1 of issue 14: peers that know each other only by public key reach each other
 * through the hub's relay, with real TUN daemons. Namespaces H (the hub), A and B: A and B are
 * isolated ports of H's bridge, so each reaches H and never the other. `wireweave hub` runs in
 * H, `wireweave up` in A and B with configs that have no Endpoint, only [Mesh] Hub = H.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { skipUnlessRig, tcpTransfer, WIREWEAVE_BIN } from '../support/netns.ts';
import type { Rig } from '../support/netns.ts';
import { meshConf, meshLab, meshPeer, until, writeConf } from './mesh-rig.ts';
import type { MeshLab, MeshSide as Side } from './mesh-rig.ts';

const skip = skipUnlessRig(['wireweave']);

describe('mesh: two peers without Endpoint, relayed by a hub they both reach', { skip }, () => {
  let lab: MeshLab | undefined;
  let rig: Rig;
  let a: Side, b: Side;
  const port = 20000 + (process.pid % 20000);

  before(async () => {
    lab = await meshLab({ name: 'mesh-relay', port, sides: [{ ifname: 'ma', isolated: true }, { ifname: 'mb', isolated: true }] });
    rig = lab.rig;
    [a, b] = lab.sides as [Side, Side];
    writeConf(lab.dir, a, meshConf(a, lab.hub.url, [meshPeer(b)]));
    writeConf(lab.dir, b, meshConf(b, lab.hub.url, [meshPeer(a)]));
  });

  after(async () => {
    await lab?.destroy();
  });

  it('A and B reach H but not each other (v4 and v6)', async () => {
    const [h] = rig.nodes;
    for (const s of [a, b]) {
      assert.equal((await rig.ping(s.node, h!.addr4, { count: 1 })).received, 1, `${s.node.label} -> H`);
    }
    for (const target of [b.node.addr4, b.node.addr6]) {
      assert.equal((await rig.ping(a.node, target, { count: 2, wait: 1 })).received, 0, `A must not reach B at ${target}`);
    }
  });

  it('wireweave up in A and B: ping v4 and v6 both ways through the relay', async (t) => {
    for (const s of [a, b]) {
      const up = await rig.exec(s.node, [WIREWEAVE_BIN, 'up', s.file], { timeoutMs: 30_000 });
      assert.equal(up.code, 0, up.stderr);
    }
    const started = Date.now();
    await until('the first ping A -> B', async () => (await rig.ping(a.node, b.node.tun4, { count: 1, wait: 1 })).received === 1, 30_000);
    t.diagnostic(`first ping through the relay after ${Date.now() - started} ms`);
    for (const [from, to] of [[a, b], [b, a]] as const) {
      for (const target of [to.node.tun4, to.node.tun6]) {
        const r = await rig.ping(from.node, target, { count: 5, interval: 0.2 });
        assert.equal(r.received, 5, `${from.node.label} -> ${target}: ${r.output}`);
      }
    }
    // wg show keeps working: the relay endpoint reads as an address.
    const dump = await rig.dump(a.ifname);
    assert.match(dump.peers[0]!.endpoint ?? '', /^127\.3\.3\.40:\d+$/);
  });

  it('a 50 MB TCP transfer each way arrives whole (SHA-256)', async (t) => {
    for (const [from, to] of [[a, b], [b, a]] as const) {
      const r = await tcpTransfer(rig, from.node, to.node, to.node.tun4, 50_000_000, 180_000);
      t.diagnostic(`TCP ${from.node.label} -> ${to.node.label} through the hub: 50 MB in ${(r.ms / 1000).toFixed(2)} s = ${r.mbPerS.toFixed(1)} MB/s`);
      assert.equal(r.receivedBytes, r.bytes);
      assert.equal(r.receivedSha256, r.sentSha256);
    }
  });

  it('show says relay, with the hub and a reason, on both sides', async (t) => {
    for (const s of [a, b]) {
      const out = await until(`show ${s.ifname} to give the probing's outcome`, async () => {
        const r = await rig.exec(s.node, [WIREWEAVE_BIN, 'show', s.ifname]);
        return /path: relay .*no UDP answer from any candidate/.test(r.stdout) ? r.stdout : undefined;
      }, 20_000);
      t.diagnostic(out.split('\n').filter((l) => /hub:|path:|endpoint:/.test(l)).join(' | '));
      assert.match(out, /^ {2}hub: ws:\/\/\S+\/mesh \(connected, seen as /m);
      assert.match(out, /^ {2}path: relay ws:\/\/\S+\/mesh \(no UDP answer from any candidate\)$/m);
      assert.match(out, /^ {2}endpoint: 127\.3\.3\.40:\d+$/m);
      const j = JSON.parse((await rig.exec(s.node, [WIREWEAVE_BIN, 'show', s.ifname, '--json'])).stdout) as
        { mesh: { hub: { state: string } }; peers: { path: { kind: string; reason: string }; signalDrops: Record<string, number> }[] };
      assert.equal(j.mesh.hub.state, 'connected');
      assert.equal(j.peers[0]!.path.kind, 'relay');
      assert.equal(j.peers[0]!.path.reason, 'no UDP answer from any candidate');
      assert.equal(Object.values(j.peers[0]!.signalDrops).reduce((x, y) => x + y, 0), 0, 'no signal refused');
      // wg show keeps working on the same interface.
      const wg = await rig.wgOk(['show', s.ifname]);
      assert.match(wg, /endpoint: 127\.3\.3\.40:\d+/);
      assert.match(wg, /latest handshake:/);
    }
  });
});
