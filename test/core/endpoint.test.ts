/**
 * Scenario tests of the endpoint on a virtual wire with a virtual clock (see test/support/pair.ts).
 * Each step says what the protocol should do; times are whitepaper constants.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PERFECT, Simulation, packet, packetNumber, pair } from '../support/pair.ts';
import {
  KEEPALIVE_TIMEOUT, REJECT_AFTER_TIME, REKEY_AFTER_TIME, REKEY_ATTEMPT_TIME, REKEY_TIMEOUT, REKEY_TIMEOUT_JITTER_MAX,
  ZERO_KEY_MATERIAL_AFTER, REKEY_AFTER_MESSAGES_HI, REJECT_AFTER_MESSAGES_HI, REJECT_AFTER_MESSAGES_LO,
} from '../../src/core/constants.ts';
import { portableCrypto } from '../../src/crypto/portable.ts';
import { MESSAGE_COOKIE_REPLY, MESSAGE_INITIATION, MESSAGE_RESPONSE, MESSAGE_TRANSPORT } from '../../src/core/messages.ts';

describe('handshake and data', () => {
  it('completes a handshake on first send and carries data both ways', () => {
    const { sim, a, b, aToB, bToA } = pair();
    // a has no session: the packet waits while an initiation goes out.
    assert.equal(a.endpoint.send(sim.now, aToB, packet(1, 0)), 'queued');
    assert.equal(a.sentOfType(MESSAGE_INITIATION).length, 1);
    sim.run(100);
    // b answered, a completed and flushed the packet, which confirmed b's session.
    assert.equal(b.sentOfType(MESSAGE_RESPONSE).length, 1);
    assert.equal(b.delivered.length, 1);
    assert.deepEqual(b.delivered[0]!.data, packet(1, 0));
    assert.equal(a.eventsOf('handshakeCompleted').length, 1);
    assert.equal(b.eventsOf('handshakeCompleted').length, 1);
    const sa = a.endpoint.inspectPeer(aToB), sb = b.endpoint.inspectPeer(bToA);
    assert.ok(sa.current && sb.current, 'sa.current && sb.current');
    assert.equal(sa.current.isInitiator, true);
    assert.equal(sb.current.isInitiator, false);
    assert.equal(sa.current.remoteIndex, sb.current.localIndex);
    assert.equal(sb.current.remoteIndex, sa.current.localIndex);
    // b answers straight away over the confirmed session: no new handshake.
    b.send(bToA, packet(2, 0));
    sim.run(100);
    assert.equal(a.delivered.length, 1);
    assert.deepEqual(a.delivered[0]!.data, packet(2, 0));
    assert.equal(b.sentOfType(MESSAGE_INITIATION).length, 0);
    // Byte counters cover handshake and transport datagrams (as wg show reports).
    assert.equal(a.endpoint.peerStats(aToB).txBytes, 148 + 96);
    assert.equal(b.endpoint.peerStats(bToA).rxBytes, 148 + 96);
    assert.ok(a.endpoint.peerStats(aToB).lastHandshakeWall > 1_700_000_000_000, 'a.endpoint.peerStats(aToB).lastHandshakeWall > 1_700_000_000_000');
  });

  it('interoperates across providers: node on one side, portable (@noble only) on the other', () => {
    const sim = new Simulation();
    const a = sim.node('a', 1), b = sim.node('b', 2, { crypto: portableCrypto });
    const ab = a.addPeer(b, { presharedKey: new Uint8Array(32).fill(5) });
    const ba = b.addPeer(a, { presharedKey: new Uint8Array(32).fill(5) });
    b.send(ba, packet(2, 0));
    sim.run(100);
    a.send(ab, packet(1, 0));
    sim.run(100);
    assert.deepEqual(a.delivered.map((d) => d.data), [packet(2, 0)]);
    assert.deepEqual(b.delivered.map((d) => d.data), [packet(1, 0)]);
    // A cookie round trip crosses providers too (XChaCha20-Poly1305, keyed BLAKE2s).
    a.endpoint.setUnderLoad(true);
    sim.run(REJECT_AFTER_TIME);
    b.send(ba, packet(2, 1));
    sim.run(2 * (REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX));
    assert.equal(b.endpoint.counters.cookieRepliesReceived, 1);
    assert.equal(a.delivered.length, 2);
  });

  it('pads plaintext to a multiple of 16 and capped by the MTU', () => {
    const sim = new Simulation();
    const a = sim.node('a', 1, { mtu: 1420 });
    const b = sim.node('b', 2);
    const ab = a.addPeer(b);
    b.addPeer(a);
    a.send(ab, new Uint8Array(1));
    a.send(ab, new Uint8Array(17));
    a.send(ab, new Uint8Array(1419));
    a.send(ab, new Uint8Array(1500));
    sim.run(100);
    assert.deepEqual(b.delivered.map((d) => d.data.length), [16, 32, 1420, 1500]);
    assert.deepEqual(a.sentOfType(MESSAGE_TRANSPORT).map((s) => s.length), [48, 64, 1452, 1532]);
  });

  it('queues at most 1024 packets per peer, dropping the oldest', () => {
    const { sim, a, b, aToB } = pair();
    sim.cut.add('a>b');
    for (let i = 0; i < 1100; i++) a.send(aToB, packet(1, i));
    assert.equal(a.endpoint.inspectPeer(aToB).queued, 1024);
    assert.equal(a.endpoint.peerStats(aToB).queueDrops, 76);
    sim.cut.clear();
    sim.run(REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX + 100);
    assert.equal(b.delivered.length, 1024);
    assert.equal(packetNumber(b.delivered[0]!.data), 76);
  });
});

describe('timers', () => {
  it('rekeys after REKEY_AFTER_TIME without losing a packet', () => {
    const { sim, a, b, aToB, bToA } = pair();
    const first = () => a.endpoint.inspectPeer(aToB).current!.localIndex;
    a.send(aToB, packet(1, 0));
    sim.run(50);
    const index0 = first();
    const created0 = a.endpoint.inspectPeer(aToB).current!.created;
    for (let i = 1; i <= 150; i++) {
      sim.runUntil(i * 1000);
      a.send(aToB, packet(1, i));
      b.send(bToA, packet(2, i));
    }
    sim.run(100);
    // The initiator started a new handshake when it sent on a session REKEY_AFTER_TIME old.
    const initiations = a.sentOfType(MESSAGE_INITIATION);
    assert.equal(initiations.length, 2);
    assert.ok(initiations[1]!.at - created0 >= REKEY_AFTER_TIME && initiations[1]!.at - created0 < REKEY_AFTER_TIME + 1000, 'initiations[1]!.at - created0 >= REKEY_AFTER_TIME && initiations[1]!.at - created0 < REKEY_AFTER_TIME + 1000');
    assert.notEqual(first(), index0);
    assert.equal(b.sentOfType(MESSAGE_INITIATION).length, 0);
    // Every packet arrived, in order, both ways.
    assert.deepEqual(b.delivered.map((d) => packetNumber(d.data)), Array.from({ length: 151 }, (_, i) => i));
    assert.deepEqual(a.delivered.map((d) => packetNumber(d.data)), Array.from({ length: 150 }, (_, i) => i + 1));
  });

  it('expires a session REJECT_AFTER_TIME after it was made and erases it', () => {
    const { sim, a, b, aToB, bToA } = pair();
    a.send(aToB, packet(1, 0));
    sim.run(50);
    const created = a.endpoint.inspectPeer(aToB).current!.created;
    sim.runUntil(created + REJECT_AFTER_TIME - 1);
    assert.ok(a.endpoint.inspectPeer(aToB).current, 'a.endpoint.inspectPeer(aToB).current');
    assert.equal(a.eventsOf('sessionExpired').length, 0);
    sim.runUntil(created + REJECT_AFTER_TIME + 10);
    assert.equal(a.endpoint.inspectPeer(aToB).current, null);
    assert.equal(b.endpoint.inspectPeer(bToA).current, null);
    assert.equal(a.eventsOf('sessionExpired')[0]!.at, created + REJECT_AFTER_TIME);
    assert.equal(b.eventsOf('sessionExpired').length, 1);
    // Sending again needs (and gets) a fresh handshake.
    a.send(aToB, packet(1, 1));
    sim.run(50);
    assert.equal(a.sentOfType(MESSAGE_INITIATION).length, 2);
    assert.equal(b.delivered.length, 2);
  });

  it('retries the handshake every REKEY_TIMEOUT plus jitter and gives up after REKEY_ATTEMPT_TIME', () => {
    const { sim, a, aToB } = pair();
    sim.cut.add('a>b');
    a.send(aToB, packet(1, 0));
    sim.run(REKEY_ATTEMPT_TIME + 30_000);
    const times = a.sentOfType(MESSAGE_INITIATION).map((s) => s.at);
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    for (const gap of gaps) assert.ok(gap >= REKEY_TIMEOUT && gap <= REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX, `gap ${gap}`);
    assert.ok(new Set(gaps).size > 3, 'retries are jittered');
    const failed = a.eventsOf('handshakeFailed');
    assert.equal(failed.length, 1);
    assert.ok(failed[0]!.at >= REKEY_ATTEMPT_TIME && failed[0]!.at <= REKEY_ATTEMPT_TIME + 2 * (REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX), 'failed[0]!.at >= REKEY_ATTEMPT_TIME && failed[0]!.at <= REKEY_ATTEMPT_TIME + 2 * (REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX)');
    assert.equal(times.length, REKEY_ATTEMPT_TIME / REKEY_TIMEOUT + 1);
    assert.ok(times.at(-1)! < failed[0]!.at, 'times.at(-1)! < failed[0]!.at');
    // The waiting packet was dropped and nothing more is sent.
    assert.equal(a.endpoint.inspectPeer(aToB).queued, 0);
    const count = a.sent.length;
    sim.run(60_000);
    assert.equal(a.sent.length, count);
    // All key material goes 3 × REJECT_AFTER_TIME after giving up.
    sim.run(ZERO_KEY_MATERIAL_AFTER);
    assert.equal(a.eventsOf('keysZeroed').length, 1);
  });

  it('sends a keepalive KEEPALIVE_TIMEOUT after receiving data it did not answer', () => {
    const { sim, a, b, aToB, bToA } = pair();
    a.send(aToB, packet(1, 0));
    sim.run(50);
    const received = b.delivered[0]!.at;
    sim.run(KEEPALIVE_TIMEOUT + 1000);
    assert.equal(b.endpoint.counters.keepalivesSent, 1);
    const ka = b.sentOfType(MESSAGE_TRANSPORT).filter((s) => s.length === 32);
    assert.equal(ka.length, 1);
    assert.equal(ka[0]!.at, received + KEEPALIVE_TIMEOUT);
    assert.equal(a.endpoint.counters.keepalivesReceived, 1);
    // A reply with data cancels the keepalive.
    a.send(aToB, packet(1, 1));
    sim.run(50);
    b.send(bToA, packet(2, 0));
    sim.run(KEEPALIVE_TIMEOUT + 1000);
    assert.equal(b.endpoint.counters.keepalivesSent, 1);
  });

  it('starts a new handshake when sent data gets no answer for KEEPALIVE_TIMEOUT + REKEY_TIMEOUT', () => {
    const { sim, a, aToB } = pair();
    a.send(aToB, packet(1, 0));
    sim.run(50);
    sim.cut.add('b>a'); // b's keepalive never arrives
    const sentAt = sim.now;
    a.send(aToB, packet(1, 1));
    sim.run(KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX + 10);
    const inits = a.sentOfType(MESSAGE_INITIATION);
    assert.equal(inits.length, 2);
    assert.ok(inits[1]!.at >= sentAt + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT, 'inits[1]!.at >= sentAt + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT');
  });

  it('sends persistent keepalives at the configured interval', () => {
    const sim = new Simulation();
    const a = sim.node('a', 1), b = sim.node('b', 2);
    const ab = a.addPeer(b, { persistentKeepalive: 25 });
    b.addPeer(a);
    // Turning it on brings the tunnel up at once (a keepalive needs a handshake).
    sim.run(100);
    assert.equal(a.eventsOf('handshakeCompleted').length, 1);
    const start = sim.now;
    sim.run(100_000);
    const kas = a.sentOfType(MESSAGE_TRANSPORT).filter((s) => s.length === 32 && s.at > start);
    assert.equal(kas.length, 4);
    for (let i = 1; i < kas.length; i++) assert.equal(kas[i]!.at - kas[i - 1]!.at, 25_000);
    // Turning it off stops them.
    a.endpoint.updatePeer(ab, { persistentKeepalive: 0 }, sim.now);
    const before = a.sent.length;
    sim.run(100_000);
    assert.equal(a.sentOfType(MESSAGE_TRANSPORT).filter((s) => s.at > sim.now - 100_000).length, 0);
    assert.ok(a.sent.length - before <= 1, 'a.sent.length - before <= 1');
  });

  it('resolves simultaneous initiations from both sides', () => {
    const { sim, a, b, aToB, bToA } = pair();
    a.send(aToB, packet(1, 0));
    b.send(bToA, packet(2, 0));
    sim.run(3 * REKEY_TIMEOUT);
    assert.ok(a.endpoint.inspectPeer(aToB).current, 'a.endpoint.inspectPeer(aToB).current');
    assert.ok(b.endpoint.inspectPeer(bToA).current, 'b.endpoint.inspectPeer(bToA).current');
    assert.deepEqual(a.delivered.map((d) => packetNumber(d.data)), [0]);
    assert.deepEqual(b.delivered.map((d) => packetNumber(d.data)), [0]);
    a.send(aToB, packet(1, 1));
    b.send(bToA, packet(2, 1));
    sim.run(100);
    assert.equal(a.delivered.length, 2);
    assert.equal(b.delivered.length, 2);
  });

  it('the initiator renews the session when only the responder sends data', () => {
    const { sim, a, b, aToB, bToA } = pair();
    a.send(aToB, packet(1, 0));
    sim.run(50);
    const created = a.endpoint.inspectPeer(aToB).current!.created;
    for (let t = 1000; t < 200_000; t += 1000) {
      sim.runUntil(t);
      b.send(bToA, packet(2, t / 1000));
    }
    sim.run(100);
    // a's passive keepalives carry the time-based rekey (only the initiator rekeys on time).
    const inits = a.sentOfType(MESSAGE_INITIATION);
    assert.equal(inits.length, 2);
    assert.ok(inits[1]!.at - created >= REKEY_AFTER_TIME && inits[1]!.at - created < REKEY_AFTER_TIME + KEEPALIVE_TIMEOUT, 'rekey window');
    assert.equal(b.sentOfType(MESSAGE_INITIATION).length, 0);
    assert.equal(a.delivered.length, 199);
  });

  it('the initiator starts a handshake on receiving data on a session older than 165 s', () => {
    const { sim, a, b, aToB, bToA } = pair();
    a.send(aToB, packet(1, 0));
    sim.run(50);
    const created = a.endpoint.inspectPeer(aToB).current!.created;
    // Idle (b's one keepalive at +10 s aside) until just past REJECT − KEEPALIVE − REKEY_TIMEOUT.
    sim.runUntil(created + REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT + 500);
    assert.equal(a.sentOfType(MESSAGE_INITIATION).length, 1);
    b.send(bToA, packet(2, 0));
    sim.run(20);
    const inits = a.sentOfType(MESSAGE_INITIATION);
    assert.equal(inits.length, 2);
    assert.equal(inits[1]!.at, a.delivered[0]!.at);
    // The new session arrives before the old one is rejected.
    sim.run(100);
    assert.ok(a.endpoint.inspectPeer(aToB).current!.created > created, 'new session');
  });

});

describe('message counter limits', () => {
  type Internals = { peers: Map<number, { current: { sendLo: number; sendHi: number } }> };
  it('rekeys after REKEY_AFTER_MESSAGES and never sends at REJECT_AFTER_MESSAGES', () => {
    const { sim, a, b, aToB, bToA } = pair();
    a.send(aToB, packet(1, 0));
    sim.run(50);
    // Fast-forward b's (the responder's) send counter to 2^60: its next send asks for a rekey.
    sim.run(REKEY_TIMEOUT); // b answered a handshake just now; initiations are rate-limited
    const bSession = (b.endpoint as unknown as Internals).peers.get(bToA)!.current;
    bSession.sendHi = REKEY_AFTER_MESSAGES_HI;
    b.send(bToA, packet(2, 0));
    assert.equal(b.sentOfType(MESSAGE_INITIATION).length, 1);
    sim.run(100);
    assert.equal(a.delivered.length, 1, 'the packet itself still went out');
    assert.notEqual(b.endpoint.inspectPeer(bToA).current!.localIndex, undefined);
    assert.equal(b.endpoint.inspectPeer(bToA).current!.isInitiator, true, 'b now holds a session it initiated');
    // At REJECT_AFTER_MESSAGES − 1 one last packet goes out; then the session is unusable and
    // packets wait for a new handshake (rate-limited to one per REKEY_TIMEOUT).
    const s = (b.endpoint as unknown as Internals).peers.get(bToA)!.current;
    s.sendHi = REJECT_AFTER_MESSAGES_HI;
    s.sendLo = REJECT_AFTER_MESSAGES_LO - 1;
    assert.equal(b.endpoint.send(sim.now, bToA, packet(2, 1)), 'sent');
    assert.equal(b.endpoint.send(sim.now, bToA, packet(2, 2)), 'queued');
    sim.run(REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX + 100);
    assert.deepEqual(a.delivered.map((d) => packetNumber(d.data)), [0, 1, 2]);
  });
});

describe('peers change while traffic flows', () => {
  it('keeps working when the preshared key is updated on both sides', () => {
    const psk1 = new Uint8Array(32).fill(7), psk2 = new Uint8Array(32).fill(9);
    const { sim, a, b, aToB, bToA } = pair({ psk: psk1 });
    a.send(aToB, packet(1, 0));
    sim.run(50);
    assert.equal(b.delivered.length, 1);
    a.endpoint.updatePeer(aToB, { presharedKey: psk2 }, sim.now);
    b.endpoint.updatePeer(bToA, { presharedKey: psk2 }, sim.now);
    // The current session goes on; the next handshake uses the new key.
    a.send(aToB, packet(1, 1));
    sim.run(50);
    assert.equal(b.delivered.length, 2);
    sim.run(REJECT_AFTER_TIME);
    a.send(aToB, packet(1, 2));
    sim.run(100);
    assert.equal(b.delivered.length, 3);
  });

  it('fails the handshake when preshared keys differ', () => {
    const { sim, a, b, aToB, bToA } = pair();
    b.endpoint.updatePeer(bToA, { presharedKey: new Uint8Array(32).fill(1) }, sim.now);
    a.send(aToB, packet(1, 0));
    sim.run(1000);
    assert.equal(b.delivered.length, 0);
    assert.equal(a.endpoint.inspectPeer(aToB).current, null);
    assert.equal(a.endpoint.counters.dropped.unexpectedResponse, 1);
  });

  it('drops traffic for a removed peer and recovers when it is added back', () => {
    const { sim, a, b, aToB, bToA } = pair();
    a.send(aToB, packet(1, 0));
    sim.run(50);
    const liveBefore = b.endpoint.liveIndexes;
    b.endpoint.removePeer(bToA);
    assert.equal(b.endpoint.liveIndexes, liveBefore - 1);
    assert.equal(b.endpoint.peerCount, 0);
    a.send(aToB, packet(1, 1));
    sim.run(50);
    assert.equal(b.delivered.length, 1);
    assert.equal(b.endpoint.counters.dropped.unknownIndex, 1);
    const again = b.addPeer(a);
    // a notices nothing comes back and re-handshakes; b knows it again.
    for (let i = 2; i < 40; i++) { sim.run(1000); a.send(aToB, packet(1, i)); }
    sim.run(100);
    assert.ok(b.endpoint.inspectPeer(again).current, 'b.endpoint.inspectPeer(again).current');
    assert.ok(b.delivered.length > 20, 'b.delivered.length > 20');
    assert.equal(packetNumber(b.delivered.at(-1)!.data), 39);
  });

  it('removes a peer whose key equals a new private key of the interface, and rejects bad config', () => {
    const { sim, a, b, aToB } = pair();
    assert.throws(() => a.endpoint.addPeer({ publicKey: b.publicKey }, sim.now), { code: 'ERR_PEER_EXISTS' });
    assert.throws(() => a.endpoint.addPeer({ publicKey: new Uint8Array(31) }, sim.now), { code: 'ERR_KEY_LENGTH' });
    assert.throws(() => a.endpoint.updatePeer(aToB, { persistentKeepalive: 70000 }, sim.now), { code: 'ERR_KEEPALIVE' });
    assert.equal(a.endpoint.peerCount, 1);
    a.endpoint.setPrivateKey(b.privateKey);
    assert.equal(a.endpoint.peerCount, 0);
  });

  it('changing the private key expires sessions and handshakes then use the new key', () => {
    const { sim, a, b, aToB, bToA } = pair();
    a.send(aToB, packet(1, 0));
    sim.run(50);
    const fresh = new Uint8Array(32).fill(3);
    a.endpoint.setPrivateKey(fresh);
    assert.equal(a.endpoint.inspectPeer(aToB).current, null);
    // b still knows the old public key: a's handshakes now fail at b. (The first one waits
    // for REKEY_TIMEOUT after the last, as wireguard-go rate-limits initiations.)
    sim.run(REKEY_TIMEOUT);
    a.send(aToB, packet(1, 1));
    sim.run(100);
    assert.equal(b.delivered.length, 1);
    assert.ok(b.endpoint.counters.dropped.mac1 + b.endpoint.counters.dropped.unknownPeer >= 1, 'b.endpoint.counters.dropped.mac1 + b.endpoint.counters.dropped.unknownPeer >= 1');
    // Once b learns the new key, traffic resumes.
    b.endpoint.removePeer(bToA);
    const nb = b.endpoint.addPeer({ publicKey: a.endpoint.publicKey! }, sim.now);
    b.peerNames.set(nb, 'a');
    sim.run(REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX);
    assert.equal(b.delivered.length, 2);
  });
});

describe('cookies and under-load mode', () => {
  it('answers handshakes without mac2 with a cookie reply when under load, then accepts the retry', () => {
    const { sim, a, b, aToB, bToA } = pair();
    b.endpoint.setUnderLoad(true);
    a.send(aToB, packet(1, 0));
    sim.run(100);
    // b sent a cookie reply instead of a response; a stored the cookie.
    assert.equal(b.sentOfType(MESSAGE_COOKIE_REPLY).length, 1);
    assert.equal(b.sentOfType(MESSAGE_RESPONSE).length, 0);
    assert.equal(a.endpoint.counters.cookieRepliesReceived, 1);
    assert.equal(b.endpoint.counters.dropped.cookieRequired, 1);
    // The retry after REKEY_TIMEOUT carries mac2 and is answered.
    sim.run(REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX + 100);
    assert.equal(b.sentOfType(MESSAGE_RESPONSE).length, 1);
    assert.equal(b.delivered.length, 1);
    assert.ok(b.endpoint.inspectPeer(bToA).current, 'b.endpoint.inspectPeer(bToA).current');
    // Data is never subject to cookies.
    b.send(bToA, packet(2, 0));
    sim.run(50);
    assert.equal(a.delivered.length, 1);
  });

  it('also protects the responder side: a response without mac2 gets a cookie reply', () => {
    const { sim, a, b, aToB } = pair();
    a.endpoint.setUnderLoad(true);
    a.send(aToB, packet(1, 0));
    sim.run(100);
    assert.equal(a.sentOfType(MESSAGE_COOKIE_REPLY).length, 1);
    assert.equal(b.endpoint.counters.cookieRepliesReceived, 1);
    sim.run(3 * (REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX));
    assert.ok(a.endpoint.inspectPeer(aToB).current, 'a.endpoint.inspectPeer(aToB).current');
    assert.equal(b.delivered.length, 1);
  });

  it('engages automatically from the handshake rate and disengages after it falls', () => {
    const sim = new Simulation();
    const victim = sim.node('v', 1);
    const attacker = sim.node('x', 2);
    const good = sim.node('g', 3);
    victim.addPeer(good);
    const gv = good.addPeer(victim);
    // The attacker knows the victim's public key (so mac1 is valid) but is not a peer.
    const xv = attacker.addPeer(victim);
    for (let i = 0; i < 1500; i++) {
      attacker.endpoint.inspectPeer(xv); // keep ids alive
      (attacker.endpoint as unknown as { peers: Map<number, { handshake: { lastSentHandshake: number } }> })
        .peers.get(xv)!.handshake.lastSentHandshake = -Infinity;
      attacker.endpoint.initiateHandshake(sim.now, xv);
      sim.run(0.5);
    }
    assert.ok(victim.eventsOf('underLoad').some((e) => e.type === 'underLoad' && e.active), 'victim.eventsOf(\'underLoad\').some((e) => e.type === \'underLoad\' && e.active)');
    assert.ok(victim.endpoint.counters.cookieRepliesSent > 0, 'victim.endpoint.counters.cookieRepliesSent > 0');
    assert.ok(victim.endpoint.counters.dropped.cookieRequired > 0, 'victim.endpoint.counters.dropped.cookieRequired > 0');
    // A legitimate peer still gets through, via the cookie.
    good.send(gv, packet(3, 0));
    sim.run(2 * (REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX));
    assert.equal(victim.delivered.length, 1);
    assert.ok(victim.endpoint.isUnderLoad(sim.now) === false, 'victim.endpoint.isUnderLoad(sim.now) === false');
    assert.ok(victim.eventsOf('underLoad').some((e) => e.type === 'underLoad' && !e.active), 'victim.eventsOf(\'underLoad\').some((e) => e.type === \'underLoad\' && !e.active)');
  });
});

describe('replays and floods', () => {
  it('drops a replayed transport packet and a replayed initiation', () => {
    const sim = new Simulation({ conditions: PERFECT });
    const a = sim.node('a', 1), b = sim.node('b', 2);
    const ab = a.addPeer(b);
    b.addPeer(a);
    const captured: Uint8Array[] = [];
    const transmit = sim.transmit.bind(sim);
    sim.transmit = (from, to, d) => { if (from === 'a') captured.push(d.slice()); transmit(from, to, d); };
    a.send(ab, packet(1, 0));
    sim.run(100);
    const [init, data] = captured;
    assert.equal(b.endpoint.recv(sim.now, data!.slice(), 'a'), 'dropped');
    assert.equal(b.endpoint.counters.dropped.replay, 1);
    sim.run(1000);
    assert.equal(b.endpoint.recv(sim.now, init!.slice(), 'a'), 'dropped');
    assert.equal(b.endpoint.counters.dropped.replayedTimestamp, 1);
    assert.equal(b.delivered.length, 1);
  });

  it('accepts at most one initiation per peer per 20 ms, even with fresh timestamps', () => {
    // a's wall clock jumps a second per initiation, so every timestamp is new (TAI64N buckets
    // are ~16 ms) and only the 20 ms rule on b's monotonic clock can refuse one.
    const sim = new Simulation();
    const wall = { skew: 0 };
    const a = sim.node('a', 1, { wallClock: (now) => 1_700_000_000_000 + now + wall.skew });
    const b = sim.node('b', 2);
    const ab = a.addPeer(b);
    b.addPeer(a);
    const peers = (a.endpoint as unknown as { peers: Map<number, { handshake: { lastSentHandshake: number } }> }).peers;
    const initiate = (at: number) => {
      sim.runUntil(at);
      wall.skew += 1000;
      peers.get(ab)!.handshake.lastSentHandshake = -Infinity; // a's own REKEY_TIMEOUT limit
      a.endpoint.initiateHandshake(sim.now, ab);
    };
    initiate(0); // reaches b at 5
    initiate(14); // at 19: 14 ms after the accepted one
    initiate(20); // at 25: exactly 20 ms after it
    sim.run(50);
    assert.equal(a.sentOfType(MESSAGE_INITIATION).length, 3);
    assert.equal(b.endpoint.counters.dropped.floodedInitiation, 1);
    assert.equal(b.endpoint.counters.dropped.replayedTimestamp, 0);
    assert.deepEqual(b.sentOfType(MESSAGE_RESPONSE).map((s) => s.at), [5, 25]);
  });

  it('clears a pending handshake (index and chaining key) when the key material is zeroed', () => {
    const { sim, a, aToB } = pair();
    a.send(aToB, packet(1, 0));
    sim.run(50);
    const zeroAt = a.endpoint.inspectPeer(aToB).timers.zeroKeyMaterial;
    assert.ok(Number.isFinite(zeroAt), 'zeroing is armed by the session');
    sim.cut.add('a>b');
    // Long after the session expired, new data starts a handshake that is still pending
    // (its first retry is REKEY_TIMEOUT away) when the zeroing timer fires.
    sim.runUntil(zeroAt - 2000);
    a.send(aToB, packet(1, 1));
    const hs = (a.endpoint as unknown as { peers: Map<number, { handshake: { chainKey: Uint8Array | null } }> })
      .peers.get(aToB)!.handshake;
    const chainKey = hs.chainKey!;
    assert.equal(a.endpoint.inspectPeer(aToB).handshakeStage, 'initiationCreated');
    assert.equal(a.endpoint.liveIndexes, 1);
    assert.ok(chainKey.some((x) => x !== 0), 'a live chaining key');
    sim.runUntil(zeroAt);
    assert.deepEqual(a.eventsOf('keysZeroed').map((e) => e.at), [zeroAt]);
    assert.equal(a.endpoint.inspectPeer(aToB).handshakeStage, 'zeroed');
    assert.equal(a.endpoint.liveIndexes, 0);
    assert.ok(chainKey.every((x) => x === 0), 'the chaining key is zero');
  });
});
