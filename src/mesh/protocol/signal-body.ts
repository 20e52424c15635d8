/**
 * What travels inside a signaling envelope (docs/mesh.md §2): a type byte, then fields as TLVs
 * (type 1, length 2, value). Unknown fields are skipped, so later versions can add fields that
 * older peers ignore; a known field with a wrong length makes the whole body malformed.
 */
import { formatIp, parseIp } from '../../core/ip-address.ts';

export const SIGNAL = { candidates: 0x01, callMeMaybe: 0x02, hello: 0x03, helloRequest: 0x04, bye: 0x05, ping: 0x06, pong: 0x07 } as const;
const CANDIDATE_KIND = { host: 1, hubObserved: 2, stun: 3, mapped: 4, turn: 5 } as const;
export type CandidateKind = keyof typeof CANDIDATE_KIND;

export const MAX_CANDIDATES = 16;
const MAX_ADDRESSES = 16;

const FIELD = { generation: 1, candidate: 2, address: 3, name: 4, txid: 5, observed: 6 } as const;
/** A path probe's transaction id (docs/mesh.md §3), as Tailscale's disco pings. */
export const TXID_LENGTH = 12;

export interface Candidate {
  kind: CandidateKind;
  address: string;
  port: number;
  priority: number;
}

export interface TunnelAddress {
  address: string;
  bits: number;
}

export type SignalBody =
  | { type: typeof SIGNAL.candidates | typeof SIGNAL.callMeMaybe; generation: number; candidates: Candidate[] }
  /** `generation`: increases with every change of the sender's addresses or name (discovery, §4). */
  | { type: typeof SIGNAL.hello; addresses: TunnelAddress[]; name: string; generation?: number }
  | { type: typeof SIGNAL.helloRequest | typeof SIGNAL.bye }
  | { type: typeof SIGNAL.ping; txid: Uint8Array }
  /** `observed`: the ping's source as the responder saw it (a STUN answer from the peer itself). */
  | { type: typeof SIGNAL.pong; txid: Uint8Array; observed: { address: string; port: number } | null };

const KIND_BY_CODE = new Map(Object.entries(CANDIDATE_KIND).map(([k, v]) => [v, k as CandidateKind]));

/** A name as `show` prints and `connect({ host })` resolves it: a DNS label. */
function isValidPeerName(name: string): boolean {
  return /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i.test(name);
}

function field(type: number, value: Uint8Array): Uint8Array {
  const out = new Uint8Array(3 + value.length);
  out[0] = type; out[1] = value.length >>> 8; out[2] = value.length & 0xff;
  out.set(value, 3);
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

export function encodeSignalBody(body: SignalBody): Uint8Array {
  const parts: Uint8Array[] = [Uint8Array.of(body.type)];
  if (body.type === SIGNAL.candidates || body.type === SIGNAL.callMeMaybe) {
    parts.push(field(FIELD.generation, Uint8Array.of(body.generation >>> 24, body.generation >>> 16, body.generation >>> 8, body.generation)));
    for (const c of body.candidates.slice(0, MAX_CANDIDATES)) {
      const ip = parseIp(c.address);
      const v = new Uint8Array(1 + ip.length + 2 + 4);
      v[0] = CANDIDATE_KIND[c.kind];
      v.set(ip, 1);
      const o = 1 + ip.length;
      v[o] = c.port >>> 8; v[o + 1] = c.port & 0xff;
      v[o + 2] = c.priority >>> 24; v[o + 3] = c.priority >>> 16; v[o + 4] = c.priority >>> 8; v[o + 5] = c.priority;
      parts.push(field(FIELD.candidate, v));
    }
  } else if (body.type === SIGNAL.hello) {
    const g = body.generation;
    if (g !== undefined) parts.push(field(FIELD.generation, Uint8Array.of(g >>> 24, g >>> 16, g >>> 8, g)));
    for (const a of body.addresses.slice(0, MAX_ADDRESSES)) parts.push(field(FIELD.address, Uint8Array.of(...parseIp(a.address), a.bits)));
    if (body.name) parts.push(field(FIELD.name, new TextEncoder().encode(body.name)));
  } else if (body.type === SIGNAL.ping || body.type === SIGNAL.pong) {
    parts.push(field(FIELD.txid, body.txid.subarray(0, TXID_LENGTH)));
    if (body.type === SIGNAL.pong && body.observed) {
      const ip = parseIp(body.observed.address);
      parts.push(field(FIELD.observed, Uint8Array.of(...ip, body.observed.port >>> 8, body.observed.port & 0xff)));
    }
  }
  return concat(parts);
}

/** The body, or null when it is malformed (never throws). */
export function decodeSignalBody(b: Uint8Array): SignalBody | null {
  if (b.length < 1) return null;
  const type = b[0]!;
  let generation = -1;
  const candidates: Candidate[] = [];
  const addresses: TunnelAddress[] = [];
  let name = '';
  let txid: Uint8Array | null = null;
  let observed: { address: string; port: number } | null = null;
  for (let o = 1; o < b.length;) {
    if (o + 3 > b.length) return null;
    const t = b[o]!, n = (b[o + 1]! << 8) | b[o + 2]!;
    const v = b.subarray(o + 3, o + 3 + n);
    if (v.length !== n) return null;
    o += 3 + n;
    switch (t) {
      case FIELD.generation:
        if (n !== 4) return null;
        generation = ((v[0]! << 24) | (v[1]! << 16) | (v[2]! << 8) | v[3]!) >>> 0;
        break;
      case FIELD.candidate: {
        if (n !== 11 && n !== 23) return null;
        const kind = KIND_BY_CODE.get(v[0]! as never);
        if (!kind) continue; // a kind from a later version
        if (candidates.length >= MAX_CANDIDATES) return null;
        const ipLen = n - 7;
        const port = (v[1 + ipLen]! << 8) | v[2 + ipLen]!;
        const priority = ((v[3 + ipLen]! << 24) | (v[4 + ipLen]! << 16) | (v[5 + ipLen]! << 8) | v[6 + ipLen]!) >>> 0;
        if (port === 0) return null;
        candidates.push({ kind, address: formatIp(v.subarray(1, 1 + ipLen)), port, priority });
        break;
      }
      case FIELD.address: {
        if (n !== 5 && n !== 17) return null;
        const bits = v[n - 1]!;
        if (bits > (n - 1) * 8 || addresses.length >= MAX_ADDRESSES) return null;
        addresses.push({ address: formatIp(v.subarray(0, n - 1)), bits });
        break;
      }
      case FIELD.name: {
        let text: string;
        try { text = new TextDecoder('utf-8', { fatal: true }).decode(v); } catch { return null; }
        if (!isValidPeerName(text)) return null;
        name = text;
        break;
      }
      case FIELD.txid:
        if (n !== TXID_LENGTH) return null;
        txid = v.slice();
        break;
      case FIELD.observed:
        if (n !== 6 && n !== 18) return null;
        observed = { address: formatIp(v.subarray(0, n - 2)), port: (v[n - 2]! << 8) | v[n - 1]! };
        break;
      default:
        break; // a field from a later version
    }
  }
  switch (type) {
    case SIGNAL.candidates:
    case SIGNAL.callMeMaybe:
      return generation < 0 ? null : { type, generation, candidates };
    case SIGNAL.hello:
      return generation < 0 ? { type, addresses, name } : { type, addresses, name, generation };
    case SIGNAL.helloRequest:
    case SIGNAL.bye:
      return { type };
    case SIGNAL.ping:
      return txid ? { type, txid } : null;
    case SIGNAL.pong:
      return txid ? { type, txid, observed } : null;
    default:
      return null;
  }
}
