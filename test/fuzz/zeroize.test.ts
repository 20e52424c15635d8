/**
 * Key material is overwritten with zeros when it is replaced, expires or its peer is removed
 * (SECURITY.md, "Key material in memory"). Two views:
 * - a crypto provider that records every raw key the core hands it (session and handshake keys
 *   to `aeadKey`, ephemeral and static private keys to `x25519PrivateKey`);
 * - a walk over every Uint8Array reachable from an Endpoint, each classified by the field that
 *   holds it (an unclassified one fails the test, so a new field must be placed), snapshotted
 *   while the handshake runs, then checked after the event that should zero it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Endpoint } from '../../src/core/endpoint.ts';
import type { CryptoProvider } from '../../src/core/crypto.ts';
import { COOKIE_REFRESH_TIME, REKEY_AFTER_TIME, REKEY_TIMEOUT, REKEY_TIMEOUT_JITTER_MAX, ZERO_KEY_MATERIAL_AFTER } from '../../src/core/constants.ts';
import { seededRng } from '../../src/core/rng.ts';
import { nodeCrypto } from '../../src/crypto/node.ts';
import { Simulation, packet } from '../support/pair.ts';
import { CookieGenerator } from '../../src/core/cookie.ts';
import { Initiation, MESSAGE_INITIATION, MESSAGE_RESPONSE, Response } from '../../src/core/messages.ts';
import type { Node } from '../support/pair.ts';

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

/**
 * What each field holding bytes is. 'session': handshake and session secrets, zeroed when the
 * handshake ends, on keysZeroed and on removal. 'config': the interface key, preshared keys and
 * the static-static DH, kept while configured (as wireguard-go keeps them). 'cookieSecret': the
 * responder's rotating secret. 'public': not secret.
 */
type Kind = 'session' | 'config' | 'cookieSecret' | 'public';
const FIELDS: Record<string, Kind> = {
  chainKey: 'session', hash: 'session', localEphemeralRaw: 'session', remoteEphemeral: 'session', rawKeys: 'session',
  cookie: 'session',
  // reserveTransport's reused answer lends the session's own send key (rawKeys[0]), erased with it.
  sendKey: 'session',
  privateKey: 'config', presharedKey: 'config', staticStatic: 'config', staticStaticSlot: 'config',
  secret: 'cookieSecret',
  // mac1Key/cookieKey hash public keys; lastMac1 and lastTimestamp went over the wire; scratch
  // holds the last ciphertext and rxScratch the last opened packet (traffic, as a queued packet
  // is); the jitter pool only spaces retries.
  publicKey: 'public', mac1Key: 'public', cookieKey: 'public', lastMac1: 'public', lastTimestamp: 'public',
  scratch: 'public', rxScratch: 'public', jitterPool: 'public',
};
/**
 * Containers whose bytes are not secret: the Noise constants, plaintext waiting to be sent, and
 * the views the endpoint keeps of its scratch buffers and of datagrams (traffic, as above).
 */
const PUBLIC_CONTAINERS = new Set(['start', 'queue', 'views']);
/** Edges the walk does not follow: the caller's objects, and ctx (the same objects again). */
const SKIP = new Set(['crypto', 'io', 'rng', 'wallClock', 'ctx']);

interface Held { path: string; field: string; kind: Kind; bytes: Uint8Array }

/** Every Uint8Array reachable from `root`, with the field that holds it. */
function heldBytes(root: object): { held: Held[]; unclassified: string[] } {
  const held: Held[] = [], unclassified: string[] = [];
  const seen = new Set<unknown>();
  const visit = (value: unknown, path: string[]): void => {
    if (value === null || typeof value !== 'object' || seen.has(value)) return;
    seen.add(value);
    if (value instanceof Uint8Array) {
      const named = path.filter((p) => !/^\d+$/.test(p));
      const field = named.at(-1) ?? '';
      const kind = named.some((p) => PUBLIC_CONTAINERS.has(p)) ? 'public' : FIELDS[field];
      if (kind) held.push({ path: path.join('.'), field, kind, bytes: value });
      else unclassified.push(path.join('.'));
      return;
    }
    if (ArrayBuffer.isView(value)) return; // e.g. the replay ring (counters, not keys)
    if (value instanceof Map) { for (const [k, v] of value) visit(v, [...path, String(k)]); return; }
    for (const [k, v] of Object.entries(value)) if (!SKIP.has(k)) visit(v, [...path, k]);
  };
  visit(root, []);
  return { held, unclassified };
}

