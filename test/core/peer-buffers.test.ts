/**
 * A peer's fixed keys are views of one buffer, and so are its cookie keys: with 10,000 peers
 * every small array of its own is ~200 bytes more (bench:peers). Also what the views must keep:
 * the static-static DH is erased in place and null when invalid.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Endpoint } from '../../src/core/endpoint.ts';
import type { Peer } from '../../src/core/peer.ts';
import { seededRng } from '../../src/core/rng.ts';
import { nodeCrypto } from '../../src/crypto/node.ts';

function endpointWithPeer() {
  const rng = seededRng(31);
  const key = (): Uint8Array => { const k = new Uint8Array(32); rng.fill(k); return k; };
  const endpoint = new Endpoint<string>({
    crypto: nodeCrypto, rng, privateKey: key(), wallClock: (now) => 1_700_000_000_000 + now,
    io: { sendToPeer: () => {}, sendToSource: () => {}, deliver: () => {}, authenticated: () => {}, sourceTag: () => new Uint8Array(6) },
  });
  const publicKey = nodeCrypto.x25519PrivateKey(key()).publicKey;
  const id = endpoint.addPeer({ publicKey, presharedKey: new Uint8Array(32).fill(5), persistentKeepalive: 25 }, 0);
  const peer = (endpoint as unknown as { peers: Map<number, Peer> }).peers.get(id)!;
  return { endpoint, id, peer, publicKey };
}

describe('a peer\'s key buffers', () => {
  it('public key, preshared key and static-static DH share one buffer; the caller\'s key is copied', () => {
    const { endpoint, id, peer, publicKey } = endpointWithPeer();
    assert.ok(peer.staticStatic);
    assert.equal(new Set([peer.publicKey.buffer, peer.presharedKey.buffer, peer.staticStatic.buffer]).size, 1);
    assert.equal(peer.publicKey.buffer.byteLength, 96);
    assert.deepEqual(peer.publicKey, publicKey);
    publicKey.fill(0);
    assert.ok(!peer.publicKey.every((b) => b === 0), 'the endpoint keeps its own copy');
    assert.deepEqual(endpoint.peerPublicKey(id), peer.publicKey);
    assert.deepEqual(endpoint.peerPresharedKey(id), new Uint8Array(32).fill(5));
    assert.notEqual(endpoint.peerPresharedKey(id)!.buffer, peer.presharedKey.buffer, 'a copy');
  });

  it('the cookie generator\'s keys and last mac1 share one buffer', () => {
    const { endpoint, id, peer } = endpointWithPeer();
    endpoint.tick(1); // the persistent keepalive sends an initiation: the generator is made
    assert.ok(peer.hasCookieState);
    const cookies = peer.cookies as unknown as { mac1Key: Uint8Array; cookieKey: Uint8Array; lastMac1: Uint8Array };
    assert.equal(new Set([cookies.mac1Key.buffer, cookies.cookieKey.buffer, cookies.lastMac1.buffer]).size, 1);
    assert.ok(!cookies.lastMac1.every((b) => b === 0), 'the initiation\'s mac1 was kept');
    assert.ok(endpoint.inspectPeer(id));
  });

  it('a new private key recomputes the static-static DH in place; none leaves it zero and null', () => {
    const { endpoint, peer } = endpointWithPeer();
    const slot = peer.staticStatic!;
    const first = slot.slice();
    endpoint.setPrivateKey(new Uint8Array(32).fill(0x42));
    assert.equal(peer.staticStatic, slot, 'the same view');
    assert.notDeepEqual(slot, first);
    endpoint.setPrivateKey(null);
    assert.equal(peer.staticStatic, null);
    assert.ok(slot.every((b) => b === 0), 'the old DH is erased');
  });
});
