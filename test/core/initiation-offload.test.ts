/**
 * Initiations computed elsewhere (EndpointIO.offloadInitiation → computeInitiation →
 * Endpoint.completeInitiation): the message is the one the endpoint would have made itself,
 * the handshake completes with it, and a result that a newer handshake superseded is dropped.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Endpoint } from '../../src/core/endpoint.ts';
import { computeInitiation } from '../../src/core/handshake.ts';
import type { InitiationJob, InitiationResult } from '../../src/core/handshake.ts';
import type { PeerId } from '../../src/core/peer.ts';
import { seededRng } from '../../src/core/rng.ts';
import { REKEY_TIMEOUT } from '../../src/core/constants.ts';
import { Initiation } from '../../src/core/messages.ts';
import { nodeCrypto } from '../../src/crypto/node.ts';

const WALL = (now: number): number => 1_700_000_000_000 + now;

interface Side {
  endpoint: Endpoint<string>;
  sent: Uint8Array[];
  delivered: Uint8Array[];
  jobs: InitiationJob[];
  /** What offloadInitiation answers; undefined: no offloadInitiation at all. */
  offload: boolean | undefined;
  peer: PeerId;
}

/** A copy of a job, as a worker gets one (the endpoint erases its own secrets after the call). */
function copyJob(j: InitiationJob): InitiationJob {
  return {
    peer: j.peer, token: j.token, localStatic: j.localStatic.slice(), remoteStatic: j.remoteStatic.slice(),
    staticStatic: j.staticStatic.slice(), ephemeral: j.ephemeral.slice(), timestamp: j.timestamp.slice(),
  };
}

function side(seed: number, privateKey: Uint8Array, offload: boolean | undefined, identifier?: string): Side {
  const s = { sent: [], delivered: [], jobs: [], offload, peer: 0 } as unknown as Side;
  s.endpoint = new Endpoint<string>({
    crypto: nodeCrypto,
    rng: seededRng(seed),
    privateKey,
    identifier,
    wallClock: WALL,
    io: {
      sendToPeer: (_p, d) => { s.sent.push(d.slice()); },
      sendToSource: () => {},
      deliver: (_p, packet) => { s.delivered.push(packet.slice()); },
      authenticated: () => {},
      sourceTag: () => new Uint8Array(6),
      ...(offload === undefined ? {} : {
        offloadInitiation: (job: InitiationJob) => {
          if (s.offload) s.jobs.push(copyJob(job));
          return s.offload === true;
        },
      }),
    },
  });
  return s;
}

function key(seed: number): Uint8Array {
  const k = new Uint8Array(32);
  seededRng(seed).fill(k);
  return k;
}

/** A offloads (or not, per `offload`), B computes its own; each knows the other. */
function pair(offload: boolean | undefined, seedA = 1): { a: Side; b: Side } {
  const ka = key(100), kb = key(200);
  const a = side(seedA, ka, offload);
  const b = side(2, kb, undefined);
  a.peer = a.endpoint.addPeer({ publicKey: nodeCrypto.x25519PrivateKey(kb).publicKey }, 0);
  b.peer = b.endpoint.addPeer({ publicKey: nodeCrypto.x25519PrivateKey(ka).publicKey }, 0);
  return { a, b };
}

function compute(job: InitiationJob): InitiationResult {
  const r = computeInitiation(nodeCrypto, job);
  assert.ok(r, 'the job computes');
  return r;
}

