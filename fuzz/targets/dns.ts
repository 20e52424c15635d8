/**
 * Target `dns`: DNS responses as a DNS server inside the tunnel (or anyone spoofing one) sends
 * them, through `decodeMessage` (src/netstack/dns.ts, what the tunnel resolver reads), and host
 * names through `isValidHostname`.
 *
 * Inputs are generated responses (questions and A/AAAA/CNAME/other answers, compressed names,
 * pointer chains and loops, counts that lie, truncation) and mutations of them.
 *
 * Invariants: nothing throws; a decoded message holds no more questions and answers than its
 * header counts, names of at most 255 octets on the wire (one character per octet), A/AAAA values
 * only from 4/16-byte data;
 * a message made of A, AAAA and CNAME answers with valid names encodes again and decodes to the
 * same message; isValidHostname never throws and accepts only names that encode as a query.
 */
import { CLASS_IN, TYPE_A, TYPE_AAAA, TYPE_CNAME, decodeMessage, encodeQuery, encodeResponse, isValidHostname } from '../../src/netstack/dns.ts';
import type { DnsMessage } from '../../src/netstack/dns.ts';
import type { FuzzTarget } from '../harness.ts';
import { invariant } from '../harness.ts';
import { concat, mutate } from '../mutate.ts';
import type { FuzzRng } from '../rng.ts';
import { junk } from '../text.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Inputs are a response, or (first byte 0xff) a host name for isValidHostname. */
const NAME_INPUT = 0xff;

function run(_ctx: null, input: Uint8Array): void {
  if (input[0] === NAME_INPUT) {
    const name = decoder.decode(input.subarray(1));
    const valid = isValidHostname(name);
    if (valid) {
      // What the resolver then does with it: a query it can encode.
      try {
        encodeQuery(1, name, TYPE_A);
      } catch (err) {
        throw new Error(`isValidHostname accepted ${JSON.stringify(name)} but the query cannot be encoded: ${(err as Error).message}`, { cause: err });
      }
    }
    return;
  }
  const m = decodeMessage(input);
  if (m === null) return;
  const qd = ((input[4]! << 8) | input[5]!), an = ((input[6]! << 8) | input[7]!);
  invariant(m.questions.length === qd && m.answers.length === an, () => `decoded ${m.questions.length}/${m.answers.length} of ${qd}/${an} records`);
  // Labels come back one character per octet, dot-joined; labels and their length octets are
  // at most 255 octets (decodeMessage's limit), so a name is at most 254 characters.
  for (const r of [...m.questions, ...m.answers]) invariant(r.name.length <= 254 && !/[\u0100-\uffff]/.test(r.name), () => `a name of ${r.name.length} characters`);
  for (const a of m.answers) {
    if (a.value === undefined) continue;
    if (a.type === TYPE_A) invariant(a.data.length === 4 && /^\d+\.\d+\.\d+\.\d+$/.test(a.value), () => `A value ${a.value} from ${a.data.length} bytes`);
    else if (a.type === TYPE_AAAA) invariant(a.data.length === 16 && a.value.includes(':'), () => `AAAA value ${a.value} from ${a.data.length} bytes`);
    else invariant(a.type === TYPE_CNAME, () => `a value for type ${a.type}`);
  }
  roundTrip(m);
}

/** Messages our own encoder can express come back the same. */
function roundTrip(m: DnsMessage): void {
  const expressible = (name: string) => name === '' || name.split('.').every((l) => l.length > 0 && l.length <= 63 && /^[\x21-\x2d\x2f-\x7e]+$/.test(l));
  if (m.questions.some((q) => !expressible(q.name))) return;
  if (!m.answers.every((a) => a.class === CLASS_IN && a.value !== undefined && expressible(a.name) && (a.type !== TYPE_CNAME || expressible(a.value)))) return;
  const again = decodeMessage(encodeResponse(m, m.answers.map((a) => ({ name: a.name, type: a.type, ttl: a.ttl, value: a.value! })), m.rcode));
  invariant(again !== null, 'a re-encoded message does not decode');
  invariant(again.id === m.id && again.rcode === m.rcode && again.opcode === m.opcode, 'header changed in a round trip');
  invariant(JSON.stringify(again.questions) === JSON.stringify(m.questions), 'questions changed in a round trip');
  const strip = (msg: DnsMessage) => JSON.stringify(msg.answers.map(({ name, type, ttl, value }) => ({ name, type, ttl, value })));
  invariant(strip(again) === strip(m), 'answers changed in a round trip');
}

// ------------------------------------------------------------------------------------ inputs

const NAMES = ['example.com', 'a.b.c.d.e', 'xn--bcher-kva.example', '_srv._tcp.lan', 'x', 'localhost', 'wg.internal.', ''];

