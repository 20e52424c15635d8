/**
 * Cryptokey routing table: text forms (Go netip rules), the table's wireguard-go semantics
 * (longest match, moves between peers, owner-only `-prefix` removal, entry order), and a
 * property test against a naive model (a list of prefixes scanned linearly), in the manner of
 * wireguard-go's allowedips_rand_test.go.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { fcParams } from '../support/property.ts';
import type { AllowedIpsOptions } from '../../src/device/allowedips.ts';
import { AllowedIps, canonicalPrefix, formatPrefix, parsePrefix } from '../../src/device/allowedips.ts';
import { PrefixError, formatIp, parseIp } from '../../src/core/ip-address.ts';
import type { Prefix } from '../../src/device/config.ts';
import { WireweaveError } from '../../src/core/errors.ts';
import { destinationAddressOffset, sourceAddressOffset } from '../../src/device/ip.ts';
import { icmpEcho4, icmpEcho6 } from '../support/ip.ts';

const P = parsePrefix;
const ip = parseIp;
const fmt = (list: Prefix[]) => list.map(formatPrefix);

function assertPrefixError(f: () => unknown, text: string): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof PrefixError, `${text}: ${String(e)}`);
    assert.equal(e.code, 'ERR_PREFIX');
    assert.ok(WireweaveError.is(e));
    return true;
  }, text);
}

// ---------------------------------------------------------------------------------------------

describe('parsePrefix / formatPrefix', () => {
  it('canonicalises host bits', () => {
    assert.deepEqual(P('10.0.0.1/24'), { family: 4, bytes: Uint8Array.of(10, 0, 0, 0), bits: 24 });
    assert.equal(formatPrefix(P('10.0.0.1/24')), '10.0.0.0/24');
    assert.equal(formatPrefix(P('10.255.255.255/9')), '10.128.0.0/9');
    assert.equal(formatPrefix(P('255.255.255.255/0')), '0.0.0.0/0');
    assert.equal(formatPrefix(P('fd00::1/64')), 'fd00::/64');
    assert.equal(formatPrefix(P('fd00:1234:5678:9abc:def0::1/57')), 'fd00:1234:5678:9a80::/57');
    assert.equal(formatPrefix(P('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/127')), 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127');
    assert.equal(formatPrefix(P('2001:db8::1/0')), '::/0');
  });

  it('reads a bare address as a host prefix', () => {
    assert.deepEqual(P('192.168.1.7'), { family: 4, bytes: Uint8Array.of(192, 168, 1, 7), bits: 32 });
    assert.equal(formatPrefix(P('fd00::7')), 'fd00::7/128');
    assert.equal(P('::').bits, 128);
  });

  it('keeps IPv4-mapped addresses IPv6, as netip and wireguard-go do', () => {
    const p = P('::ffff:10.0.0.1/128');
    assert.equal(p.family, 6);
    assert.equal(formatPrefix(p), '::ffff:10.0.0.1/128');
    assert.equal(formatPrefix(P('::ffff:10.0.0.1/120')), '::ffff:10.0.0.0/120');
    assert.equal(formatPrefix(P('::FFFF:0A00:0001')), '::ffff:10.0.0.1/128');
    // Masked below the ffff marker it is no longer mapped.
    assert.equal(formatPrefix(P('::ffff:10.0.0.1/80')), '::/80');
  });

  it('accepts the spellings netip accepts', () => {
    const ok: [string, string][] = [
      ['0.0.0.0/0', '0.0.0.0/0'],
      ['255.255.255.255/32', '255.255.255.255/32'],
      ['::/0', '::/0'],
      ['::1/128', '::1/128'],
      ['1::/16', '1::/16'],
      ['FD00::ABCD/128', 'fd00::abcd/128'],
      ['0001:0002:0003:0004:0005:0006:0007:0008/128', '1:2:3:4:5:6:7:8/128'],
      ['1:2:3:4:5:6:7::/128', '1:2:3:4:5:6:7:0/128'],
      ['::2:3:4:5:6:7:8/128', '0:2:3:4:5:6:7:8/128'],
      ['1:2:3:4:5:6:1.2.3.4/128', '1:2:3:4:5:6:102:304/128'],
      ['::1.2.3.4/128', '::102:304/128'],
      ['64:ff9b::192.0.2.33/96', '64:ff9b::/96'],
    ];
    for (const [input, want] of ok) assert.equal(formatPrefix(P(input)), want, input);
  });

  it('rejects garbage with ERR_PREFIX', () => {
    const bad = [
      '', '/', '/24', '10.0.0.1/', '10.0.0.1/33', '::/129', '10.0.0.1/024', '10.0.0.1/00', '10.0.0.1/+8',
      '10.0.0.1/-1', '10.0.0.1/1e1', '10.0.0.1/8/8', '10.0.0.1/ 8', ' 10.0.0.1', '10.0.0.1 ', '10.0.0.1/8 ',
      '10.0.0', '10.0.0.0.0', '10.0.0.256', '010.0.0.1', '10.00.0.1', '10..0.1', '.10.0.0', '10.0.0.',
      '1.2.3.4a', '0x0a.0.0.1', 'fe80::1%eth0/64', 'fe80::1%eth0', ':::', '::::', ':1::', '1::2::3', '1:2',
      '12345::', 'g::', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7:8::', '::1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:',
      '::1.2.3', '1.2.3.4::', '1:2:3:4:5:1.2.3.4', '1:2:3:4:5:6:7:1.2.3.4', '::1.2.3.04', '::ffff:1.2.3.4.5',
      '[::1]', '::1/128/', '１.2.3.4',
    ];
    for (const text of bad) assertPrefixError(() => P(text), text);
  });

  it('rejects malformed prefix objects', () => {
    const cases: Prefix[] = [
      { family: 4, bytes: new Uint8Array(16), bits: 8 },
      { family: 6, bytes: new Uint8Array(4), bits: 8 },
      { family: 4, bytes: new Uint8Array(4), bits: 33 },
      { family: 6, bytes: new Uint8Array(16), bits: -1 },
      { family: 4, bytes: new Uint8Array(4), bits: 1.5 },
      { family: 5 as 4, bytes: new Uint8Array(4), bits: 8 },
    ];
    const t = new AllowedIps<string>();
    for (const p of cases) {
      assertPrefixError(() => formatPrefix(p), JSON.stringify(p));
      assertPrefixError(() => t.insert(p, 'a'), JSON.stringify(p));
      assertPrefixError(() => canonicalPrefix(p), JSON.stringify(p));
    }
    assert.equal(t.size, 0);
  });

  it('canonicalPrefix copies and masks', () => {
    const raw: Prefix = { family: 4, bytes: Uint8Array.of(10, 1, 2, 3), bits: 12 };
    const c = canonicalPrefix(raw);
    assert.deepEqual(c, { family: 4, bytes: Uint8Array.of(10, 0, 0, 0), bits: 12 });
    assert.deepEqual(raw.bytes, Uint8Array.of(10, 1, 2, 3));
  });
});

describe('parseIp / formatIp', () => {
  it('formats IPv6 as RFC 5952 and Go netip do', () => {
    const cases: [string, string][] = [
      ['0:0:0:0:0:0:0:0', '::'],
      ['0:0:0:0:0:0:0:1', '::1'],
      ['1:0:0:0:0:0:0:0', '1::'],
      ['1:0:0:0:0:0:0:1', '1::1'],
      // A single zero group is not shortened.
      ['1:0:2:3:4:5:6:7', '1:0:2:3:4:5:6:7'],
      ['0:1:2:3:4:5:6:7', '0:1:2:3:4:5:6:7'],
      ['1:2:3:4:5:6:7:0', '1:2:3:4:5:6:7:0'],
      // The longest run wins; on a tie, the first.
      ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
      ['1:0:0:0:2:0:0:3', '1::2:0:0:3'],
      ['1:0:0:2:3:0:0:4', '1::2:3:0:0:4'],
      ['0:0:1:0:0:0:0:0', '0:0:1::'],
      ['2001:DB8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['2001:0db8:0000:0000:0000:ff00:0042:8329', '2001:db8::ff00:42:8329'],
      ['fe80::0001', 'fe80::1'],
      ['::ffff:0:0', '::ffff:0.0.0.0'],
      ['::ffff:c000:0280', '::ffff:192.0.2.128'],
      ['::fffe:c000:0280', '::fffe:c000:280'],
      ['0:0:0:0:1:ffff:c000:0280', '::1:ffff:c000:280'],
    ];
    for (const [input, want] of cases) {
      assert.equal(formatIp(ip(input)), want, input);
      assert.equal(formatIp(ip(want)), want, `${want} is a fixed point`);
    }
  });

  it('formats IPv4 as dotted decimal', () => {
    assert.equal(formatIp(ip('0.0.0.0')), '0.0.0.0');
    assert.equal(formatIp(ip('255.1.20.100')), '255.1.20.100');
    assert.deepEqual(ip('1.2.3.4'), Uint8Array.of(1, 2, 3, 4));
  });

  it('rejects addresses of other lengths', () => {
    assertPrefixError(() => formatIp(new Uint8Array(5)), 'five bytes');
    assertPrefixError(() => formatIp(new Uint8Array(0)), 'empty');
  });

  it('round trips any address, and matches WHATWG URL serialisation for IPv6', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 4, maxLength: 4 }), (b) => {
      assert.deepEqual(ip(formatIp(b)), b);
    }), fcParams(2000));
    // Bytes from a small alphabet so that zero runs of every length and position show up.
    const group = fc.constantFrom(0, 0, 0, 1, 0xffff, 0x0a0b);
    fc.assert(fc.property(fc.array(group, { minLength: 8, maxLength: 8 }), fc.boolean(), (groups, mapped) => {
      const b = new Uint8Array(16);
      groups.forEach((g, i) => { b[2 * i] = g >> 8; b[2 * i + 1] = g & 0xff; });
      if (mapped) { b.fill(0, 0, 10); b[10] = 0xff; b[11] = 0xff; }
      const text = formatIp(b);
      assert.deepEqual(ip(text), b, text);
      assert.equal(text, text.toLowerCase());
      const isMapped = b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
      if (!isMapped) assert.equal(`[${text}]`, new URL(`http://[${text}]/`).hostname, text);
    }), fcParams(3000));
  });
});

// ---------------------------------------------------------------------------------------------

describe('AllowedIps', () => {
  it('picks the longest matching prefix (IPv4)', () => {
    const t = new AllowedIps<string>();
    // A scenario in the spirit of wireguard-go's TestTrieIPv4.
    t.insert(P('192.168.4.0/24'), 'a');
    t.insert(P('192.168.4.4/32'), 'b');
    t.insert(P('192.168.0.0/16'), 'c');
    t.insert(P('192.95.5.64/27'), 'd');
    t.insert(P('192.95.5.65/27'), 'c'); // same /27: moves from d to c
    t.insert(P('0.0.0.0/0'), 'e');
    t.insert(P('64.15.112.0/20'), 'g');
    t.insert(P('64.15.123.211/25'), 'h');
    t.insert(P('10.0.0.0/25'), 'a');
    t.insert(P('10.0.0.128/25'), 'b');
    t.insert(P('10.1.0.0/30'), 'a');
    t.insert(P('10.1.0.4/30'), 'b');
    t.insert(P('10.1.0.8/29'), 'c');
    t.insert(P('10.1.0.16/29'), 'd');
    const expect: [string, string | undefined][] = [
      ['192.168.4.20', 'a'], ['192.168.4.0', 'a'], ['192.168.4.4', 'b'], ['192.168.200.182', 'c'],
      ['192.95.5.68', 'c'], ['192.95.5.96', 'e'], ['64.15.116.26', 'g'], ['64.15.127.3', 'g'],
      ['64.15.123.200', 'h'], ['64.15.123.1', 'g'], ['10.0.0.127', 'a'], ['10.0.0.128', 'b'], ['10.1.0.3', 'a'],
      ['10.1.0.4', 'b'], ['10.1.0.15', 'c'], ['10.1.0.23', 'd'], ['10.1.0.24', 'e'], ['1.1.1.1', 'e'],
    ];
    for (const [addr, peer] of expect) assert.equal(t.lookup(ip(addr)), peer, addr);
    assert.deepEqual(fmt(t.entriesForPeer('d')), ['10.1.0.16/29']);
    assert.equal(t.size, 13);
    assert.equal(t.lookup(ip('::1')), undefined, 'IPv4 routes never match IPv6');
  });

  it('picks the longest matching prefix (IPv6)', () => {
    const t = new AllowedIps<string>();
    t.insert(P('2607:5300:6000:6b00::c05f:543/128'), 'd');
    t.insert(P('2607:5300:6000:6b00::/64'), 'c');
    t.insert(P('::/0'), 'e');
    t.insert(P('::/0'), 'f'); // moves
    t.insert(P('2404:6800::/32'), 'g');
    t.insert(P('2404:6800:4004:0800:dead:beef:deaf:1337/64'), 'h');
    t.insert(P('2404:6800:4004:0800::/64'), 'h');
    t.insert(P('2404:6800:4004:0800:dead:beef:deaf:1337/128'), 'a');
    t.insert(P('2444:6800:40e4:0800:deae:beef:def1:1337/128'), 'c');
    t.insert(P('2444:6800:f0e4:0800:eeae:beef:0000:0000/98'), 'b');
    const expect: [string, string][] = [
      ['2607:5300:6000:6b00::c05f:543', 'd'], ['2607:5300:6000:6b00::c02e:1ee', 'c'],
      ['2607:5300:6000:6b01::', 'f'], ['2404:6800:4004:806::1006', 'g'], ['2404:6800:4004:806::', 'g'],
      ['2404:6800:4004:800::1', 'h'], ['2404:6800:4004:800:dead:beef:deaf:1337', 'a'],
      ['2404:6800:4004:800:dead:beef:deaf:1338', 'h'], ['2444:6800:40e4:800:deae:beef:def1:1337', 'c'],
      ['2444:6800:f0e4:800:eeae:beef:3fff:ffff', 'b'], ['2444:6800:f0e4:800:eeae:beef:4000:0', 'f'],
    ];
    for (const [addr, peer] of expect) assert.equal(t.lookup(ip(addr)), peer, addr);
    assert.deepEqual(t.entriesForPeer('e'), []);
    assert.equal(t.lookup(ip('10.0.0.1')), undefined, 'IPv6 routes never match IPv4');
  });

  it('routes everything through /0 defaults, per family', () => {
    const t = new AllowedIps<string>();
    t.insert(P('0.0.0.0/0'), 'v4');
    assert.equal(t.lookup(ip('0.0.0.0')), 'v4');
    assert.equal(t.lookup(ip('255.255.255.255')), 'v4');
    assert.equal(t.lookup(ip('::')), undefined);
    t.insert(P('::/0'), 'v6');
    assert.equal(t.lookup(ip('::')), 'v6');
    assert.equal(t.lookup(ip('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff')), 'v6');
    assert.equal(t.lookup(ip('::ffff:10.0.0.1')), 'v6');
    t.insert(P('128.0.0.0/1'), 'high');
    assert.equal(t.lookup(ip('127.255.255.255')), 'v4');
    assert.equal(t.lookup(ip('128.0.0.0')), 'high');
    assert.equal(t.remove(P('0.0.0.0/0'), 'v4'), true);
    assert.equal(t.lookup(ip('1.2.3.4')), undefined);
    assert.equal(t.lookup(ip('200.0.0.1')), 'high');
    assert.equal(t.lookup(ip('2001::1')), 'v6');
  });

  it('never matches an IPv4 packet with an IPv4-mapped prefix', () => {
    const t = new AllowedIps<string>();
    t.insert(P('::ffff:10.0.0.1/128'), 'mapped');
    assert.equal(t.lookup(ip('10.0.0.1')), undefined);
    assert.equal(t.lookup(ip('::ffff:10.0.0.1')), 'mapped');
  });

  it('moves a prefix to the peer that inserts it last', () => {
    const a = { name: 'a' };
    const b = { name: 'b' };
    const t = new AllowedIps<{ name: string }>();
    t.insert(P('10.0.0.0/24'), a);
    t.insert(P('10.0.1.0/24'), a);
    t.insert(P('fd00::/64'), a);
    t.insert(P('10.0.0.77/24'), b); // host bits do not matter: same prefix
    assert.equal(t.lookup(ip('10.0.0.1')), b);
    assert.equal(t.lookup(ip('10.0.1.1')), a);
    assert.deepEqual(fmt(t.entriesForPeer(a)), ['10.0.1.0/24', 'fd00::/64']);
    assert.deepEqual(fmt(t.entriesForPeer(b)), ['10.0.0.0/24']);
    assert.equal(t.size, 3);
    assert.equal(t.get(P('10.0.0.0/24')), b);
    assert.equal(t.get(P('10.0.0.0/23')), undefined, 'get is exact, not longest match');
    // Moving every prefix away forgets the peer.
    t.insert(P('10.0.1.0/24'), b);
    t.insert(P('fd00::/64'), b);
    assert.deepEqual(t.entriesForPeer(a), []);
    assert.equal(t.peerCount, 1);
  });

  it('lists entries in (last) insertion order, IPv4 and IPv6 mixed, as wireguard-go does', () => {
    const t = new AllowedIps<string>();
    for (const p of ['10.0.0.0/8', 'fd00::/8', '0.0.0.0/0', '192.168.0.1/32', '::/0']) t.insert(P(p), 'a');
    assert.deepEqual(fmt(t.entriesForPeer('a')), ['10.0.0.0/8', 'fd00::/8', '0.0.0.0/0', '192.168.0.1/32', '::/0']);
    t.insert(P('fd00::/8'), 'a'); // re-inserting moves it to the end
    assert.deepEqual(fmt(t.entriesForPeer('a')), ['10.0.0.0/8', '0.0.0.0/0', '192.168.0.1/32', '::/0', 'fd00::/8']);
    const out = t.entriesForPeer('a');
    out[0]!.bytes[0] = 99; // fresh objects: mutating them changes nothing
    assert.deepEqual(fmt(t.entriesForPeer('a'))[0], '10.0.0.0/8');
  });

  it('removes a prefix only for its owner (allowed_ip=-prefix)', () => {
    const t = new AllowedIps<string>();
    t.insert(P('10.0.0.0/24'), 'a');
    t.insert(P('10.0.0.0/16'), 'b');
    assert.equal(t.remove(P('10.0.0.0/24'), 'b'), false, 'b does not own the /24');
    assert.equal(t.lookup(ip('10.0.0.1')), 'a');
    assert.equal(t.remove(P('10.0.0.0/25'), 'a'), false, 'not in the table');
    assert.equal(t.remove(P('10.0.0.0/8'), 'b'), false, 'not in the table (a covering prefix)');
    assert.equal(t.remove(P('10.0.0.9/24'), 'a'), true, 'host bits ignored');
    assert.equal(t.lookup(ip('10.0.0.1')), 'b');
    assert.equal(t.remove(P('10.0.0.0/24'), 'a'), false, 'already gone');
    assert.deepEqual(t.entriesForPeer('a'), []);
    assert.equal(t.size, 1);
    assert.equal(t.nodeCount, 1);
  });

  it('removes an internal branch node only when asked by an owner (never)', () => {
    const t = new AllowedIps<string>();
    t.insert(P('10.0.0.0/24'), 'a');
    t.insert(P('10.0.1.0/24'), 'a');
    assert.equal(t.nodeCount, 3, 'two entries under a /23 branch');
    assert.equal(t.remove(P('10.0.0.0/23'), 'a'), false);
    assert.equal(t.get(P('10.0.0.0/23')), undefined);
    t.insert(P('10.0.0.0/23'), 'b'); // the branch node becomes an entry
    assert.equal(t.nodeCount, 3);
    assert.equal(t.size, 3);
    assert.equal(t.lookup(ip('10.0.1.200')), 'a');
    assert.equal(t.remove(P('10.0.0.0/24'), 'a'), true);
    assert.equal(t.lookup(ip('10.0.0.200')), 'b');
  });

  it('removes everything of a peer and leaves an empty trie', () => {
    const t = new AllowedIps<string>();
    const peers = ['a', 'b', 'c', 'd'];
    const prefixes = ['192.168.0.0/16', '192.168.0.0/24', '1.0.0.0/32', '64.0.0.0/32', '128.0.0.0/32',
      '192.0.0.0/32', '255.0.0.0/32', '::/0', 'fd00::/64', 'fd00::1/128', 'fd00:0:0:1::/64'];
    prefixes.forEach((p, i) => t.insert(P(p), peers[i % 4]!));
    assert.equal(t.removeByPeer('a'), 3);
    assert.equal(t.lookup(ip('192.168.0.1')), 'b');
    assert.equal(t.lookup(ip('128.0.0.0')), undefined);
    assert.equal(t.lookup(ip('1.0.0.0')), 'c');
    assert.equal(t.removeByPeer('a'), 0);
    for (const p of peers.slice(1)) t.removeByPeer(p);
    assert.equal(t.size, 0);
    assert.equal(t.nodeCount, 0);
    assert.equal(t.peerCount, 0);
    assert.equal(t.lookup(ip('192.168.0.1')), undefined);
    // A /24 inside a /16 of the same peer, then the peer goes (wireguard-go's last case).
    t.insert(P('192.168.0.0/16'), 'a');
    t.insert(P('192.168.0.0/24'), 'a');
    t.removeByPeer('a');
    assert.equal(t.lookup(ip('192.168.0.1')), undefined);
    assert.equal(t.nodeCount, 0);
  });

  it('looks up addresses in place in IPv4 and IPv6 packets', () => {
    const t = new AllowedIps<string>();
    t.insert(P('10.0.0.0/24'), 'lan4');
    t.insert(P('10.9.0.2/32'), 'host4');
    t.insert(P('fd00::/64'), 'lan6');
    t.insert(P('fd09::2/128'), 'host6');
    const p4 = icmpEcho4('10.9.0.2', '10.0.0.5', 1, 1, new Uint8Array(8));
    assert.equal(t.lookupV4(p4, sourceAddressOffset(p4)), 'host4');
    assert.equal(t.lookupV4(p4, destinationAddressOffset(p4)), 'lan4');
    const p6 = icmpEcho6('fd09::2', 'fd00::5', 1, 1, new Uint8Array(8));
    assert.equal(t.lookupV6(p6, sourceAddressOffset(p6)), 'host6');
    assert.equal(t.lookupV6(p6, destinationAddressOffset(p6)), 'lan6');
    // A view into a larger buffer.
    const big = new Uint8Array(100);
    big.set(p6, 30);
    const view = big.subarray(30, 30 + p6.length);
    assert.equal(t.lookupV6(view, 24), 'lan6');
    assertPrefixError(() => t.lookup(new Uint8Array(5)), 'five bytes');
  });

  it('regression (model test, seed 20240601): the first prefix of a family is counted', () => {
    // Counterexample: [insert ::/0 for a]; size stayed 0 because the empty-trie path of
    // insert did not count the new entry.
    const t = new AllowedIps<string>();
    t.insert(P('::/0'), 'a');
    assert.equal(t.size, 1);
    t.insert(P('10.0.0.0/8'), 'a');
    assert.equal(t.size, 2);
    assert.equal(t.removeByPeer('a'), 2);
    assert.equal(t.size, 0);
  });

  it('refuses undefined or null as a peer', () => {
    const t = new AllowedIps<string>();
    assert.throws(() => t.insert(P('10.0.0.0/8'), undefined as unknown as string), TypeError);
    assert.throws(() => t.insert(P('10.0.0.0/8'), null as unknown as string), TypeError);
    assert.equal(t.size, 0);
  });

  it('checks its options', () => {
    assert.throws(() => new AllowedIps({ jumpBits: 17 }), RangeError);
    assert.throws(() => new AllowedIps({ jumpBits: -1 }), RangeError);
    assert.throws(() => new AllowedIps({ jumpBits: 1.5 }), RangeError);
    assert.throws(() => new AllowedIps({ jumpMinNodes: -1 }), RangeError);
  });

  it('gives the same answers with and without the jump table on a large random table', () => {
    // Differential check at a size where the default table builds its jump tables.
    let seed = 0x1234567;
    const next = () => { seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5; return seed >>> 0; };
    const random = (len: number) => Uint8Array.from({ length: len }, () => next() & 0xff);
    const fast = new AllowedIps<number>();
    const plain = new AllowedIps<number>({ jumpBits: 0 });
    for (let i = 0; i < 10_000; i++) {
      const v6 = (i & 1) === 1;
      const p: Prefix = v6
        ? { family: 6, bytes: random(16), bits: (next() % 129) }
        : { family: 4, bytes: random(4), bits: (next() % 33) };
      fast.insert(p, i % 500);
      plain.insert(p, i % 500);
    }
    const compare = () => {
      for (let i = 0; i < 20_000; i++) {
        const a = random((i & 1) === 1 ? 16 : 4);
        if (fast.lookup(a) !== plain.lookup(a)) assert.fail(`lookup ${formatIp(a)}`);
      }
      for (let peer = 0; peer < 500; peer += 7) {
        for (const p of plain.entriesForPeer(peer)) {
          if (fast.lookup(p.bytes) !== plain.lookup(p.bytes)) assert.fail(`lookup ${formatPrefix(p)}`);
        }
      }
    };
    compare();
    for (let peer = 0; peer < 500; peer += 2) assert.equal(fast.removeByPeer(peer), plain.removeByPeer(peer));
    compare();
    for (let peer = 1; peer < 500; peer += 2) { fast.removeByPeer(peer); plain.removeByPeer(peer); }
    assert.equal(fast.size, 0);
    assert.equal(fast.nodeCount, 0);
    assert.equal(fast.lookup(Uint8Array.of(10, 0, 0, 1)), undefined);
  });

  it('grows, shrinks and reuses nodes: 10,000 peers × 10 prefixes', () => {
    const t = new AllowedIps<number>();
    const prefixOf = (peer: number, j: number): Prefix => {
      if (j < 5) return { family: 4, bytes: Uint8Array.of(10, (peer >> 8) & 0xff, peer & 0xff, j * 32), bits: j === 0 ? 32 : 27 };
      const bytes = new Uint8Array(16);
      bytes.set([0xfd, 0, (peer >> 8) & 0xff, peer & 0xff, 0, j], 0);
      return { family: 6, bytes, bits: j === 5 ? 128 : 64 };
    };
    for (let round = 0; round < 2; round++) {
      for (let peer = 1; peer <= 10_000; peer++) for (let j = 0; j < 10; j++) t.insert(prefixOf(peer, j), peer);
      assert.equal(t.size, 100_000);
      assert.equal(t.peerCount, 10_000);
      assert.ok(t.nodeCount < 200_000);
      for (const peer of [1, 2, 257, 4242, 10_000]) {
        assert.equal(t.lookup(Uint8Array.of(10, (peer >> 8) & 0xff, peer & 0xff, 100)), peer);
        assert.equal(t.entriesForPeer(peer).length, 10);
        assert.equal(formatPrefix(t.entriesForPeer(peer)[0]!), `10.${(peer >> 8) & 0xff}.${peer & 0xff}.0/32`);
      }
      for (let peer = 1; peer <= 10_000; peer++) assert.equal(t.removeByPeer(peer), 10);
      assert.equal(t.size, 0);
      assert.equal(t.nodeCount, 0);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Property test against a naive model

interface ModelEntry { family: 4 | 6; bytes: Uint8Array; bits: number; peer: Peer }
interface Peer { readonly name: string }
const PEERS: readonly Peer[] = [{ name: 'a' }, { name: 'b' }, { name: 'c' }, { name: 'd' }];

function matches(addr: Uint8Array, bytes: Uint8Array, bits: number): boolean {
  for (let i = 0; i < bits; i++) {
    const bit = (x: Uint8Array) => (x[i >> 3]! >> (7 - (i & 7))) & 1;
    if (bit(addr) !== bit(bytes)) return false;
  }
  return true;
}

/** The naive router: a list in insertion order, scanned linearly. */
class Model {
  entries: ModelEntry[] = [];