describe('initiations computed elsewhere', () => {
  it('sends nothing until the result comes, then the same bytes the endpoint would have sent', () => {
    const plain = pair(undefined, 7);
    plain.a.endpoint.initiateHandshake(10, plain.a.peer);
    assert.equal(plain.a.sent.length, 1);

    const { a } = pair(true, 7);
    a.endpoint.initiateHandshake(10, a.peer);
    assert.equal(a.sent.length, 0, 'computed elsewhere: not sent yet');
    assert.equal(a.jobs.length, 1);
    assert.equal(a.endpoint.counters.handshakeInitiationsSent, 0);
    const job = a.jobs[0]!;
    assert.notEqual(job.token, 0);
    assert.equal(job.timestamp.length, 12);
    assert.ok(a.endpoint.completeInitiation(12, compute(job)));
    assert.equal(a.sent.length, 1);
    assert.equal(a.endpoint.counters.handshakeInitiationsSent, 1);
    // The same seeded Rng draws the same ephemeral key, and the timestamp is taken when the
    // initiation was asked for: the same Noise part (e, s, timestamp). The sender index (and so
    // the MACs) differ: the retransmission jitter draws from the Rng before the index here.
    const noise = (m: Uint8Array): Uint8Array => m.subarray(Initiation.noiseStart, Initiation.noiseEnd);
    assert.deepEqual(noise(a.sent[0]!), noise(plain.a.sent[0]!));
    assert.equal(a.sent[0]![0], 1);
  });

  it('completes a handshake and carries data', () => {
    const { a, b } = pair(true);
    a.endpoint.initiateHandshake(0, a.peer);
    assert.ok(a.endpoint.completeInitiation(1, compute(a.jobs[0]!)));
    assert.equal(b.endpoint.recv(2, a.sent[0]!, 'a'), 'handshake');
    assert.equal(b.sent.length, 1, 'B answered');
    assert.equal(a.endpoint.recv(3, b.sent[0]!, 'b'), 'handshake');
    assert.equal(a.endpoint.counters.handshakesCompleted, 1);
    const packet = new Uint8Array(20);
    packet[0] = 0x45; packet[3] = 20;
    assert.equal(a.endpoint.send(4, a.peer, packet), 'sent');
    assert.equal(b.endpoint.recv(5, a.sent.at(-1)!, 'a'), 'data');
    assert.deepEqual(b.delivered[0]!.subarray(0, 20), packet);
  });

  it('holds the rate limit and the retransmission from when it was asked for', () => {
    const { a } = pair(true);
    a.endpoint.initiateHandshake(0, a.peer);
    a.endpoint.initiateHandshake(100, a.peer);
    assert.equal(a.jobs.length, 1, 'a second initiation within REKEY_TIMEOUT waits');
    assert.ok(a.endpoint.nextDeadline() >= REKEY_TIMEOUT, 'retransmission scheduled');
    a.endpoint.tick(REKEY_TIMEOUT + 400);
    assert.equal(a.jobs.length, 2, 'no result came: retransmitted as a lost one is');
  });

  it('drops a result that a newer job, a consumed initiation or removing the peer superseded', () => {
    const { a, b } = pair(true);
    a.endpoint.initiateHandshake(0, a.peer);
    a.endpoint.tick(REKEY_TIMEOUT + 400);
    assert.equal(a.jobs.length, 2);
    const [first, second] = [compute(a.jobs[0]!), compute(a.jobs[1]!)];
    assert.equal(a.endpoint.completeInitiation(REKEY_TIMEOUT + 500, first), false, 'an older job');
    assert.equal(a.sent.length, 0);
    assert.ok(a.endpoint.completeInitiation(REKEY_TIMEOUT + 500, second));
    assert.equal(a.endpoint.completeInitiation(REKEY_TIMEOUT + 501, second), false, 'only once');
    assert.equal(a.sent.length, 1);

    // B's initiation reaches A while A's own is being computed: A answers it, and its own
    // result no longer fits.
    const t = 3 * REKEY_TIMEOUT;
    a.endpoint.initiateHandshake(t, a.peer);
    const third = compute(a.jobs[2]!);
    b.endpoint.initiateHandshake(t, b.peer);
    assert.equal(a.endpoint.recv(t + 1, b.sent.at(-1)!, 'b'), 'handshake');
    const sent = a.sent.length;
    assert.equal(a.endpoint.completeInitiation(t + 2, third), false);
    assert.equal(a.sent.length, sent);

    a.endpoint.initiateHandshake(5 * REKEY_TIMEOUT, a.peer);
    const fourth = compute(a.jobs[3]!);
    a.endpoint.removePeer(a.peer);
    assert.equal(a.endpoint.completeInitiation(5 * REKEY_TIMEOUT + 1, fourth), false, 'the peer is gone');
  });

  it('computes here when the offload declines, or with another identifier', () => {
    const { a } = pair(false);
    a.endpoint.initiateHandshake(0, a.peer);
    assert.equal(a.sent.length, 1, 'declined: sent at once');

    const other = side(3, key(300), true, 'another prologue');
    const id = other.endpoint.addPeer({ publicKey: nodeCrypto.x25519PrivateKey(key(400)).publicKey }, 0);
    other.endpoint.initiateHandshake(0, id);
    assert.equal(other.jobs.length, 0, 'computeInitiation knows only WireGuard\'s identifier');
    assert.equal(other.sent.length, 1);
  });

  it('counts offloaded initiations against tick\'s budget', () => {
    const a = side(5, key(500), true);
    for (let i = 0; i < 6; i++) {
      a.endpoint.addPeer({ publicKey: nodeCrypto.x25519PrivateKey(key(600 + i)).publicKey, persistentKeepalive: 25 }, 0);
    }
    assert.equal(a.endpoint.tick(10, 4), false);
    assert.equal(a.jobs.length, 4);
    assert.equal(a.endpoint.tick(10, 4), true);
    assert.equal(a.jobs.length, 6);
  });
});
