/**
 * Discovery (docs/mesh.md §4): announcements open only under the network's key for the sender
 * the hub stamped; tampered, replayed, stale and misattributed ones are refused and counted;
 * a Hello's addresses must be host addresses inside the network and unclaimed; derived
 * addresses are stable and inside the prefixes.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { nodeCrypto } from '../../../src/crypto/node.ts';
import { portableCrypto } from '../../../src/crypto/portable.ts';
import { seededRng } from '../../../src/core/rng.ts';
import { encodeHex, generatePrivateKey } from '../../../src/core/keys.ts';
import type { CryptoProvider } from '../../../src/core/crypto.ts';
import { parsePrefix } from '../../../src/device/allowedips.ts';
import { formatIp } from '../../../src/core/ip-address.ts';
import type { Prefix } from '../../../src/device/config.ts';
import { networkKeys } from '../../../src/mesh/protocol/keys.ts';
import {
  DiscoveryBook, MEMBER_TTL_MS, defaultPrefix6, derivedAddresses, nameFromHostname, openAnnouncement, prefixContains, sealAnnouncement,
} from '../../../src/mesh/protocol/discovery.ts';

const T0 = Date.UTC(2026, 11, 5);
const secret = new TextEncoder().encode('correct horse battery staple');

function identity(crypto: CryptoProvider, seed: number) {
  return crypto.x25519PrivateKey(generatePrivateKey(seededRng(seed)));
}

for (const crypto of [nodeCrypto, portableCrypto]) {
  describe(`discovery (${crypto.name})`, () => {
    const net = networkKeys(crypto, 'lab', secret);
    const rng = seededRng(7);
    const a = identity(crypto, 1), b = identity(crypto, 2), c = identity(crypto, 3);
    const prefix4 = parsePrefix('100.96.0.0/16');
    const prefix6 = defaultPrefix6(net.networkId);
    const seal = (sender: Uint8Array, f: { epoch?: number; seq?: number; sent?: number } = {}) =>
      sealAnnouncement(crypto, rng, net.announceKey, net.networkId, sender, { epoch: f.epoch ?? T0, seq: f.seq ?? 0, sent: f.sent ?? T0 });
    const book = (reserved: Prefix[] = []) => new DiscoveryBook({
      crypto, networkId: net.networkId, announceKey: net.announceKey, self: a.publicKey, prefix4, prefix6, reserved: () => reserved,
    });

    it('an announcement opens for its sender only, under its network only', () => {
      const s = seal(b.publicKey, { seq: 5 });
      assert.deepEqual(openAnnouncement(crypto, net.announceKey, net.networkId, b.publicKey, s), { epoch: T0, seq: 5, sent: T0 });
      assert.equal(openAnnouncement(crypto, net.announceKey, net.networkId, c.publicKey, s), 'seal', 'misattributed');
      const other = networkKeys(crypto, 'lab', new TextEncoder().encode('a wrong secret, quite long'));
      assert.equal(openAnnouncement(crypto, other.announceKey, other.networkId, b.publicKey, s), 'seal', 'wrong secret');
      assert.equal(openAnnouncement(crypto, net.announceKey, networkKeys(crypto, 'lab2', secret).networkId, b.publicKey, s), 'seal', 'other network');
      assert.equal(openAnnouncement(crypto, net.announceKey, net.networkId, b.publicKey, s.subarray(1)), 'malformed');
    });

    it('refuses and counts tampered, misattributed, stale and replayed announcements', () => {
      const d = book();
      const first = seal(b.publicKey, { seq: 1 });
      assert.equal(d.onAnnouncement(0, T0, b.publicKey, first).kind, 'new');
      for (let i = 0; i < first.length; i += 7) {
        const t = first.slice();
        t[i]! ^= 1;
        assert.equal(d.onAnnouncement(0, T0, b.publicKey, t).kind, 'dropped', `bit flipped at ${i}`);
      }
      const tampered = d.drops.seal + d.drops.malformed;
      assert.equal(tampered, Math.ceil(first.length / 7));
      // c hands in b's announcement as its own (a member with the secret cannot re-sign it for c).
      assert.deepEqual(d.onAnnouncement(0, T0, c.publicKey, first), { kind: 'dropped', reason: 'seal' });
      assert.equal(d.get(encodeHex(c.publicKey)), undefined);
      // Too old or too far ahead.
      assert.deepEqual(d.onAnnouncement(0, T0 + 121_000, b.publicKey, seal(b.publicKey, { seq: 2 })), { kind: 'dropped', reason: 'stale' });
      assert.deepEqual(d.onAnnouncement(0, T0, b.publicKey, seal(b.publicKey, { seq: 3, sent: T0 + 121_000 })), { kind: 'dropped', reason: 'stale' });
      assert.equal(d.onAnnouncement(1000, T0 + 20_000, b.publicKey, seal(b.publicKey, { seq: 4, sent: T0 + 20_000 })).kind, 'renewed');
      // The older one again: a replay; the newest again: a hub re-delivering it.
      assert.deepEqual(d.onAnnouncement(2000, T0 + 20_000, b.publicKey, first), { kind: 'dropped', reason: 'replay' });
      assert.deepEqual(d.onAnnouncement(2000, T0 + 20_000, b.publicKey, seal(b.publicKey, { seq: 4, sent: T0 + 20_000 })), { kind: 'duplicate' });
      // An older epoch (before b's restart) is a replay whatever its seq.
      assert.deepEqual(d.onAnnouncement(2000, T0 + 20_000, b.publicKey, seal(b.publicKey, { epoch: T0 - 1, seq: 99, sent: T0 + 20_000 })), { kind: 'dropped', reason: 'replay' });
      assert.deepEqual({ ...d.drops }, { malformed: d.drops.malformed, seal: d.drops.seal, stale: 2, replay: 2, full: 0 });
      assert.equal(d.drops.seal + d.drops.malformed, tampered + 1);
      // Our own announcement, echoed back, is not a member.
      assert.equal(d.onAnnouncement(0, T0, a.publicKey, seal(a.publicKey)).kind, 'duplicate');
      assert.equal(d.size, 1);
    });

    it('a member expires without newer announcements, and a replay cannot bring it back', () => {
      const d = book();
      const s = seal(b.publicKey, { seq: 1 });
      d.onAnnouncement(0, T0, b.publicKey, s);
      assert.equal(d.nextDeadline(), MEMBER_TTL_MS);
      assert.deepEqual(d.expire(MEMBER_TTL_MS - 1), []);
      assert.deepEqual(d.expire(MEMBER_TTL_MS).map((m) => m.hex), [encodeHex(b.publicKey)]);
      assert.equal(d.size, 0);
      assert.equal(d.onAnnouncement(MEMBER_TTL_MS, T0 + 1000, b.publicKey, s).kind, 'duplicate');
      assert.equal(d.size, 0);
      assert.equal(d.onAnnouncement(MEMBER_TTL_MS, T0 + 1000, b.publicKey, seal(b.publicKey, { seq: 2, sent: T0 + 1000 })).kind, 'new');
    });

    it("takes a member's addresses from its Hello only inside the network and unclaimed", () => {
      const reserved = [parsePrefix('100.96.9.0/24')];
      const d = book(reserved);
      const hello = (addresses: string[], generation = 1, name = 'bob') =>
        ({ addresses: addresses.map((s) => ({ address: s.split('/')[0]!, bits: Number(s.split('/')[1]) })), name, generation });
      assert.deepEqual(d.onHello(b.publicKey, T0, hello(['100.96.1.2/32'])), { ok: false, reason: 'notMember' });
      d.onAnnouncement(0, T0, b.publicKey, seal(b.publicKey));
      d.onAnnouncement(0, T0, c.publicKey, seal(c.publicKey));
      assert.deepEqual(d.onHello(b.publicKey, T0, hello(['10.0.0.2/32'])), { ok: false, reason: 'outOfRange' });
      assert.deepEqual(d.onHello(b.publicKey, T0, hello(['100.96.0.0/16'])), { ok: false, reason: 'outOfRange' }, 'a range, not a host');
      assert.deepEqual(d.onHello(b.publicKey, T0, hello(['fd00::1/128'])), { ok: false, reason: 'outOfRange' }, 'outside the network /64');
      assert.deepEqual(d.onHello(b.publicKey, T0, hello(['100.96.9.9/32'])), { ok: false, reason: 'overlap' }, 'a configured peer owns it');
      assert.deepEqual(d.onHello(b.publicKey, T0, hello([])), { ok: false, reason: 'noAddress' });
      const v6 = formatIp(derivedAddresses(crypto, b.publicKey, prefix4, prefix6)[1]!.bytes);
      const ok = d.onHello(b.publicKey, T0, hello(['100.96.1.2/32', `${v6}/128`]));
      assert.equal(ok.ok, true);
      assert.deepEqual(d.lookup('BOB'), ['100.96.1.2', v6]);
      // c claims b's address: refused, counted, and b keeps it.
      assert.deepEqual(d.onHello(c.publicKey, T0, hello(['100.96.1.2/32'], 1, 'carol')), { ok: false, reason: 'overlap' });
      assert.equal(d.get(encodeHex(c.publicKey))!.refused, 'overlap');
      assert.deepEqual(d.lookup('carol'), []);
      // An older generation of b's Hello is refused; a newer one moves it.
      assert.deepEqual(d.onHello(b.publicKey, T0, hello(['100.96.1.3/32'], 0)), { ok: false, reason: 'old' });
      assert.equal(d.onHello(b.publicKey, T0, hello(['100.96.1.3/32'], 2)).ok, true);
      assert.deepEqual(d.lookup('bob'), ['100.96.1.3']);
      assert.deepEqual({ ...d.refused }, { notMember: 1, old: 1, noAddress: 1, outOfRange: 3, overlap: 2 });
    });

    it('derives stable addresses inside the prefixes, never the network or broadcast address', () => {
      const [v4, v6] = derivedAddresses(crypto, b.publicKey, prefix4, prefix6);
      assert.deepEqual(derivedAddresses(crypto, b.publicKey, prefix4, prefix6), [v4, v6]);
      assert.notDeepEqual(derivedAddresses(crypto, c.publicKey, prefix4, prefix6)[0], v4);
      assert.ok(prefixContains(prefix4, v4!.bytes) && v4!.bits === 16);
      assert.ok(prefixContains(prefix6, v6!.bytes) && v6!.bits === 64);
      assert.equal(formatIp(prefix6.bytes).slice(0, 2), 'fd');
      // A /30 has two usable hosts: whatever the hash, never .0 or .3.
      const tiny = parsePrefix('10.9.9.0/30');
      for (let seed = 10; seed < 60; seed++) {
        const last = derivedAddresses(crypto, identity(crypto, seed).publicKey, tiny, prefix6)[0]!.bytes[3]!;
        assert.ok(last === 1 || last === 2, `host .${last}`);
      }
    });

    it('names from host names are DNS labels', () => {
      assert.equal(nameFromHostname('Bob_Laptop.local'), 'bob-laptop');
      assert.equal(nameFromHostname('--x--'), 'x');
    });
  });
}
