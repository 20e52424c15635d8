/**
 * src/core/ip-address.ts against independent references: Node's `net.isIPv4/isIPv6` for what
 * is an address, the WHATWG URL serializer (the same RFC 5952 compression) for IPv6 text, and a
 * table of netip's accepted and refused forms with the error each refusal names.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import fc from 'fast-check';
import { formatIp, parseIp, PrefixError, tryParseIp } from '../../src/core/ip-address.ts';

const RUNS = 3000;

/** The URL parser's compressed form of 16 bytes (it writes IPv4-mapped tails in hex). */
function urlForm(bytes: Uint8Array): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}

const isMapped = (b: Uint8Array) => b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;

/** 16 bytes with long zero runs likely: each group is zero, 0xffff or random. */
const ipv6Bytes = fc.array(fc.oneof(fc.constant(0), fc.constant(0), fc.constant(0xffff), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 })
  .map((groups) => { const b = new Uint8Array(16); groups.forEach((g, i) => { b[2 * i] = g >> 8; b[2 * i + 1] = g & 0xff; }); return b; });

describe('IP addresses as text', () => {
  it('formats IPv6 as RFC 5952 (the URL serializer agrees) and parses its own output back', () => {
    fc.assert(fc.property(ipv6Bytes, (b) => {
      const text = formatIp(b);
      if (isMapped(b)) assert.equal(text, `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`);
      else assert.equal(text, urlForm(b));
      assert.deepEqual(parseIp(text), b);
    }), { numRuns: RUNS });
  });

  it('formats and parses IPv4 both ways', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 4, maxLength: 4 }), (b) => {
      const text = formatIp(b);
      assert.equal(text, [...b].join('.'));
      assert.deepEqual(parseIp(text), b);
    }), { numRuns: RUNS });
  });

  it('accepts exactly the dotted quads net.isIPv4 accepts', () => {
    const text = fc.string({ unit: fc.constantFrom('0', '1', '2', '5', '9', '.', '.', '25', '255', '256', 'x'), maxLength: 12 });
    fc.assert(fc.property(text, (s) => {
      assert.equal(tryParseIp(s) !== null, net.isIPv4(s), s);
    }), { numRuns: RUNS });
  });

  it('accepts exactly the IPv6 texts net.isIPv6 accepts (no zones)', () => {
    const unit = fc.constantFrom(':', ':', '::', '0', '1', 'f', 'F', 'ab', 'ffff', '12345', '.', '1.2.3.4', '255', 'g');
    const text = fc.array(unit, { maxLength: 14 }).map((parts) => parts.join(''));
    fc.assert(fc.property(text, (s) => {
      if (!s.includes(':')) return;
      assert.equal(tryParseIp(s) !== null, net.isIPv6(s), s);
      const parsed = tryParseIp(s);
      // What it accepts means the same 16 bytes as the URL parser reads from it.
      if (parsed && !s.includes('.')) assert.equal(urlForm(parsed), new URL(`http://[${s}]/`).hostname.slice(1, -1));
    }), { numRuns: RUNS });
  });

  it('places the zero groups of :: where they stand', () => {
    const cases: [string, string][] = [
      ['::', '00000000000000000000000000000000'],
      ['::1', '00000000000000000000000000000001'],
      ['1::', '00010000000000000000000000000000'],
      ['1:2::7:8', '00010002000000000000000000070008'],
      ['1:2:3:4:5:6:7::', '00010002000300040005000600070000'],
      ['::2:3:4:5:6:7:8', '00000002000300040005000600070008'],
      ['::1.2.3.4', '00000000000000000000000001020304'],
      ['::ffff:10.0.0.1', '00000000000000000000ffff0a000001'],
      ['1:2:3:4:5:6:1.2.3.4', '00010002000300040005000601020304'],
      ['FE80::ABCD', 'fe80000000000000000000000000abcd'],
    ];
    for (const [text, hex] of cases) assert.equal(Buffer.from(parseIp(text)).toString('hex'), hex, text);
  });

  it('refuses malformed text with a PrefixError naming the problem', () => {
    const cases: [string, RegExp][] = [
      ['1.2.3', /IPv4 address too short/],
      ['1.2.3.4.5', /IPv4 address too long/],
      ['1.2.3.04', /leading zero/],
      ['1.2.3.256', /above 255/],
      ['1..3.4', /at least one digit/],
      ['1.2.3.', /at least one digit/],
      ['1.2.3.4 ', /unexpected character/],
      ['fe80::1%eth0', /zones are not supported/],
      ['1:2:3:4:5:6:7', /IPv6 address too short/],
      ['1:2:3:4:5:6:7:8:9', /trailing characters/],
      ['12345::', /more than 4 digits/],
      ['1:::2', /at least one digit/],
      ['1::2::3', /more than one '::'/],
      ['1:2:3:4:5:6:7:8::', /must stand for at least one zero group/],
      ['1:2:3:4::5:6:7:8', /must stand for at least one zero group/],
      ['1:2:', /ends with a single colon/],
      ['1:2:3:4:5:1.2.3.4', /embedded IPv4 address must replace the final 2 fields/],
      ['1:2:3:4:5:6:7:1.2.3.4', /embedded IPv4 address must replace the final 2 fields/],
      ['1:2:3:4:5:6:7::1.2.3.4', /too many fields for an embedded IPv4/],
      ['1:g::', /at least one digit/],
      ['1:2x::', /unexpected character in IPv6/],
    ];
    for (const [text, message] of cases) {
      assert.throws(() => parseIp(text), (e: unknown) => e instanceof PrefixError && e.code === 'ERR_PREFIX' && message.test(e.message), text);
      assert.equal(tryParseIp(text), null, text);
    }
  });

  it('quotes long input briefly in errors and refuses byte strings that are not 4 or 16 long', () => {
    assert.throws(() => parseIp(`1.2.3.${'9'.repeat(100)}`), (e: unknown) => e instanceof PrefixError && e.message.includes('…') && e.message.length < 140);
    assert.throws(() => formatIp(new Uint8Array(5)), /4 or 16 bytes, not 5/);
    const exactly64 = `1.2.3.${'4'.repeat(58)}`;
    assert.throws(() => parseIp(exactly64), (e: unknown) => e instanceof PrefixError && e.name === 'PrefixError' && e.message.includes(JSON.stringify(exactly64)));
  });

  it('formats the RFC 5952 corner cases as netip does', () => {
    const cases: [string, string][] = [
      ['00000000000000000000000000000000', '::'],
      ['00010000000000000000000000000000', '1::'],
      ['00000000000000000000000000000001', '::1'],
      ['00010000000100000000000000000001', '1:0:1::1'], // a single zero group is not shortened
      ['00010000000000010000000000010001', '1::1:0:0:1:1'], // the first of two equal runs
      ['00010000000000010000000000000000', '1:0:0:1::'],
      ['20010db8000000000000000000000001', '2001:db8::1'],
      ['00000000000000000000ffff0a000001', '::ffff:10.0.0.1'],
      ['00000000000000000001ffff0a000001', '::1:ffff:a00:1'], // not mapped: a non-zero byte before ffff
      ['000000000000000000000fff0a000001', '::fff:a00:1'], // not mapped: only the second byte is ff
      ['0000000000000000000000ff0a000001', '::ff:a00:1'],
    ];
    for (const [hex, text] of cases) assert.equal(formatIp(new Uint8Array(Buffer.from(hex, 'hex'))), text, hex);
  });
});