  private index(p: Prefix): number {
    return this.entries.findIndex((e) => e.family === p.family && e.bits === p.bits && matches(e.bytes, p.bytes, p.bits));
  }

  insert(p: Prefix, peer: Peer): void {
    const c = canonicalPrefix(p);
    const i = this.index(c);
    if (i >= 0) this.entries.splice(i, 1);
    this.entries.push({ ...c, peer });
  }

  remove(p: Prefix, peer: Peer): boolean {
    const i = this.index(p);
    if (i < 0 || this.entries[i]!.peer !== peer) return false;
    this.entries.splice(i, 1);
    return true;
  }

  removeByPeer(peer: Peer): number {
    const before = this.entries.length;
    this.entries = this.entries.filter((e) => e.peer !== peer);
    return before - this.entries.length;
  }

  lookup(addr: Uint8Array): Peer | undefined {
    let best: ModelEntry | undefined;
    for (const e of this.entries) {
      if (e.bytes.length === addr.length && matches(addr, e.bytes, e.bits) && (best === undefined || e.bits > best.bits)) best = e;
    }
    return best?.peer;
  }

  entriesForPeer(peer: Peer): string[] {
    return this.entries.filter((e) => e.peer === peer).map((e) => formatPrefix(e));
  }
}

type Op =
  | { kind: 'insert'; prefix: Prefix; peer: number }
  | { kind: 'remove'; prefix: Prefix; peer: number }
  | { kind: 'removeByPeer'; peer: number }
  | { kind: 'lookup'; address: Uint8Array };

