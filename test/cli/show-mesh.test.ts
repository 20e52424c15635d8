import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { encodeBase64, generatePrivateKey } from '../../src/core/keys.ts';
import { seededRng } from '../../src/core/rng.ts';
import { nodeCrypto } from '../../src/crypto/node.ts';
import type { DeviceState } from '../../src/device/config.ts';
import type { MeshStatus } from '../../src/mesh/peer/mesh-node.ts';
import { formatShow, formatShowJson } from '../../src/cli/show.ts';

const rng = seededRng(14);
const priv = generatePrivateKey(rng);
const key = (n: number) => nodeCrypto.x25519PrivateKey(generatePrivateKey(seededRng(n))).publicKey;
const meshKey = key(1), plainKey = key(2);
const peer = (publicKey: Uint8Array, endpoint: string) => ({
  publicKey, presharedKey: new Uint8Array(32).fill(9), endpoint, lastHandshakeTimeSec: 0, lastHandshakeTimeNsec: 0, rxBytes: 0, txBytes: 0,
  persistentKeepalive: 0, allowedIps: [], protocolVersion: 1,
});
const state: DeviceState = { privateKey: priv, listenPort: 51820, fwmark: 0, peers: [peer(meshKey, '127.3.3.40:1'), peer(plainKey, '192.0.2.9:51820')] };
const drops = { malformed: 0, seal: 2, stale: 0, oldEpoch: 0, replay: 1 };
const mesh: MeshStatus = {
  hub: { url: 'ws://hub.example:8443/mesh', state: 'connected', observed: '198.51.100.7:40000' },
  relay: 'auto',
  peers: [{ publicKey: encodeBase64(meshKey), slot: 1, path: { kind: 'relay', hub: 'ws://hub.example:8443/mesh', reason: 'no UDP answer from any candidate' }, candidates: ['203.0.113.5:51820'], drops }],
  counters: { unknownSender: 0, badBody: 0, signalsSent: 3, signalsReceived: 2, probesSent: 4, pongs: 0, pathChanges: 0, relayFromUnknown: 0, staleCandidates: 0, announcementsSent: 0, membersAdded: 0, membersRemoved: 0 },
};

describe('show with a mesh', () => {
  it('prints the hub under the interface and a path line under mesh peers only', () => {
    const out = formatShow('wg0', state, 0, true, mesh);
    assert.match(out, /\n {2}listening port: 51820\n {2}hub: ws:\/\/hub\.example:8443\/mesh \(connected, seen as 198\.51\.100\.7:40000\)\n/);
    assert.match(out, new RegExp(`peer: ${encodeBase64(meshKey).replace(/[+/]/g, '\\$&')}\\n {2}preshared key: \\(hidden\\)\\n {2}endpoint: 127\\.3\\.3\\.40:1\\n {2}path: relay ws://hub\\.example:8443/mesh \\(no UDP answer from any candidate\\)\\n`));
    const plain = out.split('\n\n').find((b) => b.includes(encodeBase64(plainKey)))!;
    assert.doesNotMatch(plain, /path:/);
    assert.doesNotMatch(formatShow('wg0', state, 0, true, null), /hub:|path:/);
  });

  it('--json: the same with counters, and no private or preshared key', () => {
    const j = formatShowJson('wg0', state, mesh) as { mesh: { hub: { state: string } }; peers: { path?: { kind: string; reason: string }; signalDrops?: unknown; presharedKey: unknown }[] };
    assert.equal(j.mesh.hub.state, 'connected');
    assert.equal(j.peers[0]!.path?.kind, 'relay');
    assert.deepEqual(j.peers[0]!.signalDrops, drops);
    assert.equal(j.peers[1]!.path, undefined);
    assert.equal(j.peers[0]!.presharedKey, true);
    const text = JSON.stringify(j);
    assert.ok(!text.includes(encodeBase64(priv)) && !text.includes(encodeBase64(new Uint8Array(32).fill(9))), 'no secret in the JSON');
  });
});
