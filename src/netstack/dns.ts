/**
 * A small DNS message codec (RFC 1035, AAAA from RFC 3596): queries for one name, and the parts
 * of responses a stub resolver needs (A, AAAA and CNAME answers). Used to resolve names through
 * the tunnel's DNS servers, and by tests and the forwarder's examples as a responder.
 *
 * Decoding never throws: a malformed message gives null. Compression pointers are followed with
 * a hop limit and must point backwards, so a crafted message cannot loop.
 */
import { formatIp, parseIp } from '../core/ip-address.ts';

export const TYPE_A = 1;
export const TYPE_CNAME = 5;
export const TYPE_AAAA = 28;
export const CLASS_IN = 1;

export const RCODE_NOERROR = 0;
export const RCODE_NXDOMAIN = 3;

export interface DnsQuestion {
  name: string;
  type: number;
  class: number;
}

export interface DnsRecord {
  name: string;
  type: number;
  class: number;
  ttl: number;
  /** A/AAAA: the address text; CNAME: the target name; others: undefined. */
  value?: string;
  data: Uint8Array;
}

export interface DnsMessage {
  id: number;
  response: boolean;
  opcode: number;
  /** Truncated (TC bit). */
  truncated: boolean;
  recursionDesired: boolean;
  rcode: number;
  questions: DnsQuestion[];
  answers: DnsRecord[];
}

const MAX_NAME = 255;
const MAX_POINTER_HOPS = 32;

/** Checks a host name for a query: labels of 1–63 letters, digits, '-' or '_', 253 characters at most. */
export function isValidHostname(name: string): boolean {
  const n = name.endsWith('.') ? name.slice(0, -1) : name;
  if (n.length === 0 || n.length > 253) return false;
  return n.split('.').every((l) => /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/.test(l));
}

function encodeName(name: string, out: number[]): void {
  const n = name.endsWith('.') ? name.slice(0, -1) : name;
  if (n.length > 0) {
    for (const label of n.split('.')) {
      const bytes = new TextEncoder().encode(label);
      if (bytes.length === 0 || bytes.length > 63) throw new RangeError(`bad DNS label in ${JSON.stringify(name)}`);
      out.push(bytes.length, ...bytes);
    }
  }
  out.push(0);
}

function u16(out: number[], v: number): void {
  out.push((v >> 8) & 0xff, v & 0xff);
}

/** A recursive query (RD set) for one name and type. */
export function encodeQuery(id: number, name: string, type: number): Uint8Array {
  const out: number[] = [];
  u16(out, id);
  u16(out, 0x0100); // RD
  u16(out, 1); u16(out, 0); u16(out, 0); u16(out, 0);
  encodeName(name, out);
  u16(out, type);
  u16(out, CLASS_IN);
  return Uint8Array.from(out);
}

/** A response, for responders in tests and examples: answers A/AAAA/CNAME records. */
export function encodeResponse(
  query: DnsMessage,
  answers: { name: string; type: number; ttl: number; value: string }[],
  rcode = RCODE_NOERROR,
): Uint8Array {
  const out: number[] = [];
  u16(out, query.id);
  u16(out, 0x8000 | (query.opcode << 11) | (query.recursionDesired ? 0x0100 : 0) | 0x0080 | (rcode & 0xf));
  u16(out, query.questions.length); u16(out, answers.length); u16(out, 0); u16(out, 0);
  for (const q of query.questions) { encodeName(q.name, out); u16(out, q.type); u16(out, q.class); }
  for (const a of answers) {
    encodeName(a.name, out);
    u16(out, a.type); u16(out, CLASS_IN);
    out.push((a.ttl >>> 24) & 0xff, (a.ttl >>> 16) & 0xff, (a.ttl >>> 8) & 0xff, a.ttl & 0xff);
    let rdata: number[];
    if (a.type === TYPE_CNAME) { rdata = []; encodeName(a.value, rdata); }
    else rdata = [...parseIp(a.value)];
    u16(out, rdata.length);
    out.push(...rdata);
  }
  return Uint8Array.from(out);
}

