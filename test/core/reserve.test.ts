/**
 * Endpoint.reserveTransport: a caller that seals transport messages itself (the device's
 * sealing threads) gets counters, the index and the key, and the endpoint does the rest of
 * what `send` does. Checked against `send` on a twin endpoint built from the same seeds.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { REJECT_AFTER_MESSAGES_HI, REJECT_AFTER_MESSAGES_LO, REKEY_AFTER_MESSAGES_HI } from '../../src/core/constants.ts';
import { MESSAGE_INITIATION, MESSAGE_TRANSPORT, paddedLength } from '../../src/core/messages.ts';
import { nodeCrypto as crypto } from '../../src/crypto/node.ts';
import { establishedPair, packet, packetNumber, pair } from '../support/pair.ts';

type Internals = { peers: Map<number, { current: { sendLo: number; sendHi: number } }> };

const established = establishedPair;

/** What a sealing thread does with a reservation: type 4, index, counter, padded plaintext, seal. */
function sealOwn(r: { remoteIndex: number; counterLo: number; counterHi: number; sendKey: Uint8Array }, i: number, plain: Uint8Array, mtu = 0): Uint8Array {
  const padded = paddedLength(plain.length, mtu);
  const d = new Uint8Array(16 + padded + 16);
  const v = new DataView(d.buffer);
  d[0] = MESSAGE_TRANSPORT;
  v.setUint32(4, r.remoteIndex, true);
  const lo = (r.counterLo + i) >>> 0;
  v.setUint32(8, lo, true);
  v.setUint32(12, r.counterHi + (r.counterLo + i > 0xffff_ffff ? 1 : 0), true);
  d.set(plain, 16);
  crypto.seal(crypto.aeadKey(r.sendKey), lo, v.getUint32(12, true), d.subarray(16, 16 + padded), new Uint8Array(0), d, 16);
  return d;
}

describe('Endpoint.reserveTransport', () => {
  it('puts the same bytes on the wire, with the same statistics and deadlines, as send', () => {
    const sizes = [64, 100, 1420, 8];
    const viaSend = established();
    for (const [i, size] of sizes.entries()) viaSend.a.endpoint.send(viaSend.sim.now, viaSend.aToB, packet(2, i, size));

    const own = established();
    const datagrams = sizes.map((size) => 16 + paddedLength(size, 0) + 16); // the pair has no MTU
    const r = own.a.endpoint.reserveTransport(own.sim.now, own.aToB, sizes.length, datagrams.reduce((x, y) => x + y, 0));
    assert.ok(r);
    const copy = { ...r, sendKey: r.sendKey.slice() };
    const sealed = sizes.map((size, i) => sealOwn(copy, i, packet(2, i, size)));

    assert.deepEqual(sealed, viaSend.wire, 'byte for byte what send transmits');
    const [x, y] = [viaSend.a.endpoint, own.a.endpoint];
    assert.deepEqual(y.peerStats(own.aToB), x.peerStats(viaSend.aToB));
    assert.equal(y.counters.dataPacketsSent, x.counters.dataPacketsSent);
    assert.equal(y.nextDeadline(), x.nextDeadline());
    assert.deepEqual(y.inspectPeer(own.aToB), x.inspectPeer(viaSend.aToB));

    // The peer opens them in order, and the next send carries on after the reserved counters.
    for (const d of sealed) own.b.endpoint.recv(own.sim.now, d, 'a');
    own.a.send(own.aToB, packet(3, 9));
    own.sim.run(100);
    assert.deepEqual(own.b.delivered.map((d) => packetNumber(d.data)), [0, 1, 2, 3, 9]);
    assert.equal(own.b.endpoint.counters.dropped.replay, 0);
  });

  it('refuses, changing nothing, when send would not send at once', () => {
    const fresh = pair();
    assert.equal(fresh.a.endpoint.reserveTransport(0, fresh.aToB, 1, 100), null, 'no session yet');
    assert.equal(fresh.a.endpoint.reserveTransport(0, 999, 1, 100), null, 'unknown peer');
    assert.equal(fresh.a.sentOfType(MESSAGE_INITIATION).length, 0, 'and no handshake is started');

    const p = established();
    assert.equal(p.a.endpoint.reserveTransport(p.sim.now, p.aToB, 0, 0), null, 'nothing to reserve');
    const before = p.a.endpoint.peerStats(p.aToB);
    const s = (p.a.endpoint as unknown as Internals).peers.get(p.aToB)!.current;
    s.sendHi = REJECT_AFTER_MESSAGES_HI;
    s.sendLo = REJECT_AFTER_MESSAGES_LO - 2;
    assert.equal(p.a.endpoint.reserveTransport(p.sim.now, p.aToB, 3, 300), null, 'the third counter would be REJECT_AFTER_MESSAGES');
    assert.deepEqual([s.sendLo, s.sendHi], [REJECT_AFTER_MESSAGES_LO - 2, REJECT_AFTER_MESSAGES_HI]);
    assert.deepEqual(p.a.endpoint.peerStats(p.aToB), before);
    const r = p.a.endpoint.reserveTransport(p.sim.now, p.aToB, 2, 200);
    assert.ok(r, 'the last two usable counters');
    assert.deepEqual([r.counterLo, r.counterHi], [REJECT_AFTER_MESSAGES_LO - 2, REJECT_AFTER_MESSAGES_HI]);
    assert.equal(p.a.endpoint.reserveTransport(p.sim.now, p.aToB, 1, 100), null, 'none left');

    // Packets waiting for a handshake go first: a reservation would overtake them.
    const q = established();
    const qs = (q.a.endpoint as unknown as Internals).peers.get(q.aToB)!.current;
    qs.sendHi = REJECT_AFTER_MESSAGES_HI;
    qs.sendLo = REJECT_AFTER_MESSAGES_LO;
    assert.equal(q.a.endpoint.send(q.sim.now, q.aToB, packet(4, 1)), 'queued');
    qs.sendHi = 0; // usable again, but a packet waits
    assert.equal(q.a.endpoint.reserveTransport(q.sim.now, q.aToB, 1, 100), null);
  });

  it('carries the low counter half into the high half', () => {
    const p = established();
    const s = (p.a.endpoint as unknown as Internals).peers.get(p.aToB)!.current;
    s.sendLo = 0xffff_fffe;
    const r = p.a.endpoint.reserveTransport(p.sim.now, p.aToB, 3, 300);
    assert.ok(r);
    assert.deepEqual([r.counterLo, r.counterHi], [0xffff_fffe, 0]);
    assert.deepEqual([s.sendLo, s.sendHi], [1, 1]);
  });

  it('asks for a rekey past REKEY_AFTER_MESSAGES, as send does', () => {
    const p = established();
    p.sim.run(6000); // past the REKEY_TIMEOUT rate limit of the first initiation
    const s = (p.a.endpoint as unknown as Internals).peers.get(p.aToB)!.current;
    s.sendHi = REKEY_AFTER_MESSAGES_HI;
    const inits = p.a.sentOfType(MESSAGE_INITIATION).length;
    assert.ok(p.a.endpoint.reserveTransport(p.sim.now, p.aToB, 1, 100));
    assert.equal(p.a.sentOfType(MESSAGE_INITIATION).length, inits + 1);
  });
});
