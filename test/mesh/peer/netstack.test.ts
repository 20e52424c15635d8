/**
 * The library's rootless tunnel with [Mesh]: two netstack() tunnels in this process whose
 * configs name each other only by public key, through a hub on loopback. A TCP echo through
 * them, then both report their mesh peer's path.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { encodeBase64, generatePrivateKey } from '../../../src/core/keys.ts';
import { systemRng } from '../../../src/core/rng.ts';
import { nodeCrypto } from '../../../src/crypto/node.ts';
import { startHubServer } from '../../../src/mesh/hub/ws-server.ts';
import type { HubServer } from '../../../src/mesh/hub/ws-server.ts';
import { meshNetstack, meshStatus } from '../../../src/mesh/peer/netstack.ts';
import type { Netstack } from '../../../src/netstack/api.ts';

let hub: HubServer | undefined;
const nets: Netstack[] = [];
after(async () => {
  for (const n of nets) await n.close().catch(() => n.destroy());
  await hub?.close();
});

function keys() {
  const k = generatePrivateKey(systemRng);
  return { priv: encodeBase64(k), pub: encodeBase64(nodeCrypto.x25519PrivateKey(k).publicKey) };
}

describe('meshNetstack: netstack() with [Mesh]', () => {
  it('carries a TCP echo between two tunnels that know each other only by key', { timeout: 30_000 }, async () => {
    hub = await startHubServer({ host: '127.0.0.1', port: 0, crypto: nodeCrypto, rng: systemRng });
    const a = keys(), b = keys();
    const conf = (self: { priv: string }, peer: { pub: string }, me: number, other: number) =>
      `[Interface]\nPrivateKey = ${self.priv}\nAddress = 10.77.0.${me}/24\n\n[Mesh]\nHub = ${hub!.url}\n\n[Peer]\nPublicKey = ${peer.pub}\nAllowedIPs = 10.77.0.${other}/32\n`;
    const na = await meshNetstack(conf(a, b, 1, 2));
    nets.push(na);
    const nb = await meshNetstack(conf(b, a, 2, 1));
    nets.push(nb);
    nb.listen(7000).on('connection', (s) => { s.on('error', () => {}); s.pipe(s); });
    const data = crypto.randomBytes(1 << 20);
    const echoed = await new Promise<Buffer>((resolve, reject) => {
      const s = na.connect({ host: '10.77.0.2', port: 7000 });
      const chunks: Buffer[] = [];
      let n = 0;
      s.on('data', (c: Buffer) => { chunks.push(c); n += c.length; if (n >= data.length) { s.end(); resolve(Buffer.concat(chunks)); } });
      s.on('error', reject);
      s.write(data);
    });
    assert.ok(echoed.equals(data));
    for (const n of [na, nb]) {
      const st = meshStatus(n);
      assert.equal(st?.hub.state, 'connected');
      assert.equal(st?.peers.length, 1);
      assert.ok(st?.peers[0]!.path.kind === 'relay' || st?.peers[0]!.path.kind === 'direct');
    }
    assert.equal(na.device.getState().peers[0]!.endpoint === null, false, 'the mesh gave the peer an endpoint');
  });
});
