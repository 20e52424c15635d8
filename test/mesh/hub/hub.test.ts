/**
 * The hub's logic over in-memory links: proof of key possession, access control, relaying with
 * the sender stamped by the hub, bounds (queues, rates, tables), announcements and timeouts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { nodeCrypto as crypto } from '../../../src/crypto/node.ts';
import { seededRng } from '../../../src/core/rng.ts';
import { generatePrivateKey, encodeHex } from '../../../src/core/keys.ts';
import type { X25519PrivateKey } from '../../../src/core/crypto.ts';
import { Hub } from '../../../src/mesh/hub/hub.ts';
import type { HubClient, HubOptions } from '../../../src/mesh/hub/hub.ts';
import { MemoryHubLink } from '../../../src/mesh/hub/memory-link.ts';
import { hubProof, networkKeys, tokenProof } from '../../../src/mesh/protocol/keys.ts';
import { ABSENT, FRAME, decodeFrame, encodeFrame } from '../../../src/mesh/protocol/frames.ts';
import type { Frame } from '../../../src/mesh/protocol/frames.ts';

let seed = 100;
const identity = (): X25519PrivateKey => crypto.x25519PrivateKey(generatePrivateKey(seededRng(seed++)));

interface Conn {
  id: X25519PrivateKey;
  link: MemoryHubLink;
  client: HubClient;
  frames(): Frame[];
}

function makeHub(options: Partial<HubOptions> = {}): Hub {
  return new Hub({ crypto, rng: seededRng(1), ...options });
}

/** Connects and proves `id` with a hello (signed by `forgeWith` instead, to forge). */
function join(hub: Hub, now: number, id = identity(), opts: { forgeWith?: X25519PrivateKey; token?: Uint8Array } = {}): Conn {
  const link = new MemoryHubLink({ address: '192.0.2.10', port: 40000 });
  const client = hub.connect(now, link);
  const hello = decodeFrame(link.take()[0]!);
  assert.ok(hello && hello.type === FRAME.serverHello);
  const prover = opts.forgeWith ?? id;
  const proof = hubProof(crypto, prover, hello.hubEphemeral, hello.challenge)!;
  const tp = opts.token ? tokenProof(crypto, opts.token, hello.challenge, id.publicKey) : new Uint8Array(16);
  hub.receive(now, client, encodeFrame({ type: FRAME.clientHello, version: 1, publicKey: id.publicKey, proof, tokenProof: tp }));
  return { id, link, client, frames: () => link.take().map((m) => decodeFrame(m)!) };
}

