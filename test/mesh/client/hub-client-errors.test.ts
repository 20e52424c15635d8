import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { generatePrivateKey } from '../../../src/core/keys.ts';
import { systemRng } from '../../../src/core/rng.ts';
import { nodeCrypto } from '../../../src/crypto/node.ts';
import { MeshHubClient } from '../../../src/mesh/client/hub-client.ts';
import type { HubConnectionState } from '../../../src/mesh/client/hub-client.ts';
import { nodeTimers, nodeWebSocket } from '../../../src/mesh/client/node.ts';

describe('hub client: why a hub is unreachable', () => {
  it('says the connection was refused, not just a close code', async () => {
    // A port nobody listens on: bind one, note it, close it.
    const port = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => { const p = (s.address() as net.AddressInfo).port; s.close(() => resolve(p)); });
    });
    const states: HubConnectionState[] = [];
    const client = new MeshHubClient({
      crypto: nodeCrypto, rng: systemRng, privateKey: nodeCrypto.x25519PrivateKey(generatePrivateKey(systemRng)),
      hubs: [`ws://127.0.0.1:${port}/mesh`], connect: nodeWebSocket, timers: nodeTimers, now: () => Date.now(),
      events: { state: (s) => states.push(s) },
    });
    client.start();
    try {
      const end = Date.now() + 10_000;
      while (!states.some((s) => s.kind === 'disconnected') && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      const down = states.find((s) => s.kind === 'disconnected');
      assert.ok(down && down.kind === 'disconnected');
      assert.match(down.reason, /^cannot connect: .*ECONNREFUSED/);
    } finally {
      client.stop();
    }
  });
});