/** Collects, by reference, every secret an endpoint holds at each `snap()`. */
function tracker(node: Node) {
  const seen = new Map<Uint8Array, Held>();
  const snap = () => {
    const { held, unclassified } = heldBytes(node.endpoint);
    assert.deepEqual(unclassified, [], 'every byte array the core holds is classified');
    for (const h of held) if (!seen.has(h.bytes)) seen.set(h.bytes, h);
  };
  const of = (kind: Kind) => [...seen.values()].filter((h) => h.kind === kind);
  return { snap, of, fields: (kind: Kind) => new Set(of(kind).map((h) => h.field)) };
}

describe('every secret the core holds', () => {
  it('keysZeroed zeroes chaining keys, hashes, ephemerals, session keys and the peer\'s cookie', () => {
    const sim = new Simulation();
    const a = sim.node('a', 11), b = sim.node('b', 12);
    const psk = new Uint8Array(32).fill(9);
    const ab = a.addPeer(b, { presharedKey: psk });
    b.addPeer(a, { presharedKey: psk });
    const ta = tracker(a), tb = tracker(b);
    // Snapshot in the middle of handshakes too: the responder holds the initiator's ephemeral,
    // chaining key and hash between consuming an initiation and answering it.
    for (const [node, t] of [[a, ta], [b, tb]] as const) {
      const io = (node.endpoint as unknown as { io: { authenticated: (p: number, s: string) => void } }).io;
      const authenticated = io.authenticated;
      io.authenticated = (p, src) => { t.snap(); authenticated(p, src); };
    }
    // Under load, b answers a's first initiation with a cookie: a holds b's cookie.
    b.endpoint.setUnderLoad(true);
    a.send(ab, packet(1, 0));
    sim.run(10);
    ta.snap(); tb.snap();
    sim.run(REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX);
    assert.equal(b.delivered.length, 1, 'the retry with mac2 got through');
    ta.snap(); tb.snap();
    // Near the zeroing deadline a new handshake is pending (b is unreachable).
    const zeroAt = a.endpoint.inspectPeer(ab).timers.zeroKeyMaterial;
    sim.cut.add('a>b');
    sim.runUntil(zeroAt - 2000);
    a.send(ab, packet(1, 1));
    ta.snap();
    assert.equal(a.endpoint.inspectPeer(ab).handshakeStage, 'initiationCreated');
    for (const f of ['chainKey', 'hash', 'localEphemeralRaw', 'rawKeys', 'cookie']) assert.ok(ta.fields('session').has(f), `a held ${f}`);
    assert.ok(tb.fields('session').has('remoteEphemeral'), 'b held the initiator\'s ephemeral');
    const live = ta.of('session').filter((h) => !zero(h.bytes));
    assert.ok(live.some((h) => h.field === 'cookie'), 'the cookie is still held, though past its use');
    assert.ok(live.some((h) => h.field === 'chainKey'), 'the pending chaining key');
    sim.runUntil(zeroAt);
    assert.equal(a.eventsOf('keysZeroed').length, 1);
    const left = ta.of('session').filter((h) => !zero(h.bytes)).map((h) => h.path);
    assert.deepEqual(left, [], 'every session secret a ever held is zero');
    // Configuration stays, as in wireguard-go: the next handshake needs it.
    const config = ta.of('config');
    assert.deepEqual([...ta.fields('config')].sort(), ['presharedKey', 'privateKey', 'staticStatic']);
    assert.ok(config.every((h) => !zero(h.bytes)), 'interface key, preshared key, static-static DH kept');
    // b: its cookie secret went COOKIE_REFRESH_TIME after it was drawn; its own keysZeroed
    // (its session came from the same handshake) took the rest.
    assert.ok(tb.of('cookieSecret').length === 1 && zero(tb.of('cookieSecret')[0]!.bytes), 'b\'s cookie secret is zero');
    sim.run(10_000);
    assert.equal(b.eventsOf('keysZeroed').length, 1);
    assert.deepEqual(tb.of('session').filter((h) => !zero(h.bytes)).map((h) => h.path), []);
  });

  it('the responder\'s cookie secret is zeroed when it expires, and when the private key changes or goes', () => {
    const sim = new Simulation();
    const a = sim.node('a', 21), b = sim.node('b', 22);
    const ab = a.addPeer(b);
    b.addPeer(a);
    const tb = tracker(b);
    b.endpoint.setUnderLoad(true);
    const secretAfterReply = () => {
      a.endpoint.initiateHandshake(sim.now, ab);
      sim.run(10);
      tb.snap();
      const [secret] = tb.of('cookieSecret');
      assert.ok(secret && !zero(secret.bytes), 'a secret was drawn');
      return secret.bytes;
    };
    const drawnAt = sim.now + 5; // when the initiation reaches b (PERFECT: 5 ms)
    const secret = secretAfterReply();
    // Its expiry is a deadline of its own: the endpoint wakes to zero it.
    assert.ok(b.endpoint.nextDeadline() <= drawnAt + COOKIE_REFRESH_TIME, 'b wakes up for it');
    sim.runUntil(drawnAt + COOKIE_REFRESH_TIME - 1);
    assert.ok(!zero(secret), 'kept while it is used');
    sim.runUntil(drawnAt + COOKIE_REFRESH_TIME);
    assert.ok(zero(secret), 'zero once expired');
    // Drawn again, then the private key changes: zero at once.
    sim.run(REKEY_TIMEOUT);
    secretAfterReply();
    b.endpoint.setPrivateKey(new Uint8Array(32).fill(0x42));
    assert.ok(zero(secret));
    // And when the key is cleared.
    b.endpoint.setPrivateKey(b.privateKey);
    b.endpoint.removePeer(b.endpoint.peerIdByKey(a.publicKey)!);
    b.addPeer(a);
    sim.run(REKEY_TIMEOUT);
    secretAfterReply();
    b.endpoint.setPrivateKey(null);
    assert.ok(zero(secret));
  });

  it('removing a peer zeroes everything it held, configuration included', () => {
    const sim = new Simulation();
    const a = sim.node('a', 31), b = sim.node('b', 32);
    const ab = a.addPeer(b, { presharedKey: new Uint8Array(32).fill(3) });
    b.addPeer(a, { presharedKey: new Uint8Array(32).fill(3) });
    const ta = tracker(a);
    b.endpoint.setUnderLoad(true);
    a.send(ab, packet(1, 0));
    sim.run(10);
    ta.snap();
    sim.run(REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX);
    ta.snap();
    a.endpoint.removePeer(ab);
    const left = [...ta.of('session'), ...ta.of('config')].filter((h) => !zero(h.bytes)).map((h) => h.path);
    assert.deepEqual(left, ['local.privateKey'], 'only the interface key is left');
  });
});

