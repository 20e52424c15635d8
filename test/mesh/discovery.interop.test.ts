/**
 * Must-show 5 of issue 14: discovery. Namespaces H (the hub) and A, B, C, D, isolated ports of
 * H's bridge (each reaches H, never another). A, B and C run `wireweave up` with configs that
 * have only [Interface] PrivateKey (no Address, no [Peer]) and [Mesh] Hub/Network/NetworkSecret:
 * they find each other through the hub, add each other with the addresses derived from their
 * keys and reach each other over IPv4 and IPv6. D has the same network name and a wrong
 * secret: it learns nobody, and nobody learns it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRig, genKeyPair, skipUnlessRig, tcpTransfer, WIREWEAVE_BIN } from '../support/netns.ts';
import { decodeBase64 } from '../../src/core/keys.ts';
import type { Rig } from '../support/netns.ts';
import { confDir as makeConfDir, isolate, startHub, until, writeConf } from './mesh-rig.ts';
import type { MeshSide } from './mesh-rig.ts';
import { nodeCrypto as crypto } from '../../src/crypto/node.ts';
import { parsePrefix } from '../../src/device/allowedips.ts';
import { formatIp } from '../../src/core/ip-address.ts';
import { networkKeys } from '../../src/mesh/protocol/keys.ts';
import { defaultPrefix6, derivedAddresses } from '../../src/mesh/protocol/discovery.ts';

const skip = skipUnlessRig(['wireweave']);
const SECRET = 'Tq0v1Xb7mR9sK2wE4yU6iO8pA3dF5gH+jL1zC/nM0=';

interface Side extends MeshSide { name: string; v4: string; v6: string }

interface ShowJson {
  publicKey: string;
  mesh: { network?: { members: number; self: string; addresses: string[]; announceDrops: Record<string, number> } };
  peers: { publicKey: string; allowedIps: string[]; name?: string }[];
}

describe('mesh discovery: three members with only keys and a network secret', { skip }, () => {
  let rig: Rig;
  const sides: Side[] = [];
  let outsider: Side;
  let confDir = '';
  const port = 20000 + ((process.pid + 7) % 20000);

  before(async () => {
    rig = await createRig({ name: 'mesh-disc', nodes: 5 });
    const nodes = rig.nodes.slice(1);
    await isolate(rig, nodes);
    confDir = makeConfDir();
    const hub = await startHub(rig, port);
    ['alpha', 'bravo', 'charlie', 'delta'].forEach((name, i) => {
      const keys = genKeyPair();
      const secret = name === 'delta' ? 'not the secret, but just as long' : SECRET;
      // The IPv6 prefix comes from the network id: delta's wrong secret puts it elsewhere.
      const id = networkKeys(crypto, 'lab', new TextEncoder().encode(secret)).networkId;
      const [v4, v6] = derivedAddresses(crypto, crypto.x25519PrivateKey(decodeBase64(keys.privateKey)).publicKey, parsePrefix('100.96.0.0/16'), defaultPrefix6(id));
      const side: Side = { node: nodes[i]!, keys, ifname: rig.ifname(`d${name[0]}`), file: '', name, v4: formatIp(v4!.bytes), v6: formatIp(v6!.bytes) };
      // alpha saves its configuration on down: the members it found must not be written as [Peer]s.
      const save = name === 'alpha' ? ['SaveConfig = true'] : [];
      writeConf(confDir, side, ['[Interface]', `PrivateKey = ${keys.privateKey}`, ...save, '', '[Mesh]', `Hub = ${hub.url}`, 'Network = lab', `NetworkSecret = ${secret}`, `Name = ${name}`, ''].join('\n'));
      if (name === 'delta') outsider = side; else sides.push(side);
    });
  });

  after(async () => {
    for (const s of [...sides, outsider]) if (s) await rig?.exec(s.node, ['ip', 'link', 'del', s.ifname]);
    await rig?.destroy();
    if (confDir) fs.rmSync(confDir, { recursive: true, force: true });
  });

  const show = async (s: Side): Promise<ShowJson> => JSON.parse((await rig.exec(s.node, [WIREWEAVE_BIN, 'show', s.ifname, '--json'])).stdout) as ShowJson;

  it('up with no Address and no [Peer]: each member adds the other two with their derived addresses', async (t) => {
    const started = Date.now();
    for (const s of [...sides, outsider]) {
      const up = await rig.exec(s.node, [WIREWEAVE_BIN, 'up', s.file], { timeoutMs: 30_000 });
      assert.equal(up.code, 0, up.stderr);
      // The derived addresses are on the interface, with the network's prefix lengths.
      const addr = (await rig.execOk(s.node, ['ip', '-o', 'addr', 'show', 'dev', s.ifname])).stdout;
      assert.match(addr, new RegExp(`inet ${s.v4.replace(/\./g, '\\.')}/16 `));
      assert.match(addr, new RegExp(`inet6 ${s.v6}/64 `));
    }
    const allUp = Date.now();
    for (const s of sides) {
      const j = await until(`${s.name} to know both others`, async () => {
        const v = await show(s);
        return v.peers.length === 2 && v.peers.every((p) => p.allowedIps.length === 2) ? v : undefined;
      }, 30_000);
      for (const o of sides.filter((x) => x !== s)) {
        const p = j.peers.find((x) => x.publicKey === o.keys.publicKey);
        assert.ok(p, `${s.name} has ${o.name}`);
        assert.deepEqual(p.allowedIps.sort(), [`${o.v4}/32`, `${o.v6}/128`].sort());
        assert.equal(p.name, o.name);
      }
      assert.equal(j.mesh.network?.members, 2);
      assert.equal(j.mesh.network?.self, s.name);
    }
    t.diagnostic(`all three members know each other ${Date.now() - started} ms after the first up, ${Date.now() - allUp} ms after the last`);
  });

  it('all three reach each other over IPv4 and IPv6, both ways', async () => {
    for (const from of sides) {
      for (const to of sides) {
        if (from === to) continue;
        for (const target of [to.v4, to.v6]) {
          await until(`${from.name} -> ${to.name} ${target}`, async () => (await rig.ping(from.node, target, { count: 1, wait: 1 })).received === 1, 20_000);
          const r = await rig.ping(from.node, target, { count: 3, interval: 0.2 });
          assert.equal(r.received, 3, `${from.name} -> ${target}: ${r.output}`);
        }
      }
    }
  });

  it('a TCP transfer between two derived addresses arrives whole', async (t) => {
    const [a, b] = sides;
    const r = await tcpTransfer(rig, a!.node, b!.node, b!.v4, 5_000_000, 60_000);
    t.diagnostic(`TCP alpha -> bravo through the hub: 5 MB in ${(r.ms / 1000).toFixed(2)} s`);
    assert.equal(r.receivedSha256, r.sentSha256);
  });

  it('show prints the network and the members by name', async () => {
    const out = (await rig.execOk(sides[0]!.node, [WIREWEAVE_BIN, 'show', sides[0]!.ifname])).stdout;
    assert.match(out, new RegExp(`^ {2}network: lab as alpha \\(${sides[0]!.v4.replace(/\./g, '\\.')}/16, ${sides[0]!.v6}/64\\), 2 members$`, 'm'));
    assert.match(out, /^ {2}name: bravo$/m);
    assert.match(out, /^ {2}name: charlie$/m);
  });

  it('the member with a wrong secret learns nothing and is learned by no one', async () => {
    const j = await show(outsider);
    assert.deepEqual(j.peers, [], 'delta has no peer');
    assert.equal(j.mesh.network?.members, 0);
    assert.equal((await rig.dump(outsider.ifname)).peers.length, 0);
    for (const s of sides) {
      const dump = await rig.dump(s.ifname);
      assert.equal(dump.peers.length, 2);
      assert.ok(!dump.peers.some((p) => p.publicKey === outsider.keys.publicKey), `${s.name} must not have delta`);
    }
    assert.equal((await rig.ping(outsider.node, sides[0]!.v4, { count: 1, wait: 1 })).received, 0);
  });

  it('down with SaveConfig keeps the file a discovery file: no Address, no discovered [Peer]', async () => {
    const alpha = sides[0]!;
    const down = await rig.exec(alpha.node, [WIREWEAVE_BIN, 'down', alpha.file], { timeoutMs: 30_000 });
    assert.equal(down.code, 0, down.stderr);
    const text = fs.readFileSync(alpha.file, 'utf8');
    assert.doesNotMatch(text, /\[Peer\]|Address/);
    assert.match(text, /^Network = lab$/m);
    assert.match(text, /^Name = alpha$/m);
  });
});
