/**
 * IP addresses as text and bytes, for every layer: 4 or 16 bytes from IPv4 dotted decimal or
 * IPv6 text, and back. Parsing follows Go's net/netip (what wireguard-go parses UAPI values
 * with): strict dotted decimal (no leading zeros), IPv6 groups of 1..4 hex digits, at most one
 * `::`, an optional dotted IPv4 tail; zones (`fe80::1%eth0`) are refused, so callers split them
 * off first. IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) stay IPv6. Formatting is RFC 5952,
 * exactly as netip.Addr.String.
 */
import { WireweaveError } from './errors.ts';

/** A malformed address or prefix: bad text, wrong byte length, prefix length out of range. */
export class PrefixError extends WireweaveError {
  declare readonly code: 'ERR_PREFIX';
  constructor(message: string) {
    super('ERR_PREFIX', message);
    this.name = 'PrefixError';
  }
}

/** Parses an IPv4 (dotted decimal) or IPv6 address into 4 or 16 bytes. */
export function parseIp(text: string): Uint8Array {
  if (text.includes(':')) return parseIPv6(text);
  const out = new Uint8Array(4);
  parseIPv4Into(text, 0, text.length, out, 0, text);
  return out;
}

/** parseIp, or null where it would throw. */
export function tryParseIp(text: string): Uint8Array | null {
  try {
    return parseIp(text);
  } catch (err) {
    if (err instanceof PrefixError) return null;
    throw err;
  }
}

/**
 * Formats 4 bytes as dotted decimal, 16 bytes as RFC 5952 IPv6 (lowercase, no leading zeros,
 * the longest run of two or more zero groups, the first on a tie, shortened to `::`), and
 * IPv4-mapped addresses as `::ffff:a.b.c.d`, exactly as Go's netip.Addr.String.
 */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  if (bytes.length !== 16) throw new PrefixError(`an IP address has 4 or 16 bytes, not ${bytes.length}`);
  let mapped = bytes[10] === 0xff && bytes[11] === 0xff;
  for (let i = 0; i < 10 && mapped; i++) if (bytes[i] !== 0) mapped = false;
  if (mapped) return `::ffff:${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  const group = (i: number) => (bytes[2 * i]! << 8) | bytes[2 * i + 1]!;
  // Longest run of at least two zero groups; the first one wins a tie.
  let runStart = -1;
  let runLength = 1;
  for (let i = 0; i < 8; ) {
    if (group(i) !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && group(j) === 0) j++;
    if (j - i > runLength) { runStart = i; runLength = j - i; }
    i = j;
  }
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (i === runStart) {
      out += '::';
      i += runLength - 1;
      continue;
    }
    if (out !== '' && !out.endsWith(':')) out += ':';
    out += group(i).toString(16);
  }
  return out;
}

/** Input shown in an error message: JSON-quoted, cut to 64 characters. */
export function quote(text: string): string {
  return JSON.stringify(text.length > 64 ? `${text.slice(0, 64)}…` : text);
}

/** Strict dotted decimal, as netip: four fields, 0..255, no leading zeros, nothing else. */
function parseIPv4Into(s: string, start: number, end: number, out: Uint8Array, at: number, whole: string): void {
  let field = 0;
  let value = 0;
  let digits = 0;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x30 && c <= 0x39) {
      if (digits === 1 && value === 0) throw new PrefixError(`IPv4 field has a leading zero in ${quote(whole)}`);
      value = value * 10 + (c - 0x30);
      digits++;
      if (value > 255) throw new PrefixError(`IPv4 field has a value above 255 in ${quote(whole)}`);
    } else if (c === 0x2e) {
      if (digits === 0) throw new PrefixError(`IPv4 field must have at least one digit in ${quote(whole)}`);
      if (field === 3) throw new PrefixError(`IPv4 address too long: ${quote(whole)}`);
      out[at + field++] = value;
      value = 0;
      digits = 0;
    } else {
      throw new PrefixError(`unexpected character in IP address ${quote(whole)}`);
    }
  }
  if (digits === 0) throw new PrefixError(`IPv4 field must have at least one digit in ${quote(whole)}`);
  if (field < 3) throw new PrefixError(`IPv4 address too short: ${quote(whole)}`);
  out[at + 3] = value;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

/** IPv6 text as netip parses it: groups of 1..4 hex digits, at most one `::`, optional dotted tail. */
function parseIPv6(s: string): Uint8Array {
  if (s.includes('%')) throw new PrefixError(`IPv6 zones are not supported: ${quote(s)}`);
  const ip = new Uint8Array(16);
  let ellipsis = -1;
  let i = 0; // bytes written
  let p = 0; // position in s
  const n = s.length;
  if (n >= 2 && s.charCodeAt(0) === 0x3a && s.charCodeAt(1) === 0x3a) {
    ellipsis = 0;
    p = 2;
    if (p === n) return ip;
  }
  while (i < 16) {
    let acc = 0;
    let digits = 0;
    while (p + digits < n) {
      const v = hexValue(s.charCodeAt(p + digits));
      if (v < 0) break;
      if (digits === 4) throw new PrefixError(`IPv6 field has more than 4 digits in ${quote(s)}`);
      acc = acc * 16 + v;
      digits++;
    }
    if (digits === 0) throw new PrefixError(`IPv6 field must have at least one digit in ${quote(s)}`);
    if (p + digits < n && s.charCodeAt(p + digits) === 0x2e) {
      // Embedded IPv4 address: the last 4 bytes.
      if (ellipsis < 0 && i !== 12) throw new PrefixError(`embedded IPv4 address must replace the final 2 fields in ${quote(s)}`);
      if (i + 4 > 16) throw new PrefixError(`too many fields for an embedded IPv4 address in ${quote(s)}`);
      parseIPv4Into(s, p, n, ip, i, s);
      p = n;
      i += 4;
      break;
    }
    ip[i] = acc >> 8;
    ip[i + 1] = acc & 0xff;
    i += 2;
    p += digits;
    if (p === n) break;
    if (s.charCodeAt(p) !== 0x3a) throw new PrefixError(`unexpected character in IPv6 address ${quote(s)}`);
    if (p + 1 === n) throw new PrefixError(`IPv6 address ends with a single colon: ${quote(s)}`);
    p++;
    if (s.charCodeAt(p) === 0x3a) {
      if (ellipsis >= 0) throw new PrefixError(`more than one '::' in ${quote(s)}`);
      ellipsis = i;
      p++;
      if (p === n) break;
    }
  }
  if (p !== n) throw new PrefixError(`trailing characters after IPv6 address in ${quote(s)}`);
  if (i < 16) {
    if (ellipsis < 0) throw new PrefixError(`IPv6 address too short: ${quote(s)}`);
    const gap = 16 - i;
    ip.copyWithin(ellipsis + gap, ellipsis, i);
    ip.fill(0, ellipsis, ellipsis + gap);
  } else if (ellipsis >= 0) {
    throw new PrefixError(`'::' must stand for at least one zero group in ${quote(s)}`);
  }
  return ip;
}
