/**
 * The hub over real WebSockets on loopback: clients prove their keys, exchange sealed signals
 * and relayed datagrams, fail over to the next hub when theirs dies, and a flooding client
 * does not starve another. Also the hub's metrics and its refusal of text frames.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { nodeCrypto as crypto } from '../../../src/crypto/node.ts';
import { systemRng } from '../../../src/core/rng.ts';
import { generatePrivateKey, encodeHex } from '../../../src/core/keys.ts';
import { startHubServer } from '../../../src/mesh/hub/ws-server.ts';
import type { HubServer } from '../../../src/mesh/hub/ws-server.ts';
import { MeshHubClient } from '../../../src/mesh/client/hub-client.ts';
import type { HubClientEvents } from '../../../src/mesh/client/hub-client.ts';
import { nodeTimers, nodeWebSocket } from '../../../src/mesh/client/node.ts';
import { signalKeys } from '../../../src/mesh/protocol/keys.ts';
import { SignalChannel } from '../../../src/mesh/protocol/envelope.ts';
import { until as poll } from '../../support/until.ts';

const servers: HubServer[] = [];
const clients: MeshHubClient[] = [];
after(async () => {
  for (const c of clients) c.stop();
  await Promise.all(servers.map((s) => s.close(100)));
});

async function hub(limits = {}): Promise<HubServer> {
  const s = await startHubServer({ host: '127.0.0.1', port: 0, crypto, rng: systemRng, limits });
  servers.push(s);
  return s;
}

function client(hubs: string[], events: HubClientEvents = {}, extra: Partial<ConstructorParameters<typeof MeshHubClient>[0]> = {}) {
  const privateKey = crypto.x25519PrivateKey(generatePrivateKey(systemRng));
  const c = new MeshHubClient({ crypto, rng: systemRng, privateKey, hubs, connect: nodeWebSocket, timers: nodeTimers, now: Date.now, events, ...extra });
  clients.push(c);
  c.start();
  return { c, key: privateKey };
}

const until = (what: string, cond: () => boolean, ms = 10_000): Promise<boolean> => poll(what, cond, ms, 10);

describe('mesh hub over WebSockets', () => {
  it('two clients exchange sealed signals and relayed datagrams through it', async () => {
    const h = await hub();
    const got: { from: string; data: Uint8Array; kind: string }[] = [];
    const events = (kind: string): HubClientEvents => ({
      signal: (from, data) => got.push({ from: encodeHex(from), data: Uint8Array.from(data), kind: `${kind}:signal` }),
      packet: (from, data) => got.push({ from: encodeHex(from), data: Uint8Array.from(data), kind: `${kind}:packet` }),
    });
    const a = client([h.url], events('a'));
    const b = client([h.url], events('b'));
    await until('both connected', () => a.c.connected && b.c.connected);
    const state = a.c.state;
    assert.ok(state.kind === 'connected' && state.observed?.address === '127.0.0.1', 'the hub tells the address it saw');

    const now = Date.now();
    const ab = new SignalChannel(crypto, systemRng, signalKeys(crypto, a.key, b.key.publicKey)!, a.key.publicKey, b.key.publicKey, now);
    const ba = new SignalChannel(crypto, systemRng, signalKeys(crypto, b.key, a.key.publicKey)!, b.key.publicKey, a.key.publicKey, now);
    assert.ok(a.c.sendSignal(b.key.publicKey, ab.seal(now, new TextEncoder().encode('call me maybe'))));
    assert.ok(a.c.sendPacket(b.key.publicKey, new Uint8Array(1420).fill(0xab)));
    await until('both frames at b', () => got.length >= 2);
    const signal = got.find((g) => g.kind === 'b:signal')!;
    assert.equal(signal.from, encodeHex(a.key.publicKey));
    const opened = ba.open(Date.now(), signal.data);
    assert.ok(opened.ok && new TextDecoder().decode(opened.body) === 'call me maybe');
    const packet = got.find((g) => g.kind === 'b:packet')!;
    assert.equal(packet.data.length, 1420);
    const metrics = await (await fetch(`http://127.0.0.1:${h.address.port}/metrics`)).text();
    assert.match(metrics, /^wireweave_hub_clients 2$/m);
    assert.match(metrics, /^wireweave_hub_frames_total\{kind="packet"\} 1$/m);
    a.c.stop(); b.c.stop();
  });

  it('a client fails over to the next hub when its hub dies, and signaling resumes', async () => {
    const h1 = await hub(), h2 = await hub();
    let received = 0;
    const a = client([h1.url, h2.url]);
    const b = client([h1.url, h2.url], { packet: () => { received++; } });
    await until('on hub 1', () => a.c.connected && b.c.connected);
    assert.equal(h1.hub.clientCount, 2);
    const killedAt = Date.now();
    await h1.close(0);
    await until('on hub 2', () => h2.hub.clientCount === 2 && a.c.connected && b.c.connected);
    const failoverMs = Date.now() - killedAt;
    assert.ok(a.c.sendPacket(b.key.publicKey, Uint8Array.of(1, 2, 3)));
    await until('a datagram through hub 2', () => received === 1);
    assert.ok(a.c.counters.failovers >= 1);
    assert.ok(a.c.state.kind === 'connected' && a.c.state.hub === h2.url);
    console.log(`# failover to hub 2 in ${failoverMs} ms`);
    a.c.stop(); b.c.stop();
  });

  it("a flooding client does not starve another client's signaling", async () => {
    const h = await hub({ rateBytesPerSecond: 1 << 20, burstBytes: 256 << 10 });
    let signals = 0, floodIn = 0;
    const victim = client([h.url], { signal: () => { signals++; }, packet: () => { floodIn++; } });
    const flooder = client([h.url]);
    const friend = client([h.url]);
    await until('connected', () => victim.c.connected && flooder.c.connected && friend.c.connected);
    const junk = new Uint8Array(16_000).fill(7);
    let stop = false;
    const flood = (async () => {
      // Raw frames past the client's own buffer bound, as a hostile client would send them.
      while (!stop) {
        for (let i = 0; i < 50; i++) flooder.c.sendPacket(victim.key.publicKey, junk);
        await new Promise((r) => setImmediate(r));
      }
    })();
    for (let i = 0; i < 50; i++) {
      friend.c.sendSignal(victim.key.publicKey, Uint8Array.of(1, i));
      await new Promise((r) => setTimeout(r, 10));
    }
    await until('all 50 signals', () => signals === 50, 15_000);
    stop = true;
    await flood;
    assert.ok(h.hub.counters.drops.rateLimited > 0, 'the flood was limited');
    console.log(`# flood datagrams delivered ${floodIn}, rate-limited ${h.hub.counters.drops.rateLimited}`);
    victim.c.stop(); flooder.c.stop(); friend.c.stop();
  });

  it('closes a connection that sends text, and one that sends no hello', async () => {
    const h = await hub({ helloTimeoutMs: 300 });
    const ws = new WebSocket(h.url, 'wireweave-mesh.v1');
    const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
    await new Promise((r) => ws.on('open', r));
    ws.send('hello?');
    assert.equal(await closed, 1003);
    const idle = new WebSocket(h.url, 'wireweave-mesh.v1');
    const idleClosed = new Promise<number>((r) => idle.on('close', (code) => r(code)));
    assert.equal(await idleClosed, 4008, 'no hello: closed by the hello deadline');
    assert.equal(h.hub.counters.refused.timeout, 1);
  });
});