/** Reads a possibly compressed name at `offset`; returns it and the offset after it, or null. */
function readName(m: Uint8Array, offset: number): { name: string; next: number } | null {
  const labels: string[] = [];
  let length = 0;
  let next = -1;
  let hops = 0;
  let pos = offset;
  for (;;) {
    if (pos >= m.length) return null;
    const len = m[pos]!;
    if (len === 0) { pos++; break; }
    if ((len & 0xc0) === 0xc0) {
      if (pos + 1 >= m.length || ++hops > MAX_POINTER_HOPS) return null;
      const target = ((len & 0x3f) << 8) | m[pos + 1]!;
      if (target >= pos) return null; // pointers must go backwards: no loops
      if (next < 0) next = pos + 2;
      pos = target;
      continue;
    }
    if ((len & 0xc0) !== 0 || pos + 1 + len > m.length) return null;
    length += len + 1;
    if (length > MAX_NAME) return null;
    let label = '';
    for (let i = pos + 1; i <= pos + len; i++) label += String.fromCharCode(m[i]!);
    labels.push(label);
    pos += 1 + len;
  }
  return { name: labels.join('.'), next: next >= 0 ? next : pos };
}

/** Decodes a message; null when it is malformed. Authority and additional sections are skipped. */
export function decodeMessage(m: Uint8Array): DnsMessage | null {
  if (m.length < 12) return null;
  const flags = (m[2]! << 8) | m[3]!;
  const qd = (m[4]! << 8) | m[5]!;
  const an = (m[6]! << 8) | m[7]!;
  const msg: DnsMessage = {
    id: (m[0]! << 8) | m[1]!,
    response: (flags & 0x8000) !== 0,
    opcode: (flags >> 11) & 0xf,
    truncated: (flags & 0x0200) !== 0,
    recursionDesired: (flags & 0x0100) !== 0,
    rcode: flags & 0xf,
    questions: [],
    answers: [],
  };
  let pos = 12;
  for (let i = 0; i < qd; i++) {
    const n = readName(m, pos);
    if (!n || n.next + 4 > m.length) return null;
    msg.questions.push({ name: n.name, type: (m[n.next]! << 8) | m[n.next + 1]!, class: (m[n.next + 2]! << 8) | m[n.next + 3]! });
    pos = n.next + 4;
  }
  for (let i = 0; i < an; i++) {
    const n = readName(m, pos);
    if (!n || n.next + 10 > m.length) return null;
    const p = n.next;
    const type = (m[p]! << 8) | m[p + 1]!;
    const cls = (m[p + 2]! << 8) | m[p + 3]!;
    const ttl = ((m[p + 4]! << 24) | (m[p + 5]! << 16) | (m[p + 6]! << 8) | m[p + 7]!) >>> 0;
    const rdlen = (m[p + 8]! << 8) | m[p + 9]!;
    const start = p + 10;
    if (start + rdlen > m.length) return null;
    const data = m.slice(start, start + rdlen);
    const rec: DnsRecord = { name: n.name, type, class: cls, ttl, data };
    if (type === TYPE_A && rdlen === 4) rec.value = formatIp(data);
    else if (type === TYPE_AAAA && rdlen === 16) rec.value = formatIp(data);
    else if (type === TYPE_CNAME) {
      const target = readName(m, start);
      if (!target || target.next > start + rdlen) return null;
      rec.value = target.name;
    }
    msg.answers.push(rec);
    pos = start + rdlen;
  }
  return msg;
}

/** Case-insensitive name equality, ignoring one trailing dot. */
export function sameName(a: string, b: string): boolean {
  const strip = (s: string) => (s.endsWith('.') ? s.slice(0, -1) : s).toLowerCase();
  return strip(a) === strip(b);
}
