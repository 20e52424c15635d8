/**
 * Hubs joined through the federation core over its in-memory bus (the NATS twin): frames
 * cross hubs with the sender stamped, presence follows a client that reconnects elsewhere,
 * queues are bounded, an outage leaves local service intact and is counted, registrations are
 * re-put within the bucket TTL, and announcements cross hubs.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { nodeCrypto as crypto } from '../../../src/crypto/node.ts';
import { seededRng } from '../../../src/core/rng.ts';
import { generatePrivateKey, encodeHex } from '../../../src/core/keys.ts';
import type { X25519PrivateKey } from '../../../src/core/crypto.ts';
import { Hub } from '../../../src/mesh/hub/hub.ts';
import type { HubClient } from '../../../src/mesh/hub/hub.ts';
import { MemoryHubLink } from '../../../src/mesh/hub/memory-link.ts';
import { MemoryFederationBus } from '../../../src/mesh/hub/memory-federation.ts';
import { decodeForward, encodeForward } from '../../../src/mesh/hub/federation.ts';
import type { Federation, FederationLimits } from '../../../src/mesh/hub/federation.ts';
import { hubProof } from '../../../src/mesh/protocol/keys.ts';
import { ABSENT, FRAME, MAX_FRAME, decodeFrame, encodeFrame } from '../../../src/mesh/protocol/frames.ts';
import type { Frame } from '../../../src/mesh/protocol/frames.ts';

let seed = 500;
const identity = (): X25519PrivateKey => crypto.x25519PrivateKey(generatePrivateKey(seededRng(seed++)));

interface Conn {
  id: X25519PrivateKey;
  link: MemoryHubLink;
  client: HubClient;
  frames(): Frame[];
}

/** A virtual clock shared by the hubs and their federations. */
const clock = { t: 0, now: () => clock.t };

function fleet(n: number, limits: Partial<FederationLimits> = {}) {
  const bus = new MemoryFederationBus();
  const logs: string[] = [];
  const hubs = Array.from({ length: n }, (_, i) => {
    const federation = bus.join(clock.now, limits, (l) => logs.push(l));
    return { hub: new Hub({ crypto, rng: seededRng(10 + i), federation }), federation };
  });
  return { bus, hubs, logs };
}

function join(hub: Hub, id = identity()): Conn {
  const link = new MemoryHubLink({ address: '192.0.2.10', port: 40000 });
  const client = hub.connect(clock.t, link);
  const hello = decodeFrame(link.take()[0]!);
  assert.ok(hello && hello.type === FRAME.serverHello);
  const proof = hubProof(crypto, id, hello.hubEphemeral, hello.challenge)!;
  hub.receive(clock.t, client, encodeFrame({ type: FRAME.clientHello, version: 1, publicKey: id.publicKey, proof, tokenProof: new Uint8Array(16) }));
  const w = decodeFrame(link.take()[0]!);
  assert.ok(w && w.type === FRAME.welcome);
  return { id, link, client, frames: () => link.take().map((m) => decodeFrame(m)!) };
}

const send = (hub: Hub, from: Conn, to: Conn, type: typeof FRAME.sendSignal | typeof FRAME.sendPacket, payload: Uint8Array) =>
  hub.receive(clock.t, from.client, encodeFrame({ type, key: to.id.publicKey, payload }));

