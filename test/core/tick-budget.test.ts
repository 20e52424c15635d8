/**
 * tick(now, maxInitiations): many peers due at once are served a few handshake initiations per
 * call, the rest stay due, and every peer gets its initiation in the end (none twice).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Endpoint } from '../../src/core/endpoint.ts';
import type { PeerId } from '../../src/core/peer.ts';
import { seededRng } from '../../src/core/rng.ts';
import { nodeCrypto } from '../../src/crypto/node.ts';

const PEERS = 10;

function dialingEndpoint(): { endpoint: Endpoint<string>; sentTo: PeerId[] } {
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
  for (let i = 0; i < PEERS; i++) {
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
});
