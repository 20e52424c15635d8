/**
 * Discovery through a real hub on loopback (docs/mesh.md §4): members that share a network
 * secret and configure no peer add each other with the addresses each one's Hello gives, and
 * reach each other; a node with a wrong secret learns nothing and is learned by no one; a
 * member that claims another member's address is refused and counted. The "UDP network" is a
 * MemoryNetwork with no direct path, so everything is relayed.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Device } from '../../../src/device/device.ts';
import { MemoryBind, MemoryNetwork } from '../../../src/device/bind-memory.ts';
import { MemoryTun } from '../../../src/device/tun-memory.ts';
import { parsePrefix } from '../../../src/device/allowedips.ts';
import { formatIp } from '../../../src/core/ip-address.ts';
import type { Prefix } from '../../../src/device/config.ts';
import { encodeBase64, encodeHex, generatePrivateKey } from '../../../src/core/keys.ts';
import { systemRng } from '../../../src/core/rng.ts';
import { nodeCrypto as crypto } from '../../../src/crypto/node.ts';
import { startHubServer } from '../../../src/mesh/hub/ws-server.ts';
import { MemoryFederationBus } from '../../../src/mesh/hub/memory-federation.ts';
import { systemClock } from '../../../src/device/clock.ts';
import type { HubServer } from '../../../src/mesh/hub/ws-server.ts';
import { nodeTimers, nodeWebSocket } from '../../../src/mesh/client/node.ts';
import { MeshBind } from '../../../src/mesh/peer/mesh-bind.ts';
import { MeshNode } from '../../../src/mesh/peer/mesh-node.ts';
import type { MeshDiscovery } from '../../../src/mesh/peer/mesh-node.ts';
import { networkKeys } from '../../../src/mesh/protocol/keys.ts';
import { defaultPrefix6, derivedAddresses } from '../../../src/mesh/protocol/discovery.ts';
import { icmpEcho4, parseEcho } from '../../support/ip.ts';
import { until } from '../../support/until.ts';

const servers: HubServer[] = [];
const stops: (() => Promise<void>)[] = [];
after(async () => {
  for (const s of stops) await s();
  for (const s of servers) await s.close();
});

interface Member { name: string; device: Device; tun: MemoryTun; node: MeshNode; pub: Uint8Array; addresses: Prefix[] }

function discovery(name: string, secret: string, pub: Uint8Array, claim?: Prefix[]): MeshDiscovery {
  const k = networkKeys(crypto, 'lab', new TextEncoder().encode(secret));
  const prefix4 = parsePrefix('100.96.0.0/16'), prefix6 = defaultPrefix6(k.networkId);
  return { network: 'lab', networkId: k.networkId, announceKey: k.announceKey, name, prefix4, prefix6, addresses: claim ?? derivedAddresses(crypto, pub, prefix4, prefix6) };
}

let n = 0;
async function member(net: MemoryNetwork, hub: string, name: string, secret: string, claim?: Prefix[], announceIntervalMs?: number): Promise<Member> {
  n++;
  const key = generatePrivateKey(systemRng);
  const pub = crypto.x25519PrivateKey(key).publicKey;
  const tun = new MemoryTun({ name: `wwdisc${n}`, mtu: 1420 });
  const bind = new MeshBind(new MemoryBind(net, `192.0.2.${n}`));
  const device = new Device({ tun, bind, rng: systemRng });
  const d = discovery(name, secret, pub, claim);
  const node = new MeshNode({
    device, bind, hubs: [hub], relay: 'auto', crypto, rng: systemRng, connect: nodeWebSocket, timers: nodeTimers,
    now: () => performance.now(), wallNow: () => Date.now(), hostAddresses: () => [], log: { error: () => {}, verbose: () => {} }, discovery: d,
    ...(announceIntervalMs ? { announceIntervalMs } : {}),
  });
  node.start();
  await device.up();
  await device.ipcSet(`private_key=${encodeHex(key)}\n`);
  stops.push(async () => { node.stop(); await device.close().catch(() => {}); });
  return { name, device, tun, node, pub, addresses: d.addresses };
}


const v4 = (m: Member) => formatIp(m.addresses.find((a) => a.family === 4)!.bytes);
const peerKeys = (m: Member) => m.device.getState().peers.map((p) => encodeBase64(p.publicKey)).sort();
const allowed = (m: Member, of: Member) => m.device.getState().peers.find((p) => encodeHex(p.publicKey) === encodeHex(of.pub))?.allowedIps.map((p) => `${formatIp(p.bytes)}/${p.bits}`) ?? [];

async function ping(from: Member, to: Member, seq: number): Promise<void> {
  const seen = () => to.tun.written.some((p) => { const e = parseEcho(p); return e !== null && !e.reply && e.seq === seq; });
  await until(`echo ${seq} from ${from.name} at ${to.name}`, () => { if (!seen()) from.tun.inject(icmpEcho4(v4(from), v4(to), 7, seq, new Uint8Array(16))); return seen(); });
}

describe('mesh discovery: members find each other by network secret', () => {
  it('three members add each other; a wrong secret learns nothing; a false claim is refused', async () => {
    const hub = await startHubServer({ host: '127.0.0.1', port: 0, crypto, rng: systemRng });
    servers.push(hub);
    const net = new MemoryNetwork();
    net.filter = () => false;
    const secret = 'correct horse battery staple';
    const [a, b, c] = [await member(net, hub.url, 'alice', secret), await member(net, hub.url, 'bob', secret), await member(net, hub.url, 'carol', secret)];
    const outsider = await member(net, hub.url, 'mallory', 'a wrong secret of some length');
    const members = [a, b, c];
    for (const m of members) {
      await until(`${m.name} to have both others with their addresses`, () => members.every((o) => o === m || allowed(m, o).length === 2));
      for (const o of members) {
        if (o === m) continue;
        assert.deepEqual(allowed(m, o).sort(), o.addresses.map((p) => `${formatIp(p.bytes)}/${p.bytes.length * 8}`).sort());
      }
    }
    await ping(a, b, 1);
    await ping(b, c, 2);
    await ping(c, a, 3);
    // Names resolve to the announced addresses.
    assert.deepEqual(a.node.lookupName('bob'), b.addresses.map((p) => formatIp(p.bytes)));
    assert.deepEqual(a.node.status().peers.map((p) => p.discovered?.name).sort(), ['bob', 'carol']);
    assert.equal(a.node.status().network?.members, 2);
    // The outsider: no peer, and nobody has its key; its announcements opened under no key.
    assert.deepEqual(peerKeys(outsider), []);
    assert.equal(outsider.node.status().network?.members, 0);
    for (const m of members) assert.ok(!peerKeys(m).includes(encodeBase64(outsider.pub)), `${m.name} must not know the outsider`);

    // A member (it has the secret) claiming alice's address: refused by bob and carol, counted.
    const liar = await member(net, hub.url, 'liar', secret, a.addresses);
    for (const m of [b, c]) {
      await until(`${m.name} to refuse the liar's Hello`, () => m.node.status().network!.helloRefused.overlap > 0);
      assert.deepEqual(allowed(m, liar), [], 'no address for the liar');
      assert.deepEqual(allowed(m, a).length, 2, 'alice keeps hers');
      assert.equal(m.node.status().peers.find((p) => p.publicKey === encodeBase64(liar.pub))?.discovered?.refused, 'overlap');
    }
    await ping(b, a, 4);

  });

  it('a member that stops announcing is withdrawn by the hub and removed; it comes back when it returns', async () => {
    // A hub that forgets announcements after 1.5 s, and members that announce every 0.3 s.
    const hub = await startHubServer({ host: '127.0.0.1', port: 0, crypto, rng: systemRng, limits: { announcementTtlMs: 1500 } });
    servers.push(hub);
    const net = new MemoryNetwork();
    net.filter = () => false;
    const secret = 'another long enough secret';
    const a = await member(net, hub.url, 'alice', secret, undefined, 300);
    const b = await member(net, hub.url, 'bob', secret, undefined, 300);
    await until('alice to add bob', () => allowed(a, b).length === 2);
    b.node.stop();
    await until('alice to remove bob', () => !peerKeys(a).includes(encodeBase64(b.pub)), 10_000);
    assert.equal(a.node.status().counters.membersRemoved, 1);
    assert.equal(a.node.status().network?.members, 0);
    // A fresh node with the same key announces a newer epoch: added again.
    const again = new MeshNode({
      device: b.device, bind: new MeshBind(new MemoryBind(net, '192.0.2.200')), hubs: [hub.url], relay: 'auto', crypto, rng: systemRng,
      connect: nodeWebSocket, timers: nodeTimers, now: () => performance.now(), wallNow: () => Date.now() + 1, hostAddresses: () => [],
      log: { error: () => {}, verbose: () => {} }, discovery: discovery('bob', secret, b.pub), announceIntervalMs: 300,
    });
    again.start();
    stops.push(async () => { again.stop(); });
    await until('alice to add bob again', () => allowed(a, b).length === 2, 10_000);
  });

  it('members on two federated hubs find each other (the announcement registry crosses the fleet)', async () => {
    const bus = new MemoryFederationBus();
    const hubs = [];
    for (let i = 0; i < 2; i++) {
      const h = await startHubServer({ host: '127.0.0.1', port: 0, crypto, rng: systemRng, clock: systemClock, federation: bus.join(() => systemClock.now()) });
      servers.push(h);
      hubs.push(h);
    }
    // NATS delivers on its own; the memory bus when told to.
    const pump = setInterval(() => bus.deliver(), 5);
    stops.push(async () => { clearInterval(pump); });
    const net = new MemoryNetwork();
    net.filter = () => false;
    const secret = 'a fleet-wide network secret';
    const a = await member(net, hubs[0]!.url, 'alice', secret);
    const b = await member(net, hubs[1]!.url, 'bob', secret);
    await until('alice and bob to know each other across the hubs', () => allowed(a, b).length === 2 && allowed(b, a).length === 2);
    assert.ok(bus.announcements.size >= 2, 'both announcements are in the registry');
    await ping(a, b, 9);
    assert.deepEqual(b.node.lookupName('alice'), a.addresses.map((p) => formatIp(p.bytes)));
  });
});
