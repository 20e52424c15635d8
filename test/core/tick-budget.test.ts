/**
 * tick(now, maxInitiations): many peers due at once are served a few handshake initiations per
 * call, the rest stay due, and every peer gets its initiation in the end (none twice).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Endpoint } from '../../src/core/endpoint.ts';
import { Peer, type PeerId } from '../../src/core/peer.ts';
import { seededRng } from '../../src/core/rng.ts';
import { nodeCrypto } from '../../src/crypto/node.ts';

const PEERS = 10;

function dialingEndpoint(peers = PEERS): { endpoint: Endpoint<string>; sentTo: PeerId[] } {
  const rng = seededRng(15);
  const key = (): Uint8Array => { const k = new Uint8Array(32); rng.fill(k); return k; };
  const sentTo: PeerId[] = [];
  const endpoint = new Endpoint<string>({
    crypto: nodeCrypto,
    rng,
    privateKey: key(),
    wallClock: (now) => 1_700_000_000_000 + now,
    io: {
      sendToPeer: (peer) => { sentTo.push(peer); },
      sendToSource: () => {},
      deliver: () => {},
      authenticated: () => {},
      sourceTag: () => new Uint8Array(6),
    },
  });
  // A persistent keepalive turned on sends at the next tick: with no session, an initiation.
  for (let i = 0; i < peers; i++) {
    endpoint.addPeer({ publicKey: nodeCrypto.x25519PrivateKey(key()).publicKey, persistentKeepalive: 25 }, 0);
  }
  return { endpoint, sentTo };
}

describe('tick with an initiation budget', () => {
  it('sends at most maxInitiations per call and leaves the rest due', () => {
    const { endpoint, sentTo } = dialingEndpoint();
    const now = 1000;
    assert.equal(endpoint.tick(now, 3), false);
    assert.equal(sentTo.length, 3);
    assert.ok(endpoint.nextDeadline() <= now, 'the peers not reached are still due');
    assert.equal(endpoint.tick(now, 3), false);
    assert.equal(endpoint.tick(now, 3), false);
    assert.equal(sentTo.length, 9);
    assert.equal(endpoint.tick(now, 3), true, 'the last peer fits: nothing left');
    assert.equal(sentTo.length, PEERS);
    assert.equal(new Set(sentTo).size, PEERS, 'every peer once');
    assert.ok(endpoint.nextDeadline() > now);
    assert.equal(endpoint.counters.handshakeInitiationsSent, PEERS);
  });

  it('without a budget serves every due peer in one call', () => {
    const { endpoint, sentTo } = dialingEndpoint();
    assert.equal(endpoint.tick(1000), true);
    assert.equal(sentTo.length, PEERS);
    assert.ok(endpoint.nextDeadline() > 1000);
  });

  it('reports complete when the budget is spent exactly on the last due peer', () => {
    const { endpoint, sentTo } = dialingEndpoint();
    assert.equal(endpoint.tick(1000, PEERS), true);
    assert.equal(sentTo.length, PEERS);
  });

  it('resumes where the last call stopped: N due peers cost O(N) deadline reads, not O(N²)', () => {
    const peers = 400;
    const { endpoint, sentTo } = dialingEndpoint(peers);
    const original = Peer.prototype.nextDeadline;
    let reads = 0;
    Peer.prototype.nextDeadline = function (this: Peer) { reads++; return original.call(this); };
    try {
      let calls = 1;
      while (!endpoint.tick(1000, 4)) calls++;
      assert.equal(calls, peers / 4);
      assert.equal(new Set(sentTo).size, peers, 'every peer once');
      // One read per peer per pass, the closing whole pass, and the closing earliest-deadline scan:
      // restarting every call from the first peer would take ~peers²/8 = 20,000.
      assert.ok(reads <= 4 * peers, `${reads} deadline reads for ${peers} peers`);
    } finally {
      Peer.prototype.nextDeadline = original;
    }
  });

  it('a peer removed while left pending is not served; one added meanwhile is', () => {
    const { endpoint, sentTo } = dialingEndpoint();
    assert.equal(endpoint.tick(1000, 3), false);
    const pending = [...endpoint.peerIds()][3]!; // the first one not served
    endpoint.removePeer(pending);
    const added = endpoint.addPeer({ publicKey: nodeCrypto.x25519PrivateKey(new Uint8Array(32).fill(9)).publicKey, persistentKeepalive: 25 }, 1000);
    while (!endpoint.tick(1000, 3));
    assert.ok(!sentTo.includes(pending), 'the removed peer got no initiation');
    assert.ok(sentTo.includes(added), 'the peer added during the pass got one');
    assert.equal(sentTo.length, PEERS, 'the nine left and the new one, each once');
    assert.equal(new Set(sentTo).size, PEERS);
  });

  it('a peer passed over earlier in a resumed pass that falls due meanwhile is served in it', () => {
    const { endpoint, sentTo } = dialingEndpoint();
    const first = [...endpoint.peerIds()][0]!;
    assert.equal(endpoint.tick(1000, 3), false);
    // The first peer was served at 1000; turning its keepalive off and on again makes it due at
    // 1001, behind the point where the pass resumes.
    endpoint.updatePeer(first, { persistentKeepalive: 0 }, 1001);
    endpoint.updatePeer(first, { persistentKeepalive: 25 }, 1001);
    const before = endpoint.counters.keepalivesSent + endpoint.counters.handshakeInitiationsSent;
    assert.equal(endpoint.tick(1001), true, 'an unbounded call finishes the round');
    assert.ok(endpoint.nextDeadline() > 1001, 'nothing is left due');
    assert.ok(endpoint.counters.keepalivesSent + endpoint.counters.handshakeInitiationsSent > before);
    assert.equal(new Set(sentTo).size, PEERS);
  });
});
