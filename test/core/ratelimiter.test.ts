/**
 * The per-source handshake rate limiter (src/core/ratelimiter.ts) in simulated time, alone and
 * inside the endpoint under load.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RateLimiter, RATELIMIT_BURST, RATELIMIT_GC_AFTER, RATELIMIT_PACKETS_PER_SECOND } from '../../src/core/ratelimiter.ts';
import { MESSAGE_COOKIE_REPLY, MESSAGE_INITIATION } from '../../src/core/messages.ts';
import { REKEY_TIMEOUT, REKEY_TIMEOUT_JITTER_MAX } from '../../src/core/constants.ts';
import { Simulation, packet } from '../support/pair.ts';
import type { CryptoProvider } from '../../src/core/crypto.ts';
import { nodeCrypto } from '../../src/crypto/node.ts';

/** A device-style source tag: address bytes ‖ big-endian port. */
function v4(a: number, b: number, c: number, d: number, port = 51820): Uint8Array {
  return Uint8Array.of(a, b, c, d, port >> 8, port & 0xff);
}

function v6(hex: string, port = 51820): Uint8Array {
  const tag = new Uint8Array(18);
  for (let i = 0; i < 16; i++) tag[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  tag[16] = port >> 8;
  tag[17] = port & 0xff;
  return tag;
}

/** How many of `n` messages at `now` are allowed. */
function burst(rl: RateLimiter, now: number, tag: Uint8Array, n: number): number {
  let ok = 0;
  for (let i = 0; i < n; i++) if (rl.allow(now, tag)) ok++;
  return ok;
}

describe('RateLimiter', () => {
  it('allows a burst of 5 at one instant, then 20 per second', () => {
    const rl = new RateLimiter();
    const src = v4(192, 0, 2, 1);
    assert.equal(rl.wouldAllow(1000, src), true, 'a new source would be allowed');
    assert.equal(rl.stats.entries, 0, 'wouldAllow creates nothing');
    assert.equal(burst(rl, 1000, src, 50), RATELIMIT_BURST, 'burst');
    assert.equal(rl.wouldAllow(1000, src), false, 'wouldAllow agrees once the bucket is empty');
    assert.equal(rl.wouldAllow(1050, src), true, 'and sees the refill without taking it');
    // One token every 50 ms.
    assert.equal(rl.allow(1049, src), false, 'before a token refilled');
    assert.equal(rl.allow(1050, src), true, 'one token after 50 ms');
    assert.equal(rl.allow(1050, src), false, 'only one');
    // A steady flood at 1 kHz for 10 s gets 20/s through.
    let ok = 0;
    for (let t = 1051; t < 11_051; t++) if (rl.allow(t, src)) ok++;
    assert.ok(Math.abs(ok - 10 * RATELIMIT_PACKETS_PER_SECOND) <= 1, `steady rate: ${ok} in 10 s`);
    // After a pause the bucket is full again, but never holds more than the burst.
    assert.equal(burst(rl, 60_000, src, 50), RATELIMIT_BURST, 'burst after a long pause');
  });

  it('keys IPv4 by address (ports do not matter) and IPv6 by /64', () => {
    const rl = new RateLimiter();
    let ok = 0;
    for (let port = 1; port <= 50; port++) if (rl.allow(0, v4(198, 51, 100, 7, port))) ok++;
    assert.equal(ok, RATELIMIT_BURST, 'fifty ports of one IPv4 address share a bucket');
    assert.equal(burst(rl, 0, v4(198, 51, 100, 8), 10), RATELIMIT_BURST, 'the next address has its own');
    const a = '20010db8000000010000000000000001';
    const sameNet = '20010db800000001ffffffffffffffff';
    const otherNet = '20010db8000000020000000000000001';
    assert.equal(burst(rl, 0, v6(a), 3), 3, 'v6 first three');
    assert.equal(burst(rl, 0, v6(sameNet, 9), 10), RATELIMIT_BURST - 3, 'same /64, another host and port: same bucket');
    assert.equal(burst(rl, 0, v6(otherNet), 10), RATELIMIT_BURST, 'another /64: its own bucket');
    // Opaque tags (not 6 or 18 bytes) are keyed by all their bytes.
    assert.equal(burst(rl, 0, new TextEncoder().encode('node-a'.padEnd(7)), 10), RATELIMIT_BURST, 'opaque tag');
    assert.equal(burst(rl, 0, new TextEncoder().encode('node-b'.padEnd(7)), 10), RATELIMIT_BURST, 'another opaque tag');
  });

  it('forgets idle sources (garbage collection) and stays bounded under a spoofed flood', () => {
    const rl = new RateLimiter({ maxEntries: 1000 });
    // A flood from 5000 spoofed addresses in one millisecond: only 1000 are tracked.
    let ok = 0;
    for (let i = 0; i < 5000; i++) if (rl.allow(10, v4(10, (i >> 16) & 255, (i >> 8) & 255, i & 255))) ok++;
    assert.equal(ok, 1000, 'new sources beyond the bound are refused');
    assert.equal(rl.stats.entries, 1000, 'table bounded');
    assert.equal(rl.stats.tableFull, 4000, 'refusals counted');
    // A legitimate source arriving while the table is full is refused until the sweep...
    assert.equal(rl.allow(500, v4(192, 0, 2, 99)), false, 'refused while full');
    // ...which forgets everything idle for more than GC_AFTER.
    assert.equal(rl.allow(10 + RATELIMIT_GC_AFTER + 1, v4(192, 0, 2, 99)), true, 'admitted after the sweep');
    assert.equal(rl.stats.entries, 1, 'only the live source remains');
    // A source that keeps sending is kept.
    for (let t = 2000; t < 6000; t += 100) assert.equal(rl.allow(t, v4(192, 0, 2, 99)), true, `steady 10/s at ${t}`);
    assert.equal(rl.stats.entries, 1, 'still one entry');
  });

  it('survives a clock that jumps forward by hours or backwards, without extra tokens', () => {
    const rl = new RateLimiter();
    const src = v4(203, 0, 113, 5);
    assert.equal(burst(rl, 5_000, src, 10), RATELIMIT_BURST, 'first burst');
    assert.equal(burst(rl, 4_000, src, 10), 0, 'backwards: no tokens');
    assert.equal(burst(rl, 5_000 + 6 * 3600_000, src, 10), RATELIMIT_BURST, 'six hours later: a full burst, no more');
    assert.throws(() => new RateLimiter({ packetsPerSecond: 0 }), RangeError);
  });
});

describe('RateLimiter edges', () => {
  it('takes packetsPerSecond and burst as options, and refuses nonsense', () => {
    const rl = new RateLimiter({ packetsPerSecond: 10, burst: 2 });
    const src = v4(192, 0, 2, 1);
    assert.equal(burst(rl, 0, src, 10), 2, 'burst of 2');
    assert.equal(rl.allow(99, src), false, 'one token per 100 ms: not yet');
    assert.equal(rl.allow(100, src), true, 'one token per 100 ms');
    assert.equal(burst(new RateLimiter({ burst: 1 }), 0, src, 10), 1, 'burst 1 is allowed');
    assert.equal(burst(new RateLimiter({ packetsPerSecond: 1000 }), 0, src, 10), RATELIMIT_BURST, 'the default burst');
    for (const bad of [{ packetsPerSecond: 0 }, { packetsPerSecond: -1 }, { packetsPerSecond: NaN }, { burst: 0.5 }, { burst: NaN }]) {
      assert.throws(() => new RateLimiter(bad), RangeError, JSON.stringify(bad));
    }
  });

  it('counts what it allowed and refused, and a bound below 1 still tracks one source', () => {
    const rl = new RateLimiter({ maxEntries: 0 });
    assert.equal(burst(rl, 0, v4(192, 0, 2, 1), 7), RATELIMIT_BURST);
    assert.equal(rl.allow(0, v4(192, 0, 2, 2)), false, 'table full');
    assert.deepEqual(rl.stats, { allowed: RATELIMIT_BURST, limited: 3, tableFull: 1, entries: 1 });
  });

  it('keys IPv4 by all four address bytes and IPv6 by exactly the first 8 bytes', () => {
    const rl = new RateLimiter();
    burst(rl, 0, v4(10, 20, 30, 40), RATELIMIT_BURST);
    for (const other of [v4(11, 20, 30, 40), v4(10, 21, 30, 40), v4(10, 20, 31, 40), v4(10, 20, 30, 41)]) {
      assert.equal(rl.allow(0, other), true, `${other.join('.')} has its own bucket`);
    }
    const base = '20010db8000000010000000000000001';
    burst(rl, 0, v6(base), RATELIMIT_BURST);
    assert.equal(rl.allow(0, v6('20010db8000000010100000000000001')), false, 'byte 8 differs: same /64');
    assert.equal(rl.allow(0, v6('20010db8000000000000000000000001')), true, 'byte 7 differs: another /64');
    assert.equal(rl.allow(0, v6('21010db8000000010000000000000001')), true, 'byte 0 differs: another /64');
    // An opaque 8-byte tag made of the same bytes as that /64 is another source.
    const opaque = v6(base).subarray(0, 8);
    assert.equal(rl.allow(0, opaque), true, 'an opaque tag never shares an IPv6 bucket');
    // Nor do opaque tags of 7 or 9 bytes that spell a /64's bytes with or without a prefix.
    const net = '78010203040506070000000000000001';
    burst(rl, 0, v6(net), RATELIMIT_BURST);
    assert.equal(rl.allow(0, v6(net).subarray(1, 8)), true, '7 bytes: the /64 without its first byte');
    assert.equal(rl.allow(0, Uint8Array.of(0x36, ...v6(net).subarray(0, 8))), true, "9 bytes: '6' and the /64");
    // Opaque tags count every byte: two 7-byte tags differing only in the last byte.
    burst(rl, 0, Uint8Array.of(1, 2, 3, 4, 5, 6, 7), RATELIMIT_BURST);
    assert.equal(rl.allow(0, Uint8Array.of(1, 2, 3, 4, 5, 6, 8)), true);
    assert.equal(rl.allow(0, Uint8Array.of(1, 2, 3, 4, 5, 6, 7)), false);
  });

  it('sweeps sources idle for more than GC_AFTER, at most once per GC_INTERVAL', () => {
    const rl = new RateLimiter();
    rl.allow(0, v4(192, 0, 2, 1)); // the first call sweeps (nothing) and sets the sweep time to 0
    rl.allow(500, v4(192, 0, 2, 2));
    rl.allow(999, v4(192, 0, 2, 3));
    assert.equal(rl.stats.entries, 3, 'no sweep before GC_INTERVAL');
    rl.allow(1000, v4(192, 0, 2, 4)); // sweep at 1000: 0 is idle exactly GC_AFTER, kept
    assert.equal(rl.stats.entries, 4, 'idle exactly GC_AFTER is kept');
    rl.allow(1999, v4(192, 0, 2, 5));
    assert.equal(rl.stats.entries, 5, 'no second sweep within the interval');
    rl.allow(2000, v4(192, 0, 2, 6)); // sweep at 2000: 0 and 500 idle > 1000, 999 idle 1001
    assert.equal(rl.stats.entries, 3, 'sources last seen at 0, 500 and 999 swept');
    rl.gc(3000);
    assert.equal(rl.stats.entries, 1, 'gc at 3000 forgets 1000 and 1999 (idle > 1000), keeps 2000');
    rl.clear();
    assert.equal(rl.stats.entries, 0, 'clear forgets every source');
    assert.equal(burst(rl, 3000, v4(192, 0, 2, 6), 10), RATELIMIT_BURST, 'a full bucket again');
  });

  it('wouldAllow agrees with allow when the table is full and around a sweep, and on a clock gone back', () => {
    const rl = new RateLimiter({ maxEntries: 1 });
    rl.allow(0, v4(192, 0, 2, 1));
    assert.equal(rl.wouldAllow(999, v4(192, 0, 2, 2)), false, 'full, no sweep due');
    assert.equal(rl.allow(999, v4(192, 0, 2, 2)), false);
    assert.equal(rl.wouldAllow(1000, v4(192, 0, 2, 2)), true, 'a sweep is due and may free room');
    // One token left, then the clock goes back: still one token, none added.
    const rl2 = new RateLimiter();
    const src = v4(192, 0, 2, 9);
    burst(rl2, 5000, src, RATELIMIT_BURST - 1);
    assert.equal(rl2.wouldAllow(4000, src), true, 'the last token is still there');
    assert.equal(rl2.allow(4000, src), true);
    assert.equal(rl2.wouldAllow(4000, src), false);
    assert.equal(rl2.wouldAllow(5049, src), false, 'not refilled yet');
    assert.equal(rl2.wouldAllow(5050, src), true);
  });
});

describe('rate limiting in the endpoint (under load)', () => {
  /** a initiates to v; v is forced under load; datagrams a → v are recorded. */
  function setup() {
    const sim = new Simulation();
    const v = sim.node('v', 11);
    const a = sim.node('a', 12);
    const va = v.addPeer(a);
    const av = a.addPeer(v);
    const toV: Uint8Array[] = [];
    const transmit = sim.transmit.bind(sim);
    sim.transmit = (from, to, d) => {
      if (to === 'v') toV.push(d.slice());
      transmit(from, to, d);
    };
    v.endpoint.setUnderLoad(true);
    return { sim, v, a, va, av, toV };
  }

  it('limits cookie replies per source: a flood of mac1-valid initiations gets at most the burst', () => {
    const { sim, v, a, av, toV } = setup();
    a.send(av, packet(1, 0));
    const init = toV.find((d) => d[0] === MESSAGE_INITIATION);
    assert.ok(init, 'an initiation');
    sim.run(10);
    // Replay it 1000 times from the attacker's address within 100 ms: the burst, plus one
    // token refilled after 50 ms.
    for (let i = 0; i < 1000; i++) v.endpoint.recv(sim.now + i / 10, init.slice(), 'x');
    const c = v.endpoint.counters;
    assert.equal(c.cookieRepliesSent, 1 + RATELIMIT_BURST + 1, `cookie replies: ${c.cookieRepliesSent}`);
    assert.equal(c.dropped.cookieRateLimited, 1000 - RATELIMIT_BURST - 1, 'the rest dropped and counted');
    // Another source is not affected by the attacker's bucket.
    assert.equal(v.endpoint.recv(sim.now + 100, init.slice(), 'y'), 'dropped');
    assert.equal(c.cookieRepliesSent, 1 + RATELIMIT_BURST + 2, 'y got its cookie reply');
  });

  it('limits handshakes with a valid mac2 per source, and the legitimate peer still connects', () => {
    const { sim, v, a, av, toV } = setup();
    a.send(av, packet(1, 0));
    sim.run(2 * (REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX));
    // The first initiation got a cookie reply, the retry carried mac2 and completed.
    assert.equal(a.sentOfType(MESSAGE_INITIATION).length, 2);
    assert.equal(v.sentOfType(MESSAGE_COOKIE_REPLY).length, 1);
    assert.equal(v.delivered.length, 1, 'the packet arrived through the cookie path');
    const withMac2 = toV.filter((d) => d[0] === MESSAGE_INITIATION)[1]!;
    // Replays of the mac2-valid initiation from a's address: a few reach the handshake code
    // (and fail as replays), the rest are rate-limited before any Diffie-Hellman.
    const before = { ...v.endpoint.counters.dropped };
    for (let i = 0; i < 500; i++) v.endpoint.recv(sim.now + i / 10, withMac2.slice(), 'a');
    const d = v.endpoint.counters.dropped;
    const reached = d.replayedTimestamp - before.replayedTimestamp + (d.floodedInitiation - before.floodedInitiation);
    const limited = d.rateLimited - before.rateLimited;
    assert.ok(reached <= RATELIMIT_BURST + 3, `reached the handshake: ${reached}`);
    assert.equal(reached + limited, 500, `all 500 accounted for (limited ${limited})`);
    // Data keeps flowing: transport packets are never rate-limited.
    for (let i = 0; i < 100; i++) a.send(av, packet(2, i));
    sim.run(100);
    assert.equal(v.delivered.length, 101, 'data unaffected');
  });

  it('drops a flood before any MAC once its source is out of tokens, with zero or random mac2', () => {
    let macs = 0;
    const counting: CryptoProvider = { ...nodeCrypto, mac: (key, data) => { macs++; return nodeCrypto.mac(key, data); } };
    const sim = new Simulation();
    const v = sim.node('v', 31, { crypto: counting });
    const a = sim.node('a', 32);
    v.addPeer(a);
    const av = a.addPeer(v);
    const toV: Uint8Array[] = [];
    const transmit = sim.transmit.bind(sim);
    sim.transmit = (from, to, d) => { if (to === 'v') toV.push(d.slice()); transmit(from, to, d); };
    v.endpoint.setUnderLoad(true);
    a.send(av, packet(1, 0));
    const init = toV[0]!;
    const t0 = sim.now + 10;
    // Zero mac2, 1000 times in 10 ms from one source: mac1 + the cookie for the first five only.
    macs = 0;
    for (let i = 0; i < 1000; i++) v.endpoint.recv(t0 + i / 100, init.slice(), 'x');
    assert.ok(macs <= 2 * RATELIMIT_BURST, `zero mac2: ${macs} MACs for 1000 messages`);
    assert.equal(v.endpoint.counters.dropped.cookieRateLimited, 1000 - RATELIMIT_BURST, 'zero mac2: the rest dropped');
    // Random mac2 from another source: mac1, cookie, mac2 and a reply while either bucket lasts.
    macs = 0;
    const d0 = v.endpoint.counters.dropped.rateLimited;
    for (let i = 0; i < 1000; i++) {
      const m = init.slice();
      for (let j = m.length - 16; j < m.length; j++) m[j] = (i * 7 + j) & 255 | 1;
      v.endpoint.recv(t0 + i / 100, m, 'y');
    }
    assert.ok(macs <= 4 * RATELIMIT_BURST, `random mac2: ${macs} MACs for 1000 messages`);
    assert.equal(v.endpoint.counters.dropped.rateLimited - d0, 1000 - RATELIMIT_BURST, 'random mac2: the rest dropped');
    // The legitimate peer at its own address is unaffected: its retry carries a real mac2.
    sim.run(2 * (REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX));
    assert.equal(v.delivered.length, 1, 'a got through');
  });

  it('can be turned off', () => {
    const sim = new Simulation();
    const v = sim.node('v', 21, { rateLimit: false });
    const a = sim.node('a', 22);
    v.addPeer(a);
    const av = a.addPeer(v);
    const toV: Uint8Array[] = [];
    const transmit = sim.transmit.bind(sim);
    sim.transmit = (from, to, d) => { if (to === 'v') toV.push(d.slice()); transmit(from, to, d); };
    v.endpoint.setUnderLoad(true);
    a.send(av, packet(1, 0));
    const init = toV[0]!;
    for (let i = 0; i < 100; i++) v.endpoint.recv(sim.now, init.slice(), 'x');
    assert.equal(v.endpoint.counters.cookieRepliesSent, 100, 'every one answered');
  });
});