describe('mesh hub federation (in-memory twin of NATS)', () => {
  it('a signal and a datagram from a client on hub 1 reach a client on hub 2, sender stamped', () => {
    const { bus, hubs: [h1, h2] } = fleet(2);
    const a = join(h1!.hub), b = join(h2!.hub);
    send(h1!.hub, a, b, FRAME.sendSignal, Uint8Array.of(1, 2, 3));
    send(h1!.hub, a, b, FRAME.sendPacket, new Uint8Array(1420).fill(0xab));
    assert.deepEqual(b.frames(), [], 'nothing before the bus carries it');
    assert.equal(bus.deliver(), 2);
    const [sig, pkt] = b.frames();
    assert.ok(sig && sig.type === FRAME.recvSignal && encodeHex(sig.key) === encodeHex(a.id.publicKey));
    assert.deepEqual(sig.payload, Uint8Array.of(1, 2, 3));
    assert.ok(pkt && pkt.type === FRAME.recvPacket && pkt.payload.length === 1420);
    assert.equal(h1!.hub.counters.forwarded, 2);
    assert.equal(h2!.federation.counters.received, 2);
    assert.deepEqual(a.frames(), [], 'no PeerAbsent for a key on another hub');

    const nobody = identity();
    h1!.hub.receive(clock.t, a.client, encodeFrame({ type: FRAME.sendSignal, key: nobody.publicKey, payload: Uint8Array.of(1) }));
    const [absent] = a.frames();
    assert.ok(absent && absent.type === FRAME.peerAbsent && absent.reason === ABSENT.notConnected, 'a key no hub has');
  });

  it('presence moves with a client that reconnects at another hub; the old hub lets go', () => {
    const { bus, hubs: [h1, h2] } = fleet(2);
    const a1 = join(h1!.hub);
    const c = join(h1!.hub), b = join(h2!.hub);
    const keyA = encodeHex(a1.id.publicKey);
    assert.equal(bus.presence.get(keyA), h1!.federation.hubHex);
    const a2 = join(h2!.hub, a1.id);
    assert.equal(bus.presence.get(keyA), h2!.federation.hubHex, 'the registry names hub 2');
    assert.deepEqual(a1.link.closedWith, { code: 4010, reason: 'moved to another hub' });
    assert.equal(a1.link.take().length, 0, 'no Error(replaced): that would stop a live client');
    assert.ok(!h1!.hub.has(a1.id.publicKey));
    // The stale connection's close at hub 1 must not unregister the key from hub 2.
    h1!.hub.disconnect(a1.client);
    assert.equal(bus.presence.get(keyA), h2!.federation.hubHex);
    send(h1!.hub, c, a2, FRAME.sendPacket, Uint8Array.of(7));
    send(h2!.hub, b, a2, FRAME.sendPacket, Uint8Array.of(8));
    bus.deliver();
    assert.deepEqual(a2.frames().map((f) => f.type === FRAME.recvPacket && f.payload[0]), [8, 7], 'from hub 2 locally, from hub 1 over the bus');
    // A clean disconnect removes the registration; then nobody has it.
    h2!.hub.disconnect(a2.client);
    assert.equal(bus.presence.has(keyA), false);
    h1!.hub.receive(clock.t, c.client, encodeFrame({ type: FRAME.sendSignal, key: a1.id.publicKey, payload: Uint8Array.of(1) }));
    const [absent] = c.frames();
    assert.ok(absent && absent.type === FRAME.peerAbsent && absent.reason === ABSENT.notConnected);
  });

  it('the queue towards other hubs is bounded in frames and bytes; over it, frames drop and are counted', () => {
    const { bus, hubs: [h1, h2] } = fleet(2, { maxQueueFrames: 10, maxQueueBytes: 8000 });
    const a = join(h1!.hub), b = join(h2!.hub);
    for (let i = 0; i < 20; i++) send(h1!.hub, a, b, FRAME.sendPacket, Uint8Array.of(i));
    assert.equal(h1!.federation.queuedFrames, 10);
    assert.equal(h1!.federation.counters.drops.queueFull, 10);
    assert.equal(h1!.hub.counters.drops.federation, 10);
    assert.equal(bus.deliver(), 10);
    assert.deepEqual(b.frames().map((f) => f.type === FRAME.recvPacket && f.payload[0]), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'the first ten, in order');
    for (let i = 0; i < 3; i++) send(h1!.hub, a, b, FRAME.sendPacket, new Uint8Array(3000));
    assert.equal(h1!.federation.queuedFrames, 2, 'the byte bound holds two 3 KB frames');
    assert.ok(h1!.federation.queuedBytes <= 8000);
    send(h1!.hub, a, b, FRAME.sendSignal, Uint8Array.of(1));
    send(h1!.hub, a, b, FRAME.sendSignal, new Uint8Array(3000));
    const absent = a.frames().at(-1);
    assert.ok(absent && absent.type === FRAME.peerAbsent && absent.reason === ABSENT.queueFull, 'a dropped signal is answered');
    bus.deliver();
    assert.equal(h1!.federation.queuedFrames, 0);
    assert.equal(h1!.federation.queuedBytes, 0);
  });

  it('an outage keeps local service, counts what could not cross, logs it, and re-registers after', () => {
    const { bus, hubs: [h1, h2], logs } = fleet(2);
    const a = join(h1!.hub), c = join(h1!.hub), b = join(h2!.hub);
    bus.setUp(false);
    assert.ok(logs.some((l) => /federation down .*serving local clients only/.test(l)));
    assert.equal(h1!.federation.up, false);
    send(h1!.hub, a, c, FRAME.sendPacket, Uint8Array.of(5));
    assert.deepEqual(c.frames().map((f) => f.type), [FRAME.recvPacket], 'local relay works while the federation is down');
    send(h1!.hub, a, b, FRAME.sendPacket, Uint8Array.of(6));
    assert.equal(h1!.federation.counters.drops.down, 1);
    assert.equal(h1!.hub.counters.drops.federation, 1);
    // Clients that arrive during the outage are registered when it ends.
    const d = join(h2!.hub);
    bus.presence.clear();
    bus.setUp(true);
    assert.ok(logs.some((l) => /federation up/.test(l)));
    for (const x of [a, c, b, d]) assert.ok(bus.presence.has(encodeHex(x.id.publicKey)), 'every local client put again');
    send(h1!.hub, a, d, FRAME.sendPacket, Uint8Array.of(9));
    bus.deliver();
    assert.deepEqual(d.frames().map((f) => f.type === FRAME.recvPacket && f.payload[0]), [9]);
  });

  it('registrations are re-put within the TTL; a dead hub\'s clients are forgotten after it', () => {
    const { bus, hubs: [h1, h2] } = fleet(2, { presenceTtlMs: 60_000, reannounceMs: 20_000 });
    clock.t = 1_000_000;
    const a = join(h1!.hub), b = join(h2!.hub);
    bus.presence.clear(); // as the bucket TTL would, if no one re-put
    clock.t += 20_000;
    h1!.federation.tick();
    h2!.federation.tick();
    assert.ok(bus.presence.has(encodeHex(a.id.publicKey)) && bus.presence.has(encodeHex(b.id.publicKey)));
    assert.ok(h1!.federation.counters.reannounced >= 1);
    // Hub 2 dies without a word: hub 1 forwards to it until the registration's TTL ends.
    bus.leave(h2!.federation);
    send(h1!.hub, a, b, FRAME.sendSignal, Uint8Array.of(1));
    assert.equal(h1!.hub.counters.forwarded, 1);
    clock.t += 60_000;
    send(h1!.hub, a, b, FRAME.sendSignal, Uint8Array.of(1));
    const [absent] = a.frames();
    assert.ok(absent && absent.type === FRAME.peerAbsent && absent.reason === ABSENT.notConnected, 'stale presence expired');
    h1!.federation.tick();
    assert.equal(h1!.federation.presenceCount, 0);
  });

  it('announcements cross hubs for watched networks only, and not back to their own hub', () => {
    const { hubs: [h1, h2] } = fleet(2);
    const net = new Uint8Array(16).fill(3);
    const a = join(h1!.hub), b = join(h2!.hub), c = join(h2!.hub);
    h1!.hub.receive(clock.t, a.client, encodeFrame({ type: FRAME.subscribe, networkId: net }));
    h2!.hub.receive(clock.t, b.client, encodeFrame({ type: FRAME.announce, networkId: net, sealed: new Uint8Array(88).fill(2) }));
    const [ann] = a.frames();
    assert.ok(ann && ann.type === FRAME.announcement && encodeHex(ann.key) === encodeHex(b.id.publicKey));
    assert.deepEqual(ann.sealed, new Uint8Array(88).fill(2));
    // An announcement already in the registry reaches a hub that starts watching later.
    h2!.hub.receive(clock.t, c.client, encodeFrame({ type: FRAME.subscribe, networkId: net }));
    assert.deepEqual(c.frames().map((f) => f.type), [FRAME.announcement], 'hub 2 serves its own entry once, not again from the bus');
    const other = new Uint8Array(16).fill(4);
    h2!.hub.receive(clock.t, b.client, encodeFrame({ type: FRAME.announce, networkId: other, sealed: new Uint8Array(88) }));
    assert.deepEqual(a.frames(), [], 'a network no client of hub 1 joined');
  });

  it('hub-to-hub messages are checked: size, framing, and a recipient not here', () => {
    const { hubs: [h1] } = fleet(1);
    const f = h1!.federation as Federation;
    const key = new Uint8Array(32).fill(1);
    const ok = encodeForward(key, encodeFrame({ type: FRAME.recvPacket, key, payload: Uint8Array.of(1) }));
    assert.ok(decodeForward(ok));
    assert.equal(decodeForward(ok.subarray(0, 32)), null);
    assert.equal(decodeForward(encodeForward(key, encodeFrame({ type: FRAME.sendPacket, key, payload: Uint8Array.of(1) }))), null, 'only Recv* frames cross');
    assert.equal(decodeForward(encodeForward(key, new Uint8Array(MAX_FRAME + 1).fill(FRAME.recvPacket))), null, 'oversized');
    f.onMessage(new Uint8Array(5));
    f.onMessage(ok);
    assert.equal(f.counters.drops.malformed, 1);
    assert.equal(f.counters.drops.notHere, 1);
  });
});
