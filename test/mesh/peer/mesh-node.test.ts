/**
 * Two devices that know each other only by public key, through a real hub on loopback: the mesh
 * bind relays their WireGuard datagrams until a direct candidate answers a probe, then the
 * endpoint moves to it. The "UDP network" between them is a MemoryNetwork, so a test decides
 * whether a direct path exists.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Device } from '../../../src/device/device.ts';
import { MemoryBind, MemoryNetwork } from '../../../src/device/bind-memory.ts';
import { MemoryTun } from '../../../src/device/tun-memory.ts';
import { encodeHex, generatePrivateKey } from '../../../src/core/keys.ts';
import { systemRng } from '../../../src/core/rng.ts';
import { nodeCrypto as crypto } from '../../../src/crypto/node.ts';
import { startHubServer } from '../../../src/mesh/hub/ws-server.ts';
import type { HubServer } from '../../../src/mesh/hub/ws-server.ts';
import { nodeTimers, nodeWebSocket } from '../../../src/mesh/client/node.ts';
import type { WebSocketFactory } from '../../../src/mesh/client/hub-client.ts';
import { MeshBind, RELAY_ADDRESS } from '../../../src/mesh/peer/mesh-bind.ts';
import { MeshNode } from '../../../src/mesh/peer/mesh-node.ts';
import type { RelayPolicy } from '../../../src/mesh/protocol/path.ts';
import { icmpEcho4, parseEcho } from '../../support/ip.ts';
import { until } from '../../support/until.ts';

const servers: HubServer[] = [];
/** Every frame the peers sent the hub: what a recording hub would keep. */
const toHub: Uint8Array[] = [];
const recording: WebSocketFactory = (url, protocol) => {
  const ws = nodeWebSocket(url, protocol);
  const send = ws.send.bind(ws);
  ws.send = (data: Uint8Array) => { toHub.push(data.slice()); send(data); };
  return ws;
};
const stops: (() => Promise<void>)[] = [];
after(async () => {
  for (const s of stops) await s();
  for (const s of servers) await s.close();
});

interface Side {
  device: Device;
  tun: MemoryTun;
  bind: MeshBind;
  node: MeshNode;
  key: Uint8Array;
  pub: Uint8Array;
}

async function side(net: MemoryNetwork, address: string, hub: string, relay: RelayPolicy, addresses = () => [address]): Promise<Side> {
  const tun = new MemoryTun({ name: `wwmesh${address.slice(-1)}`, mtu: 1420 });
  const bind = new MeshBind(new MemoryBind(net, address));
  const device = new Device({ tun, bind, rng: systemRng });
  const node = new MeshNode({
    device, bind, hubs: [hub], relay, crypto, rng: systemRng, connect: recording, timers: nodeTimers,
    now: () => performance.now(), wallNow: () => Date.now(), hostAddresses: addresses, log: { error: () => {}, verbose: () => {} },
    candidateRefreshMs: 300,
  });
  node.start();
  await device.up();
  stops.push(async () => { node.stop(); await device.close(); });
  const key = generatePrivateKey(systemRng);
  return { device, tun, bind, node, key, pub: crypto.x25519PrivateKey(key).publicKey };
}

async function pair(relay: RelayPolicy, direct: boolean, addressesA?: () => string[]): Promise<[Side, Side, MemoryNetwork]> {
  const hub = await startHubServer({ host: '127.0.0.1', port: 0, crypto, rng: systemRng });
  servers.push(hub);
  const net = new MemoryNetwork();
  net.filter = () => direct;
  const a = await side(net, '192.0.2.1', hub.url, relay, addressesA);
  const b = await side(net, '198.51.100.2', hub.url, relay);
  await a.device.ipcSet(`private_key=${encodeHex(a.key)}\npublic_key=${encodeHex(b.pub)}\nallowed_ip=10.9.0.2/32\n`);
  await b.device.ipcSet(`private_key=${encodeHex(b.key)}\npublic_key=${encodeHex(a.pub)}\nallowed_ip=10.9.0.1/32\n`);
  return [a, b, net];
}

function hasBytes(hay: Uint8Array, needle: number[]): boolean {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}


async function ping(from: Side, to: Side, src: string, dst: string, seq: number): Promise<void> {
  const payload = new Uint8Array(32).fill(seq);
  const seen = () => to.tun.written.some((p) => { const e = parseEcho(p); return e !== null && !e.reply && e.seq === seq; });
  // Resent while the handshake is under way (the first packet may wait for it).
  await until(`echo ${seq} at the far side`, () => { if (!seen()) from.tun.inject(icmpEcho4(src, dst, 7, seq, payload)); return seen(); });
}