describe('mesh hub', () => {
  it('welcomes a client that proves its key, with the address it came from', () => {
    const hub = makeHub();
    const a = join(hub, 0);
    const [w] = a.frames();
    assert.ok(w && w.type === FRAME.welcome);
    assert.deepEqual(w.observed, { address: '192.0.2.10', port: 40000 });
    assert.equal(hub.clientCount, 1);
    assert.ok(hub.has(a.id.publicKey));
  });

  it("refuses to register another peer's key (no proof of its private key)", () => {
    const hub = makeHub();
    const victim = identity();
    const attacker = join(hub, 0, victim, { forgeWith: identity() });
    const [err] = attacker.frames();
    assert.ok(err && err.type === FRAME.error && err.code === 0x0403);
    assert.ok(attacker.link.closedWith);
    assert.equal(hub.has(victim.publicKey), false);
    assert.equal(hub.counters.refused.badProof, 1);
  });

  it('a proof recorded on one connection is useless on the next (new challenge)', () => {
    const hub = makeHub();
    const victim = identity();
    const link1 = new MemoryHubLink();
    const c1 = hub.connect(0, link1);
    const hello1 = decodeFrame(link1.take()[0]!);
    assert.ok(hello1 && hello1.type === FRAME.serverHello);
    const recorded = encodeFrame({ type: FRAME.clientHello, version: 1, publicKey: victim.publicKey, proof: hubProof(crypto, victim, hello1.hubEphemeral, hello1.challenge)!, tokenProof: new Uint8Array(16) });
    hub.receive(0, c1, recorded);
    hub.disconnect(c1);
    const link2 = new MemoryHubLink();
    const c2 = hub.connect(1, link2);
    hub.receive(1, c2, recorded);
    assert.ok(link2.closedWith);
    assert.equal(hub.has(victim.publicKey), false);
  });

  it('refuses keys not on --allow, and clients without the network token', () => {
    const allowed = identity();
    const hub = makeHub({ allow: new Set([encodeHex(allowed.publicKey)]) });
    assert.equal(join(hub, 0, allowed).frames()[0]?.type, FRAME.welcome);
    const other = join(hub, 0);
    assert.equal(other.frames()[0]?.type, FRAME.error);
    assert.equal(hub.counters.refused.notAllowed, 1);

    const token = networkKeys(crypto, 'lab', new TextEncoder().encode('s3cret')).hubToken;
    const gated = makeHub({ networkToken: token });
    assert.equal(join(gated, 0, identity(), { token }).frames()[0]?.type, FRAME.welcome);
    const wrong = networkKeys(crypto, 'lab', new TextEncoder().encode('guess')).hubToken;
    assert.equal(join(gated, 0, identity(), { token: wrong }).frames()[0]?.type, FRAME.error);
    assert.equal(join(gated, 0).frames()[0]?.type, FRAME.error);
    assert.equal(gated.counters.refused.badToken, 2);
  });

  it('relays signals and datagrams with the sender stamped by the hub', () => {
    const hub = makeHub();
    const a = join(hub, 0), b = join(hub, 0);
    a.frames(); b.frames();
    hub.receive(1, a.client, encodeFrame({ type: FRAME.sendSignal, key: b.id.publicKey, payload: Uint8Array.of(1, 2) }));
    hub.receive(1, a.client, encodeFrame({ type: FRAME.sendPacket, key: b.id.publicKey, payload: new Uint8Array(148).fill(4) }));
    const got = b.frames();
    assert.equal(got.length, 2);
    assert.ok(got[0]!.type === FRAME.recvSignal && encodeHex(got[0]!.key) === encodeHex(a.id.publicKey));
    assert.ok(got[1]!.type === FRAME.recvPacket && got[1]!.payload.length === 148);
    assert.equal(hub.counters.relayedBytes, 150);
  });

  it('says a signal recipient is absent; drops datagrams to nobody, counted', () => {
    const hub = makeHub();
    const a = join(hub, 0);
    a.frames();
    const nobody = identity().publicKey;
    hub.receive(1, a.client, encodeFrame({ type: FRAME.sendSignal, key: nobody, payload: Uint8Array.of(1) }));
    hub.receive(1, a.client, encodeFrame({ type: FRAME.sendPacket, key: nobody, payload: Uint8Array.of(1) }));
    const got = a.frames();
    assert.equal(got.length, 1);
    assert.ok(got[0]!.type === FRAME.peerAbsent && got[0]!.reason === ABSENT.notConnected);
    assert.equal(hub.counters.drops.notConnected, 2);
  });

  it('a newer proven connection for a key replaces the older one', () => {
    const hub = makeHub();
    const id = identity();
    const first = join(hub, 0, id);
    const second = join(hub, 1, id);
    assert.ok(first.link.closedWith);
    assert.equal(second.link.closedWith, null);
    assert.equal(hub.clientCount, 1);
    hub.disconnect(first.client); // the old socket's close event arrives late
    assert.ok(hub.has(id.publicKey), 'the late close of the old connection leaves the new one');
    assert.equal(hub.counters.replaced, 1);
  });

  it('drops datagrams to a client whose queue is full, but still delivers its signals', () => {
    const hub = makeHub({ limits: { maxQueueBytes: 1000 } });
    const a = join(hub, 0), b = join(hub, 0);
    b.frames();
    b.link.queued = 1500;
    hub.receive(1, a.client, encodeFrame({ type: FRAME.sendPacket, key: b.id.publicKey, payload: new Uint8Array(100) }));
    hub.receive(1, a.client, encodeFrame({ type: FRAME.sendSignal, key: b.id.publicKey, payload: new Uint8Array(10) }));
    assert.deepEqual(b.frames().map((f) => f.type), [FRAME.recvSignal]);
    assert.equal(hub.counters.drops.queueFull, 1);
    b.link.queued = 2500;
    a.frames();
    hub.receive(1, a.client, encodeFrame({ type: FRAME.sendSignal, key: b.id.publicKey, payload: new Uint8Array(10) }));
    const [absent] = a.frames();
    assert.ok(absent && absent.type === FRAME.peerAbsent && absent.reason === ABSENT.queueFull);
  });

  it("a flooding client is paused and dropped past its bucket; another client's signals still pass", () => {
    const hub = makeHub({ limits: { rateBytesPerSecond: 10_000, burstBytes: 10_000, framesPerSecond: 1000 } });
    const flooder = join(hub, 0), victim = join(hub, 0), friend = join(hub, 0);
    victim.frames();
    let t = 0;
    for (let i = 0; i < 1000; i++) {
      hub.receive(t, flooder.client, encodeFrame({ type: FRAME.sendPacket, key: victim.id.publicKey, payload: new Uint8Array(1000) }));
      if (i % 10 === 0) hub.receive(t, friend.client, encodeFrame({ type: FRAME.sendSignal, key: victim.id.publicKey, payload: Uint8Array.of(i & 0xff) }));
      t += 1; // 1,000 datagrams of 1 KB in one second: 100× the flooder's rate
    }
    const got = victim.frames();
    const fromFriend = got.filter((f) => f.type === FRAME.recvSignal).length;
    const fromFlooder = got.filter((f) => f.type === FRAME.recvPacket).length;
    assert.equal(fromFriend, 100, 'every signal of the well-behaved client arrived');
    assert.ok(fromFlooder <= 20, `${fromFlooder} flood datagrams passed (bucket: 10 burst + 10/s)`);
    assert.ok(flooder.link.paused, 'the flooder is no longer read');
    assert.ok(hub.counters.drops.rateLimited >= 980);
    hub.tick(t + 2000);
    assert.equal(flooder.link.paused, false, 'resumed once the bucket refilled');
  });

  it('announcements reach subscribers, are bounded, and expire with a Withdrawn', () => {
    const hub = makeHub({ limits: { maxNetworksPerClient: 2, announcementTtlMs: 60_000 } });
    const net = new Uint8Array(16).fill(7);
    const a = join(hub, 0), b = join(hub, 0);
    a.frames(); b.frames();
    hub.receive(1, a.client, encodeFrame({ type: FRAME.announce, networkId: net, sealed: new Uint8Array(88).fill(1) }));
    hub.receive(2, b.client, encodeFrame({ type: FRAME.subscribe, networkId: net }));
    const [ann] = b.frames();
    assert.ok(ann && ann.type === FRAME.announcement && encodeHex(ann.key) === encodeHex(a.id.publicKey));
    hub.receive(3, b.client, encodeFrame({ type: FRAME.announce, networkId: net, sealed: new Uint8Array(88).fill(2) }));
    assert.deepEqual(b.frames(), [], 'no echo of its own announcement');
    // A third network for one client is refused.
    hub.receive(4, b.client, encodeFrame({ type: FRAME.subscribe, networkId: new Uint8Array(16).fill(8) }));
    hub.receive(4, b.client, encodeFrame({ type: FRAME.subscribe, networkId: new Uint8Array(16).fill(9) }));
    assert.equal(hub.counters.drops.tooManyNetworks, 1);
    hub.tick(60_003);
    const withdrawn = b.frames().filter((f) => f.type === FRAME.withdrawn);
    assert.equal(withdrawn.length, 2, "a's and b's announcements expired");
  });

  it('closes a connection that sends no hello in time, and one that goes idle', () => {
    const hub = makeHub();
    const link = new MemoryHubLink();
    hub.connect(0, link);
    hub.tick(4999);
    assert.equal(link.closedWith, null);
    hub.tick(5000);
    assert.ok(link.closedWith);
    assert.equal(hub.counters.refused.timeout, 1);
    const a = join(hub, 10_000);
    hub.tick(10_000 + 74_000);
    assert.equal(a.link.closedWith, null);
    hub.tick(10_000 + 75_000);
    assert.ok(a.link.closedWith);
    assert.equal(hub.clientCount, 0);
  });

  it('refuses connections beyond maxClients', () => {
    const hub = makeHub({ limits: { maxClients: 2 } });
    join(hub, 0); join(hub, 0);
    const third = new MemoryHubLink();
    hub.connect(0, third);
    assert.ok(third.closedWith);
    assert.equal(hub.counters.refused.full, 1);
  });

  it('never throws on arbitrary frames, before or after the hello', () => {
    const hub = makeHub();
    const a = join(hub, 0);
    fc.assert(fc.property(fc.uint8Array({ maxLength: 120 }), fc.boolean(), (bytes, fresh) => {
      const c = fresh ? hub.connect(0, new MemoryHubLink()) : a.client;
      hub.receive(1, c, bytes);
    }), { numRuns: 1000 });
    assert.ok(hub.has(a.id.publicKey), 'garbage from a proven client does not unregister it');
  });
});