/** nodeCrypto that keeps every hash, HMAC and DH output it makes while `on`. */
function derivedRecorder() {
  const made: Uint8Array[] = [];
  const state = { on: false };
  const keep = <T extends Uint8Array | null>(x: T): T => { if (state.on && x) made.push(x); return x; };
  const crypto: CryptoProvider = {
    ...nodeCrypto,
    hash: (parts) => keep(nodeCrypto.hash(parts)),
    hmac: (k, d) => keep(nodeCrypto.hmac(k, d)),
    x25519: (k, p) => keep(nodeCrypto.x25519(k, p)),
  };
  /** Runs `fn` recording, and returns what it derived that still holds bytes. */
  const during = (fn: () => void): Uint8Array[] => {
    made.length = 0;
    state.on = true;
    try { fn(); } finally { state.on = false; }
    return made.filter((x) => !zero(x));
  };
  return { crypto, during, count: () => made.length };
}

describe('a handshake message that fails leaves no derived secret behind', () => {
  function setup() {
    const rec = derivedRecorder();
    const sim = new Simulation({ crypto: rec.crypto });
    const wall = { skew: 0 };
    const a = sim.node('a', 41, { wallClock: (now) => 1_700_000_000_000 + now + wall.skew });
    const b = sim.node('b', 42);
    const c = sim.node('c', 43);
    const ab = a.addPeer(b, { presharedKey: new Uint8Array(32).fill(4) });
    b.addPeer(a, { presharedKey: new Uint8Array(32).fill(4) });
    c.addPeer(b);
    const captured: { from: string; d: Uint8Array }[] = [];
    const transmit = sim.transmit.bind(sim);
    sim.transmit = (from, to, d) => { captured.push({ from, d: d.slice() }); transmit(from, to, d); };
    const last = (from: string, type: number) => captured.filter((x) => x.from === from && x.d[0] === type).at(-1)!.d;
    /** `msg` with a byte changed and mac1 made valid again (so the Noise part is what fails). */
    const tamper = (msg: Uint8Array, at: number, to: Uint8Array) => {
      const m = msg.slice();
      m[at]! ^= 1;
      new CookieGenerator(nodeCrypto, to).addMacs(m, sim.now);
      return m;
    };
    return { rec, sim, wall, a, b, c, ab, last, tamper };
  }

  it('replayed, flooding, unknown-peer and corrupted initiations', () => {
    const { rec, sim, wall, a, b, c, ab, last, tamper } = setup();
    a.endpoint.initiateHandshake(sim.now, ab);
    sim.run(50);
    const init = last('a', MESSAGE_INITIATION);
    sim.run(1000);
    const cases: [string, () => void][] = [
      ['replayed timestamp', () => b.endpoint.recv(sim.now, init.slice(), 'a')],
      ['bad timestamp length', () => b.endpoint.recv(sim.now, tamper(init, Initiation.size - 2 * 16 - 1, b.publicKey), 'a')],
      ['bad static', () => b.endpoint.recv(sim.now, tamper(init, 8 + 32 + 5, b.publicKey), 'a')],
    ];
    for (const [name, fn] of cases) {
      const left = rec.during(fn);
      assert.ok(rec.count() > 0, `${name}: something was derived`);
      assert.equal(left.length, 0, `${name}: ${left.length} derived values hold bytes`);
    }
    assert.equal(b.endpoint.counters.dropped.replayedTimestamp, 1);
    assert.equal(b.endpoint.counters.dropped.handshakeDecrypt, 2);
    // An initiation from a key b does not know.
    const idc = c.endpoint.peerIdByKey(b.publicKey)!;
    const unknown = rec.during(() => { c.endpoint.initiateHandshake(sim.now, idc); sim.run(10); });
    assert.equal(b.endpoint.counters.dropped.unknownPeer, 1);
    // c's own pending handshake holds its chaining key and hash; and since a peer's cookie state
    // is made at its first handshake, c's mac1 and cookie keys for b, which hash b's public key.
    const cookieState = (c.endpoint as unknown as { peers: Map<number, { cookieGenerator?: { mac1Key: Uint8Array; cookieKey: Uint8Array } }> }).peers.get(idc)?.cookieGenerator;
    const publicOnes = new Set([cookieState?.mac1Key, cookieState?.cookieKey].filter((k) => k !== undefined).map((k) => Buffer.from(k).toString('hex')));
    const secretLeft = unknown.filter((v) => !publicOnes.has(Buffer.from(v).toString('hex')));
    assert.equal(publicOnes.size, 2, 'the cookie keys were made');
    assert.ok(secretLeft.length <= 2, `${secretLeft.length} derived secrets hold bytes`);
    // A fresh initiation 10 ms after an accepted one.
    wall.skew += 1000;
    const peers = (a.endpoint as unknown as { peers: Map<number, { handshake: { lastSentHandshake: number } }> }).peers;
    peers.get(ab)!.handshake.lastSentHandshake = -Infinity;
    a.endpoint.initiateHandshake(sim.now, ab);
    const first = last('a', MESSAGE_INITIATION);
    b.endpoint.recv(sim.now, first.slice(), 'a');
    wall.skew += 1000;
    peers.get(ab)!.handshake.lastSentHandshake = -Infinity;
    a.endpoint.initiateHandshake(sim.now, ab);
    const second = last('a', MESSAGE_INITIATION);
    const flood = rec.during(() => b.endpoint.recv(sim.now + 10, second.slice(), 'a'));
    assert.equal(b.endpoint.counters.dropped.floodedInitiation, 1);
    assert.equal(flood.length, 0, `flood: ${flood.length} derived values hold bytes`);
  });

  it('a corrupted response', () => {
    const { rec, sim, a, ab, last, tamper } = setup();
    sim.cut.add('b>a');
    a.endpoint.initiateHandshake(sim.now, ab);
    sim.run(50);
    const response = last('b', MESSAGE_RESPONSE);
    const hs = (a.endpoint as unknown as { peers: Map<number, { handshake: { chainKey: Uint8Array; hash: Uint8Array } }> }).peers.get(ab)!.handshake;
    const [chainKey, hash] = [hs.chainKey.slice(), hs.hash.slice()];
    const left = rec.during(() => a.endpoint.recv(sim.now, tamper(response, Response.size - 2 * 16 - 3, a.publicKey), 'b'));
    assert.equal(a.endpoint.counters.dropped.unexpectedResponse, 1);
    assert.equal(left.length, 0, `${left.length} derived values hold bytes`);
    // The pending handshake is untouched: the genuine response still completes it.
    assert.deepEqual([hs.chainKey, hs.hash], [chainKey, hash]);
    assert.equal(a.endpoint.recv(sim.now, response.slice(), 'b'), 'handshake');
  });
});
