/**
 * The endpoint's configuration and inspection API, and how it answers calls about peers that do
 * not exist: configuration errors throw a ConfigError with a code and change nothing; packet
 * calls for unknown peers do nothing and are counted.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Simulation, packet, pair } from '../support/pair.ts';
import { MESSAGE_INITIATION, MESSAGE_TRANSPORT } from '../../src/core/messages.ts';
import { REJECT_AFTER_TIME, REKEY_TIMEOUT, REKEY_TIMEOUT_JITTER_MAX } from '../../src/core/constants.ts';

describe('endpoint configuration', () => {
  it('refuses bad keys and keepalive intervals with a code, changing nothing', () => {
    const { sim, a, b, aToB } = pair();
    const ep = a.endpoint;
    assert.throws(() => ep.setPrivateKey(new Uint8Array(31)), { code: 'ERR_KEY_LENGTH', message: 'private key must be 32 bytes' });
    assert.deepEqual(ep.publicKey, a.publicKey);
    assert.throws(() => ep.addPeer({ publicKey: a.publicKey }, 0), { code: 'ERR_PEER_IS_SELF' });
    assert.throws(() => ep.addPeer({ publicKey: new Uint8Array(32).fill(1), presharedKey: new Uint8Array(16) }, 0),
      { code: 'ERR_KEY_LENGTH', message: 'preshared key must be 32 bytes' });
    assert.throws(() => ep.addPeer({ publicKey: 'x' as unknown as Uint8Array }, 0), { code: 'ERR_KEY_LENGTH', message: 'public key must be 32 bytes' });
    for (const bad of [-1, 1.5, 65536, NaN]) {
      assert.throws(() => ep.updatePeer(aToB, { persistentKeepalive: bad }, 0), { code: 'ERR_KEEPALIVE' }, String(bad));
    }
    assert.throws(() => ep.updatePeer(99, {}, 0), { code: 'ERR_NO_PEER', message: 'no peer with id 99' });
    assert.throws(() => ep.peerStats(99), { code: 'ERR_NO_PEER' });
    assert.throws(() => ep.inspectPeer(99), { code: 'ERR_NO_PEER' });
    // updatePeer is all or nothing: a good preshared key is not applied with a bad interval.
    assert.throws(() => ep.updatePeer(aToB, { presharedKey: new Uint8Array(32).fill(4), persistentKeepalive: -1 }, 0), { code: 'ERR_KEEPALIVE' });
    assert.throws(() => ep.addPeer({ publicKey: new Uint8Array(32).fill(2), persistentKeepalive: 1.5 }, 0), { code: 'ERR_KEEPALIVE' });
    ep.updatePeer(aToB, { persistentKeepalive: 65535 }, 0);
    assert.equal(ep.inspectPeer(aToB).persistentKeepalive, 65535);
    assert.equal(ep.peerCount, 1, 'the peer that was being added is not there');
    assert.deepEqual([...ep.peerIds()], [aToB]);
    assert.equal(ep.peerIdByKey(b.publicKey), aToB);
    assert.equal(ep.peerIdByKey(new Uint8Array(32).fill(1)), undefined);
    // The preshared key is still the one both sides agreed on (none): the handshake works.
    ep.updatePeer(aToB, { persistentKeepalive: 0 }, 0);
    a.send(aToB, packet(1, 0));
    sim.run(50);
    assert.equal(b.delivered.length, 1);
  });

  it('setting the same private key again keeps the sessions; clearing it stops handshakes', () => {
    const { sim, a, b, aToB, bToA } = pair();
    a.send(aToB, packet(1, 0));
    sim.run(50);
    a.endpoint.setPrivateKey(a.privateKey.slice());
    assert.ok(a.endpoint.inspectPeer(aToB).current, 'same key: session kept');
    a.endpoint.setPrivateKey(null);
    assert.equal(a.endpoint.publicKey, null);
    assert.equal(a.endpoint.inspectPeer(aToB).current, null, 'no key: sessions gone');
    sim.run(REKEY_TIMEOUT);
    b.endpoint.initiateHandshake(sim.now, bToA);
    sim.run(50);
    assert.equal(a.endpoint.counters.dropped.noPrivateKey, 1, "b's initiation dropped and counted");
    // An all-zero key is no key.
    a.endpoint.setPrivateKey(new Uint8Array(32));
    assert.equal(a.endpoint.publicKey, null);
    // Back to the old key: everything works again.
    a.endpoint.setPrivateKey(a.privateKey);
    assert.deepEqual(a.endpoint.publicKey, a.publicKey);
    a.send(aToB, packet(1, 1));
    sim.run(REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX + 100);
    assert.equal(b.delivered.length, 2);
  });

  it('a new private key re-keys mac1: initiations made for the old public key fail mac1', () => {
    const { sim, a, b, aToB } = pair();
    const toB: Uint8Array[] = [];
    const transmit = sim.transmit.bind(sim);
    sim.transmit = (from, to, d) => { if (to === 'b') toB.push(d.slice()); transmit(from, to, d); };
    b.endpoint.setPrivateKey(new Uint8Array(32).fill(3));
    a.send(aToB, packet(1, 0));
    sim.run(50);
    assert.equal(toB[0]![0], MESSAGE_INITIATION);
    assert.equal(b.endpoint.counters.dropped.mac1, 1);
  });

  it('turning persistent keepalive on arms it at once, changing the interval does not, 0 disarms it', () => {
    const { sim, a, aToB } = pair();
    a.endpoint.updatePeer(aToB, { persistentKeepalive: 25 }, 1000);
    assert.equal(a.endpoint.inspectPeer(aToB).timers.persistentKeepalive, 1000);
    a.endpoint.updatePeer(aToB, { persistentKeepalive: 30 }, 2000);
    assert.equal(a.endpoint.inspectPeer(aToB).timers.persistentKeepalive, 1000, 'already on: unchanged');
    a.endpoint.updatePeer(aToB, { persistentKeepalive: 0 }, 3000);
    assert.equal(a.endpoint.inspectPeer(aToB).timers.persistentKeepalive, Infinity);
    assert.equal(a.endpoint.nextDeadline() <= 1000, true, 'the cached deadline may be early, never late');
    void sim;
  });

  it('a preshared key set to null is no preshared key', () => {
    const psk = new Uint8Array(32).fill(9);
    const { sim, a, b, aToB, bToA } = pair({ psk });
    a.endpoint.updatePeer(aToB, { presharedKey: null }, 0);
    b.endpoint.updatePeer(bToA, { presharedKey: new Uint8Array(32) }, 0);
    a.send(aToB, packet(1, 0));
    sim.run(50);
    assert.equal(b.delivered.length, 1);
  });
});

describe('calls about unknown peers and indexes', () => {
  it('send, initiateHandshake, keepalive and removePeer do nothing for an unknown peer', () => {
    const { sim, a } = pair();
    assert.equal(a.endpoint.send(0, 99, packet(1, 0)), 'dropped');
    assert.equal(a.endpoint.counters.dropped.noSession, 1);
    a.endpoint.initiateHandshake(0, 99);
    a.endpoint.keepalive(0, 99);
    a.endpoint.removePeer(99);
    assert.equal(a.sent.length, 0);
    assert.equal(a.endpoint.peerCount, 1);
    assert.equal(a.endpoint.nextDeadline(), Infinity);
    void sim;
  });

  it('counts every datagram and drops malformed ones, unknown indexes and stray replies by reason', () => {
    const { a } = pair();
    const ep = a.endpoint;
    assert.equal(ep.recv(0, new Uint8Array(3), 'x'), 'dropped');
    assert.equal(ep.counters.dropped.malformed, 1);
    const transport = new Uint8Array(32);
    transport[0] = MESSAGE_TRANSPORT;
    transport[4] = 7;
    assert.equal(ep.recv(0, transport, 'x'), 'dropped');
    assert.equal(ep.counters.dropped.unknownIndex, 1);
    const cookie = new Uint8Array(64);
    cookie[0] = 3;
    assert.equal(ep.recv(0, cookie, 'x'), 'dropped');
    assert.equal(ep.counters.dropped.unexpectedCookie, 1);
    assert.equal(ep.counters.datagramsReceived, 3);
    assert.equal(ep.counters.cookieRepliesReceived, 0);
  });

  it('inspectPeer shows the send counter of each session as one number', () => {
    const { sim, a, aToB } = pair();
    const s = new Simulation();
    void s;
    for (let i = 0; i < 3; i++) a.send(aToB, packet(1, i));
    sim.run(50);
    const cur = a.endpoint.inspectPeer(aToB).current!;
    assert.equal(cur.sendCounter, 3);
    assert.equal(a.endpoint.inspectPeer(aToB).queued, 0);
    assert.equal(a.endpoint.inspectPeer(aToB).handshakeStage, 'zeroed');
  });
});

describe('receive edges', () => {
  it('a response reaching an endpoint whose key was just cleared is dropped as noPrivateKey', () => {
    const { sim, a, aToB } = pair();
    sim.cut.add('b>a');
    const toA: Uint8Array[] = [];
    const transmit = sim.transmit.bind(sim);
    sim.transmit = (from, to, d) => { if (to === 'a') toA.push(d.slice()); transmit(from, to, d); };
    a.endpoint.initiateHandshake(sim.now, aToB);
    sim.run(50);
    assert.equal(toA.length, 1, "b's response, held back");
    a.endpoint.setPrivateKey(null);
    assert.equal(a.endpoint.recv(sim.now, toA[0]!, 'b'), 'dropped');
    assert.equal(a.endpoint.counters.dropped.noPrivateKey, 1);
    assert.equal(a.endpoint.counters.dropped.unexpectedResponse, 0);
  });

  it('a key change forgets pending handshakes and their indexes', () => {
    const { sim, a, aToB } = pair();
    sim.cut.add('a>b');
    a.send(aToB, packet(1, 0));
    assert.equal(a.endpoint.liveIndexes, 1);
    assert.equal(a.endpoint.inspectPeer(aToB).handshakeStage, 'initiationCreated');
    a.endpoint.setPrivateKey(new Uint8Array(32).fill(8));
    assert.equal(a.endpoint.liveIndexes, 0);
    assert.equal(a.endpoint.inspectPeer(aToB).handshakeStage, 'zeroed');
  });

  it('transport naming a pending handshake, or a session at its expiry instant, is dropped', () => {
    const { sim, a, b, aToB, bToA } = pair();
    const toB: Uint8Array[] = [];
    const transmit = sim.transmit.bind(sim);
    sim.transmit = (from, to, d) => { if (to === 'b') toB.push(d.slice()); transmit(from, to, d); };
    a.send(aToB, packet(1, 0));
    sim.run(50);
    const data = toB.find((d) => d[0] === MESSAGE_TRANSPORT)!;
    // b's pending handshake index (b initiates; a's answer is cut).
    sim.cut.add('a>b');
    sim.run(REKEY_TIMEOUT);
    b.endpoint.initiateHandshake(sim.now, bToA);
    const forged = data.slice();
    const hs = (b.endpoint as unknown as { peers: Map<number, { handshake: { localIndex: number } }> }).peers.get(bToA)!.handshake;
    new DataView(forged.buffer).setUint32(4, hs.localIndex, true);
    assert.equal(b.endpoint.recv(sim.now, forged, 'a'), 'dropped');
    assert.equal(b.endpoint.counters.dropped.unknownIndex, 1, 'a handshake index is not a session');
    // A fresh packet on the session, arriving at the instant the session expires (before tick).
    sim.cut.delete('a>b');
    const expiresAt = b.endpoint.inspectPeer(bToA).current!.created + REJECT_AFTER_TIME;
    a.send(aToB, packet(1, 1));
    const late = toB.at(-1)!;
    assert.equal(b.endpoint.recv(expiresAt, late.slice(), 'a'), 'dropped');
    assert.equal(b.endpoint.counters.dropped.expiredSession, 1);
    assert.equal(b.endpoint.recv(expiresAt - 1, late, 'a'), 'data', 'one millisecond earlier it is accepted');
  });

  it('carries packets larger than the send buffer it starts with', () => {
    const { sim, a, b, aToB } = pair();
    for (const size of [3000, 9000, 2000]) a.send(aToB, packet(1, size, size));
    sim.run(50);
    assert.deepEqual(b.delivered.map((d) => d.data.length), [3008, 9008, 2000]);
    assert.deepEqual(b.delivered.map((d) => d.data.subarray(0, 8)), [3000, 9000, 2000].map((n) => packet(1, n, 8)));
  });
});

describe('padding', () => {
  it("pads with zeros, never with the bytes of an earlier, longer packet", () => {
    const { sim, a, b, aToB } = pair();
    a.send(aToB, new Uint8Array(100).fill(0xff));
    a.send(aToB, Uint8Array.of(0x45));
    sim.run(50);
    assert.deepEqual([...b.delivered[1]!.data], [0x45, ...new Array<number>(15).fill(0)]);
  });
});