function name(rng: FuzzRng): string {
  if (rng.chance(0.7)) return rng.pick(NAMES);
  if (rng.chance(0.5)) return Array.from({ length: rng.range(1, 6) }, () => 'l'.repeat(rng.range(1, 64))).join('.');
  return junk(rng).replace(/\.\./g, '.');
}

function u16(v: number): Uint8Array {
  return Uint8Array.of((v >> 8) & 0xff, v & 0xff);
}

/** A wire name: plain labels, or a pointer (to anywhere: backwards, forwards, itself). */
function wireName(rng: FuzzRng, at: number): Uint8Array {
  if (rng.chance(0.25)) {
    const target = rng.chance(0.6) ? 12 : rng.chance(0.5) ? at : rng.int(at + 40);
    return Uint8Array.of(0xc0 | ((target >> 8) & 0x3f), target & 0xff);
  }
  const parts: number[] = [];
  for (const label of name(rng).split('.').filter((l) => l !== '')) {
    const bytes = encoder.encode(label).subarray(0, rng.chance(0.05) ? 80 : 63);
    parts.push(rng.chance(0.03) ? 0x40 | bytes.length : bytes.length, ...bytes);
  }
  if (rng.chance(0.1) && parts.length > 0) return concat(Uint8Array.from(parts), Uint8Array.of(0xc0, 12));
  parts.push(0);
  return Uint8Array.from(parts);
}

function response(rng: FuzzRng): Uint8Array {
  const qd = rng.chance(0.8) ? 1 : rng.int(4);
  const an = rng.int(6);
  const lie = (n: number) => (rng.chance(0.1) ? rng.int(0x10000) : n);
  const flags = 0x8180 | (rng.chance(0.1) ? 0x0200 : 0) | (rng.chance(0.2) ? rng.int(16) : 0);
  const parts: Uint8Array[] = [u16(rng.int(0x10000)), u16(rng.chance(0.9) ? flags : rng.int(0x10000)), u16(lie(qd)), u16(lie(an)), u16(0), u16(0)];
  let at = 12;
  const push = (p: Uint8Array) => { parts.push(p); at += p.length; };
  for (let i = 0; i < qd; i++) {
    push(wireName(rng, at));
    push(concat(u16(rng.pick([TYPE_A, TYPE_AAAA, TYPE_CNAME, 15, 255])), u16(CLASS_IN)));
  }
  for (let i = 0; i < an; i++) {
    push(wireName(rng, at));
    const type = rng.pick([TYPE_A, TYPE_A, TYPE_AAAA, TYPE_CNAME, 16, 0xffff]);
    push(concat(u16(type), u16(rng.chance(0.9) ? CLASS_IN : rng.int(0x10000)), rng.bytes(4)));
    let rdata: Uint8Array;
    if (type === TYPE_A) rdata = rng.bytes(rng.chance(0.9) ? 4 : rng.int(20));
    else if (type === TYPE_AAAA) rdata = rng.bytes(rng.chance(0.9) ? 16 : rng.int(20));
    else if (type === TYPE_CNAME) rdata = wireName(rng, at + 2);
    else rdata = rng.bytes(rng.int(40));
    const rdlen = rng.chance(0.1) ? rng.int(300) : rdata.length;
    push(u16(rdlen));
    push(rdata);
  }
  const all = concat(...parts);
  return rng.chance(0.1) ? all.subarray(0, rng.int(all.length + 1)) : all;
}

function generate(rng: FuzzRng, corpus: readonly Uint8Array[]): Uint8Array {
  if (rng.chance(0.1)) return concat(Uint8Array.of(NAME_INPUT), encoder.encode(rng.chance(0.5) ? name(rng) : junk(rng)));
  if (corpus.length > 0 && rng.chance(0.3)) return mutate(rng, rng.pick(corpus), corpus, 1500);
  return response(rng);
}

function seeds(): Uint8Array[] {
  const query = decodeMessage(encodeQuery(0x1234, 'www.example.com', TYPE_A))!;
  return [
    encodeResponse(query, [
      { name: 'www.example.com', type: TYPE_CNAME, ttl: 300, value: 'web.example.com' },
      { name: 'web.example.com', type: TYPE_A, ttl: 60, value: '192.0.2.10' },
    ]),
    encodeResponse(decodeMessage(encodeQuery(7, 'v6.example', TYPE_AAAA))!, [{ name: 'v6.example', type: TYPE_AAAA, ttl: 5, value: '2001:db8::10' }]),
    // With compression: the answer's name points at the question's.
    Uint8Array.from([0, 9, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 1, 0x61, 3, 0x6c, 0x61, 0x6e, 0, 0, 1, 0, 1, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 1]),
  ];
}

export const dnsTarget: FuzzTarget<null> = {
  name: 'dns',
  description: 'DNS responses into decodeMessage (the tunnel resolver), host names into isValidHostname',
  batchSize: 1000,
  setup: () => null,
  seeds,
  generate,
  run,
  check: () => {},
};
