/**
 * The handshake functions (src/core/handshake.ts) called directly, as the endpoint calls them:
 * each returns nothing and changes nothing when its step is out of order or impossible.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  beginSession, consumeInitiation, consumeResponse, createInitiation, createResponse,
} from '../../src/core/handshake.ts';
import type { HandshakeContext, IndexEntry, LocalIdentity } from '../../src/core/handshake.ts';
import { IndexTable } from '../../src/core/indexes.ts';
import { noiseStart, writeMessage2 } from '../../src/core/noise.ts';
import { Peer } from '../../src/core/peer.ts';
import { seededRng } from '../../src/core/rng.ts';
import { utf8, readU32LE, writeU32LE, EMPTY } from '../../src/core/bytes.ts';
import { CONSTRUCTION, IDENTIFIER } from '../../src/core/constants.ts';
import { Initiation, MESSAGE_RESPONSE, Response, writeType } from '../../src/core/messages.ts';
import { encodeHex } from '../../src/core/keys.ts';
import { nodeCrypto as crypto } from '../../src/crypto/node.ts';

const start = noiseStart(crypto, CONSTRUCTION, utf8(IDENTIFIER));

interface Side { ctx: HandshakeContext; local: LocalIdentity | null; setLocal(l: LocalIdentity | null): void }

function side(seed: number): Side {
  const raw = new Uint8Array(32);
  seededRng(seed).fill(raw);
  const key = crypto.x25519PrivateKey(raw);
  const s: Side = {
    local: { privateKey: raw, key, publicKey: key.publicKey },
    setLocal(l) { s.local = l; },
    ctx: {
      crypto, rng: seededRng(seed + 1000), start, indexes: new IndexTable<IndexEntry>(seededRng(seed + 2000)),
      local: () => s.local, wallClock: (now) => 1_700_000_000_000 + now,
    },
  };
  return s;
}

/** `of` as a peer of `at` (with the static-static DH the endpoint precomputes). */
function peerOf(at: Side, of: Side): Peer {
  const pub = of.local!.publicKey;
  const p = new Peer(1, crypto, pub, encodeHex(pub));
  p.staticStatic = crypto.x25519(at.local!.key, pub);
  return p;
}

function setup() {
  const a = side(1), b = side(2);
  const bAtA = peerOf(a, b), aAtB = peerOf(b, a);
  return { a, b, bAtA, aAtB, byKeyAtB: (k: Uint8Array) => (encodeHex(k) === aAtB.publicKeyHex ? aAtB : undefined) };
}

describe('handshake steps out of order', () => {
  it('a full handshake through the functions gives matching sessions', () => {
    const { a, b, bAtA, aAtB, byKeyAtB } = setup();
    const init = createInitiation(a.ctx, bAtA, 0)!;
    assert.equal(bAtA.handshake.stage, 'initiationCreated');
    assert.equal(consumeInitiation(b.ctx, init, 10, byKeyAtB), aAtB);
    const resp = createResponse(b.ctx, aAtB, 10)!;
    assert.equal(aAtB.handshake.stage, 'responseCreated');
    const responderIndex = readU32LE(resp, Response.sender);
    assert.deepEqual(b.ctx.indexes.get(responderIndex), { peer: aAtB, session: null }, 'a pending handshake of that peer');
    assert.equal(consumeResponse(a.ctx, resp), bAtA);
    const [sa] = [beginSession(a.ctx, bAtA, 20, true), beginSession(b.ctx, aAtB, 20, false)];
    assert.deepEqual(sa, []);
    assert.equal(bAtA.current!.remoteIndex, aAtB.next!.localIndex);
    assert.equal(b.ctx.indexes.get(responderIndex)!.session, aAtB.next);
  });

  it('without a private key: no initiation, no consumed initiation, no consumed response', () => {
    const { a, b, bAtA, aAtB, byKeyAtB } = setup();
    const init = createInitiation(a.ctx, bAtA, 0)!;
    b.setLocal(null);
    assert.equal(consumeInitiation(b.ctx, init, 10, byKeyAtB), 'noPrivateKey');
    assert.equal(aAtB.handshake.stage, 'zeroed');
    b.setLocal(side(2).local);
    consumeInitiation(b.ctx, init, 10, byKeyAtB);
    const resp = createResponse(b.ctx, aAtB, 10)!;
    const local = a.local;
    a.setLocal(null);
    assert.equal(consumeResponse(a.ctx, resp), null);
    assert.equal(bAtA.handshake.stage, 'initiationCreated', 'the pending handshake is kept');
    const pending = bAtA.handshake.localIndex;
    assert.equal(createInitiation(a.ctx, bAtA, 100), null);
    assert.equal(bAtA.handshake.localIndex, pending, 'and not replaced');
    assert.equal(a.ctx.indexes.size, 1);
    a.setLocal(local);
    assert.equal(consumeResponse(a.ctx, resp), bAtA, 'with the key back the response fits');
  });

  it('one response per consumed initiation; none without one', () => {
    const { a, b, bAtA, aAtB, byKeyAtB } = setup();
    assert.equal(createResponse(b.ctx, aAtB, 0), null, 'nothing consumed');
    assert.equal(b.ctx.indexes.size, 0);
    createInitiation(b.ctx, aAtB, 0);
    assert.equal(createResponse(b.ctx, aAtB, 0), null, 'our own initiation is pending, not theirs');
    assert.equal(aAtB.handshake.stage, 'initiationCreated');
    const init = createInitiation(a.ctx, bAtA, 0)!;
    consumeInitiation(b.ctx, init, 10, byKeyAtB);
    assert.ok(createResponse(b.ctx, aAtB, 10));
    assert.equal(b.ctx.indexes.size, 1, 'our initiation was replaced by the response');
    assert.equal(createResponse(b.ctx, aAtB, 10), null, 'a second response');
    assert.equal(b.ctx.indexes.size, 1);
  });

  it('a response is consumed only by a pending initiation, even one that authenticates', () => {
    const { a, b, bAtA, aAtB, byKeyAtB } = setup();
    const init = createInitiation(a.ctx, bAtA, 0)!;
    consumeInitiation(b.ctx, init, 10, byKeyAtB);
    const resp = createResponse(b.ctx, aAtB, 10)!;
    assert.equal(consumeResponse(a.ctx, resp), bAtA);
    // a now holds the chaining key and hash b holds after its response, so a can write a
    // "response to b's response" that b's pending (responder) handshake state would authenticate.
    const hsA = bAtA.handshake, hsB = aAtB.handshake;
    assert.deepEqual([...hsA.chainKey!], [...hsB.chainKey!]);
    const forged = new Uint8Array(Response.size);
    writeType(forged, MESSAGE_RESPONSE);
    writeU32LE(forged, Response.receiver, hsB.localIndex);
    writeU32LE(forged, Response.sender, 0x1234);
    const raw = new Uint8Array(32).fill(3);
    const ok = writeMessage2(
      crypto, { chainKey: hsA.chainKey!.slice(), hash: hsA.hash!.slice() }, hsB.localEphemeral!.publicKey,
      b.local!.publicKey, aAtB.presharedKey, crypto.x25519PrivateKey(raw), EMPTY, forged, Response.noiseStart,
    );
    assert.ok(ok);
    assert.equal(consumeResponse(b.ctx, forged), null, 'b is the responder here');
    assert.equal(hsB.stage, 'responseCreated');
    assert.equal(hsB.remoteIndex, readU32LE(init, Initiation.sender), 'unchanged');
  });
});