describe('mesh node: peers by public key through a hub', () => {
  it('relays when no direct path answers, and says why', async () => {
    const [a, b, net] = await pair('auto', false);
    assert.equal(a.device.getState().peers[0]!.endpoint, `${RELAY_ADDRESS}:1`);
    await ping(a, b, '10.9.0.1', '10.9.0.2', 1);
    await ping(b, a, '10.9.0.2', '10.9.0.1', 2);
    assert.ok(a.bind.counters.relayedOut > 0 && b.bind.counters.relayedIn > 0);
    assert.equal(net.delivered, 0);
    // Candidates crossed the hub (sealed); the probes went unanswered.
    const s = await until('the reason', () => { const st = a.node.status(); return st.peers[0]?.path.kind === 'relay' && st.peers[0].path.reason.includes('no UDP answer') ? st : undefined; });
    assert.equal(s.hub.state, 'connected');
    assert.deepEqual(s.peers[0]!.candidates, ['198.51.100.2:' + b.device.port]);
    assert.ok(a.node.counters.probesSent > 0);
    assert.equal(a.node.counters.pongs, 0);
    // The hub carried the candidates but never saw an address in them (nor a tunnel address).
    const text = new TextDecoder('latin1');
    const sealedFrames = toHub.filter((f) => f[0] === 0x10);
    assert.ok(sealedFrames.length >= 2, 'signals went through the hub');
    for (const f of toHub) {
      for (const ip of [[192, 0, 2, 1], [198, 51, 100, 2], [10, 9, 0, 1], [10, 9, 0, 2]]) {
        assert.ok(!hasBytes(f, ip), `an address in clear in a frame of type ${f[0]}`);
      }
      assert.doesNotMatch(text.decode(f), /192\.0\.2\.1|198\.51\.100\.2/);
    }
  });

  it('moves to a direct candidate that answers, and keeps the tunnel', async () => {
    const [a, b] = await pair('auto', true);
    await ping(a, b, '10.9.0.1', '10.9.0.2', 3);
    await until('a direct path on A', () => a.node.status().peers[0]?.path.kind === 'direct');
    const st = a.node.status().peers[0]!;
    assert.deepEqual(st.path.kind === 'direct' && st.path.address, `198.51.100.2:${b.device.port}`);
    await until('the endpoint set to it', () => a.device.getState().peers[0]!.endpoint === `198.51.100.2:${b.device.port}`);
    const relayed = a.bind.counters.relayedOut;
    await ping(a, b, '10.9.0.1', '10.9.0.2', 4);
    assert.equal(a.bind.counters.relayedOut, relayed, 'a direct path is not relayed');
  });

  it('tells the peer a new generation of candidates when its addresses change', async () => {
    let addresses = ['192.0.2.1'];
    const [a, b] = await pair('auto', false, () => addresses);
    await ping(a, b, '10.9.0.1', '10.9.0.2', 6);
    await until('B to know A at 192.0.2.1', () => b.node.status().peers[0]?.candidates.includes(`192.0.2.1:${a.device.port}`));
    addresses = ['203.0.113.9'];
    const seen = await until('B to learn the new address', () => {
      const c = b.node.status().peers[0]?.candidates;
      return c?.includes(`203.0.113.9:${a.device.port}`) ? c : undefined;
    });
    assert.ok(!seen.includes(`192.0.2.1:${a.device.port}`), 'only the newest generation is kept');
  });

  it('a peer added while connected learns our candidates at once', async () => {
    const [a, b] = await pair('auto', false);
    await until('A connected', () => a.node.status().hub.state === 'connected' && b.node.status().hub.state === 'connected');
    const c = await side(new MemoryNetwork(), '203.0.113.3', a.node.status().hub.url, 'auto');
    await c.device.ipcSet(`private_key=${encodeHex(c.key)}\n`);
    await until('C connected', () => c.node.status().hub.state === 'connected');
    // Only now does A add C (and C add A): both are connected, neither's addresses change again.
    await a.device.ipcSet(`public_key=${encodeHex(c.pub)}\nallowed_ip=10.9.0.3/32\n`);
    await c.device.ipcSet(`public_key=${encodeHex(a.pub)}\nallowed_ip=10.9.0.1/32\n`);
    await until('C to know A\'s candidates', () => c.node.status().peers[0]?.candidates.includes(`192.0.2.1:${a.device.port}`));
  });

  it('Relay = never: nothing through the hub; direct once a candidate answers', async () => {
    const [a0, b0] = await pair('never', false);
    assert.equal(a0.device.getState().peers[0]!.endpoint, null, 'no relay endpoint');
    const s = await until('the reason', () => { const p = a0.node.status().peers[0]; return p?.path.kind === 'relay' && p.candidates.length > 0 ? p : undefined; });
    assert.match(s.path.kind === 'relay' ? s.path.reason : '', /relay = never/);
    b0.tun.inject(icmpEcho4('10.9.0.2', '10.9.0.1', 7, 9, new Uint8Array(8)));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(a0.bind.counters.relayedOut + b0.bind.counters.relayedOut, 0);
    const [a, b] = await pair('never', true);
    await until('a direct path', () => a.node.status().peers[0]?.path.kind === 'direct');
    await ping(a, b, '10.9.0.1', '10.9.0.2', 8);
    assert.equal(a.bind.counters.relayedOut + b.bind.counters.relayedOut, 0, 'never relayed');
  });

  it('Relay = always never leaves the relay', async () => {
    const [a, b] = await pair('always', true);
    await ping(a, b, '10.9.0.1', '10.9.0.2', 5);
    const s = a.node.status().peers[0]!;
    assert.equal(s.path.kind, 'relay');
    assert.match(s.path.kind === 'relay' ? s.path.reason : '', /relay = always/);
    assert.equal(a.node.counters.probesSent, 0);
  });
});