/**
 * Addresses that share long prefixes: a few bases, with the bytes from a random position on
 * replaced by bytes from a small alphabet (or random ones), so prefixes nest at every depth.
 */
function addressArb(len: 4 | 16): fc.Arbitrary<Uint8Array> {
  const bases = len === 4
    ? [[10, 0, 0, 0], [192, 168, 1, 0], [0, 0, 0, 0], [255, 255, 255, 255], [128, 0, 0, 1]]
    : [[0xfd, 0, ...new Array<number>(14).fill(0)], [0x20, 0x01, 0x0d, 0xb8, ...new Array<number>(12).fill(0)],
      new Array<number>(16).fill(0), new Array<number>(16).fill(0xff), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1]];
  const byte = fc.oneof(fc.constantFrom(0x00, 0x01, 0x7f, 0x80, 0xc0, 0xfe, 0xff), fc.integer({ min: 0, max: 255 }));
  return fc.tuple(fc.constantFrom(...bases), fc.integer({ min: 0, max: len }), fc.array(byte, { minLength: len, maxLength: len }))
    .map(([base, from, tail]) => Uint8Array.from(base.map((b, i) => (i < from ? b : tail[i]!))));
}

function prefixArb(family: 4 | 6): fc.Arbitrary<Prefix> {
  const max = family === 4 ? 32 : 128;
  const bits = fc.oneof(
    fc.integer({ min: 0, max }),
    fc.constantFrom(0, 1, max - 1, max, ...(family === 6 ? [31, 32, 33, 63, 64, 65, 96, 97] : [7, 8, 9, 24])),
  );
  // Host bits are left in: the table must ignore them.
  return fc.record({ family: fc.constant(family), bytes: addressArb(family === 4 ? 4 : 16), bits });
}

