/**
 * Key material is overwritten with zeros when it is replaced, expires or its peer is removed
 * (SECURITY.md): a crypto provider that records every raw key the core hands it (session and
 * handshake keys to `aeadKey`, ephemeral and static private keys to `x25519PrivateKey`) shows
 * the bytes themselves are zero afterwards, not just that the session objects are gone.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Endpoint } from '../../src/core/endpoint.ts';
import type { CryptoProvider } from '../../src/core/crypto.ts';
import { REKEY_AFTER_TIME, ZERO_KEY_MATERIAL_AFTER } from '../../src/core/constants.ts';
import { seededRng } from '../../src/core/rng.ts';
import { nodeCrypto } from '../../src/crypto/node.ts';

interface Recording extends CryptoProvider { keys: Uint8Array[] }

function recording(): Recording {
  const keys: Uint8Array[] = [];
  return {
    ...nodeCrypto,
    keys,
    aeadKey: (k) => { keys.push(k); return nodeCrypto.aeadKey(k); },
    x25519PrivateKey: (k) => { keys.push(k); return nodeCrypto.x25519PrivateKey(k); },
  };
}

const zero = (k: Uint8Array) => k.every((b) => b === 0);

function pair() {
  let now = 0;
  const queue: { to: 'a' | 'b'; d: Uint8Array }[] = [];
  const make = (seed: number, crypto: Recording, to: 'a' | 'b') => {
    const key = new Uint8Array(32);
    seededRng(seed).fill(key);
    return new Endpoint<string>({
      crypto, rng: seededRng(seed + 100), privateKey: key, wallClock: (t) => 1_700_000_000_000 + t,
      io: {
        sendToPeer: (_p, d) => { queue.push({ to, d: d.slice() }); },
        sendToSource: (_s, d) => { queue.push({ to, d: d.slice() }); },
        deliver: () => {}, authenticated: () => {}, sourceTag: () => new Uint8Array(6),
      },
    });
  };
  const ca = recording(), cb = recording();
  const a = make(1, ca, 'b'), b = make(2, cb, 'a');
  const aToB = a.addPeer({ publicKey: b.publicKey!, presharedKey: new Uint8Array(32).fill(9) }, 0);
  const bToA = b.addPeer({ publicKey: a.publicKey!, presharedKey: new Uint8Array(32).fill(9) }, 0);
  const pump = () => { while (queue.length) { const q = queue.shift()!; (q.to === 'a' ? a : b).recv(now, q.d, q.to === 'a' ? 'b' : 'a'); } };
  const run = (until: number) => {
    for (;;) {
      pump();
      const t = Math.min(a.nextDeadline(), b.nextDeadline());
      if (t > until) break;
      now = Math.max(now, t);
      a.tick(now); b.tick(now);
    }
    now = until;
  };
  const traffic = () => { a.send(now, aToB, new Uint8Array(64)); pump(); b.send(now, bToA, new Uint8Array(64)); pump(); };
  return { a, b, aToB, bToA, ca, cb, pump, run, traffic, now: () => now };
}

describe('key material is zeroed', () => {
  it('when a peer is removed: its session and handshake keys, every one the core ever made', () => {
    const p = pair();
    p.traffic();
    assert.ok(p.a.inspectPeer(p.aToB).current, 'a session');
    const staticKey = p.ca.keys[0]!;
    p.a.removePeer(p.aToB);
    const left = p.ca.keys.filter((k) => k !== staticKey && !zero(k));
    assert.equal(left.length, 0, `${left.length} of ${p.ca.keys.length - 1} keys still hold bytes`);
    assert.ok(!zero(staticKey), 'the interface key itself stays');
  });

  it('when sessions are replaced by rekeys and when they expire', () => {
    const p = pair();
    p.traffic();
    const first = p.ca.keys.length;
    // Two rekeys: the first session drops out of previous and must be wiped.
    for (let t = 1; t <= 2; t++) { p.run(t * (REKEY_AFTER_TIME + 1000)); p.traffic(); }
    const session = p.a.inspectPeer(p.aToB);
    assert.ok(session.current && session.previous, 'current and previous sessions');
    const firstSessionKeys = p.ca.keys.slice(1, first);
    assert.ok(firstSessionKeys.length > 0 && firstSessionKeys.every(zero), 'the first handshake\'s keys are zero');
    // No traffic for 3 × REJECT_AFTER_TIME: everything goes.
    p.run(p.now() + ZERO_KEY_MATERIAL_AFTER + 10_000);
    assert.equal(p.a.inspectPeer(p.aToB).current, null);
    const staticKey = p.ca.keys[0]!;
    assert.ok(p.ca.keys.filter((k) => k !== staticKey).every(zero), 'every session and handshake key is zero');
  });

  it('when the private key is replaced', () => {
    const p = pair();
    p.traffic();
    const old = p.ca.keys[0]!;
    assert.ok(!zero(old), 'the static key is held');
    p.a.setPrivateKey(new Uint8Array(32).fill(0x42));
    assert.ok(zero(old), 'the old private key is zero');
    assert.ok(p.ca.keys.slice(1).filter((k) => !zero(k)).length <= 1, 'only the new static key holds bytes');
  });
});
