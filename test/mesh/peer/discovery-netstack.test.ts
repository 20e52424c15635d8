/**
 * Discovery in netstack mode: two meshNetstack() tunnels whose configs have only a private key
 * and [Mesh] Hub/Network/NetworkSecret/Name (no Address, no [Peer]) find each other through a
 * hub on loopback, and `connect({ host: 'bob' })` reaches bob by the name it announced.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { encodeBase64, generatePrivateKey } from '../../../src/core/keys.ts';
import { systemRng } from '../../../src/core/rng.ts';
import { nodeCrypto } from '../../../src/crypto/node.ts';
import { startHubServer } from '../../../src/mesh/hub/ws-server.ts';
import type { HubServer } from '../../../src/mesh/hub/ws-server.ts';
import { meshNetstack, meshStatus } from '../../../src/mesh/peer/netstack.ts';
import type { Netstack } from '../../../src/netstack/api.ts';
import { until } from '../../support/until.ts';

let hub: HubServer | undefined;
const nets: Netstack[] = [];
after(async () => {
  for (const n of nets) await n.close().catch(() => n.destroy());
  await hub?.close();
});


describe('meshNetstack with discovery', () => {
  it('derives addresses, adds the other member, and resolves its name', { timeout: 30_000 }, async () => {
    hub = await startHubServer({ host: '127.0.0.1', port: 0, crypto: nodeCrypto, rng: systemRng });
    const conf = (name: string) => `[Interface]\nPrivateKey = ${encodeBase64(generatePrivateKey(systemRng))}\n\n[Mesh]\nHub = ${hub!.url}\nNetwork = lab\nNetworkSecret = a secret shared by both\nName = ${name}\n`;
    const alice = await meshNetstack(conf('alice'));
    nets.push(alice);
    const bob = await meshNetstack(conf('bob'));
    nets.push(bob);
    const bobV4 = meshStatus(bob)!.network!.addresses[0]!.split('/')[0]!;
    assert.match(bobV4, /^100\.96\.\d+\.\d+$/);
    await until('alice to learn bob', () => meshStatus(alice)?.peers[0]?.discovered?.addresses.length === 2);
    assert.deepEqual(await alice.resolve('bob', { family: 4 }), [bobV4]);
    bob.listen(7000).on('connection', (s) => { s.on('error', () => {}); s.end('hello from bob'); });
    const got = await new Promise<string>((resolve, reject) => {
      const s = alice.connect({ host: 'bob', port: 7000 });
      let text = '';
      s.on('data', (c: Buffer) => { text += c.toString(); });
      s.on('end', () => resolve(text));
      s.on('error', reject);
    });
    assert.equal(got, 'hello from bob');
    const st = meshStatus(bob)!;
    assert.equal(st.network?.members, 1);
    assert.equal(st.peers[0]!.discovered?.name, 'alice');
  });
});