const anyPrefix = fc.oneof(prefixArb(4), prefixArb(6));
const peerIndex = fc.integer({ min: 0, max: PEERS.length - 1 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('insert' as const), prefix: anyPrefix, peer: peerIndex }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('remove' as const), prefix: anyPrefix, peer: peerIndex }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('removeByPeer' as const), peer: peerIndex }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('lookup' as const), address: fc.oneof(addressArb(4), addressArb(16)) }) },
);

/** Addresses at the edges of every prefix in the model: first, last, and just outside. */
function probes(model: Model): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const e of model.entries) {
    out.push(e.bytes);
    const last = e.bytes.slice();
    for (let i = e.bits; i < last.length * 8; i++) last[i >> 3]! |= 0x80 >> (i & 7);
    out.push(last);
    if (e.bits > 0) {
      const outside = e.bytes.slice();
      outside[(e.bits - 1) >> 3]! ^= 0x80 >> ((e.bits - 1) & 7);
      out.push(outside);
    }
  }
  return out;
}

function runOps(ops: readonly Op[], options?: AllowedIpsOptions): void {
  const t = new AllowedIps<Peer>(options);
  const model = new Model();
  for (const op of ops) {
    switch (op.kind) {
      case 'insert': t.insert(op.prefix, PEERS[op.peer]!); model.insert(op.prefix, PEERS[op.peer]!); break;
      case 'remove': assert.equal(t.remove(op.prefix, PEERS[op.peer]!), model.remove(op.prefix, PEERS[op.peer]!), 'remove'); break;
      case 'removeByPeer': assert.equal(t.removeByPeer(PEERS[op.peer]!), model.removeByPeer(PEERS[op.peer]!), 'removeByPeer'); break;
      case 'lookup': assert.equal(t.lookup(op.address), model.lookup(op.address), `lookup ${formatIp(op.address)}`); break;
    }
    assert.equal(t.size, model.entries.length, 'size');
    assert.ok(t.nodeCount <= Math.max(0, 2 * t.size - 1), `nodeCount ${t.nodeCount} for ${t.size} entries`);
    for (const a of probes(model)) assert.equal(t.lookup(a)?.name, model.lookup(a)?.name, `probe ${formatIp(a)}`);
    for (const peer of PEERS) assert.deepEqual(fmt(t.entriesForPeer(peer)), model.entriesForPeer(peer), `entries of ${peer.name}`);
    for (const e of model.entries) assert.equal(t.get(e), e.peer, `get ${formatPrefix(e)}`);
  }
}

/**
 * Table configurations: the default (small tables never get a jump table), jump tables from
 * the first node (4 and 16 bits), and one created and dropped as the trie grows and shrinks.
 */
const CONFIGS: { name: string; options: AllowedIpsOptions; runs: number }[] = [
  { name: 'default', options: {}, runs: 400 },
  { name: 'no jump table', options: { jumpBits: 0 }, runs: 100 },
  { name: '4-bit jump table', options: { jumpBits: 4, jumpMinNodes: 0 }, runs: 400 },
  { name: '6-bit jump table from 6 nodes', options: { jumpBits: 6, jumpMinNodes: 6 }, runs: 400 },
  { name: '16-bit jump table', options: { jumpBits: 16, jumpMinNodes: 0 }, runs: 40 },
];

describe('AllowedIps against a naive model (fast-check)', () => {
  for (const { name, options, runs } of CONFIGS) {
    it(`agrees on random inserts, removes and lookups (IPv4 and IPv6 mixed; ${name})`, () => {
      fc.assert(fc.property(fc.array(opArb, { maxLength: 40 }), (ops) => runOps(ops, options)), fcParams(runs));
    });

    it(`agrees on longer sequences with few distinct prefixes (${name})`, () => {
      // Prefixes drawn from a small pool, so inserts hit existing entries and removes find them.
      const pool = fc.array(anyPrefix, { minLength: 1, maxLength: 12 });
      const script = pool.chain((prefixes) => fc.array(fc.oneof(
        { weight: 5, arbitrary: fc.record({ kind: fc.constant('insert' as const), prefix: fc.constantFrom(...prefixes), peer: peerIndex }) },
        { weight: 4, arbitrary: fc.record({ kind: fc.constant('remove' as const), prefix: fc.constantFrom(...prefixes), peer: peerIndex }) },
        { weight: 1, arbitrary: fc.record({ kind: fc.constant('removeByPeer' as const), peer: peerIndex }) },
      ), { maxLength: 120 }));
      fc.assert(fc.property(script, (ops: Op[]) => runOps(ops, options)), fcParams(Math.ceil(runs / 2)));
    });
  }
});
