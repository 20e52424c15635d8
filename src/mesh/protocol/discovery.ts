/**
 * Discovery (docs/mesh.md §4), sans-I/O: announcements sealed under the network's key, their
 * replay rule, the members they admit, the `Hello`s that give each member its addresses and
 * name, and addresses derived from a public key.
 *
 *   announcement = version (1) ‖ nonce (24) ‖ SEAL(k_announce, nonce, epoch (8) ‖ seq (8) ‖ sent (8), ad)
 *   ad           = "wireweave mesh v1 announcement" ‖ network id ‖ S_sender ‖ version
 *
 * An announcement proves knowledge of the network secret and nothing else: what a member *is*
 * (its addresses and name) only counts when it arrives in a `Hello` sealed pairwise (§2), which
 * only the holder of the member's private key can produce. Time is passed into every call.
 */
import type { CryptoProvider } from '../../core/crypto.ts';
import { concatBytes } from '../../core/bytes.ts';
import type { Rng } from '../../core/rng.ts';
import { encodeHex } from '../../core/keys.ts';
import { parsePrefix } from '../../device/allowedips.ts';
import { formatIp } from '../../core/ip-address.ts';
import type { Prefix } from '../../device/config.ts';
import { label } from './keys.ts';
import type { TunnelAddress } from './signal-body.ts';

const ANNOUNCE_VERSION = 1;
/** A member re-announces this often; it is forgotten this long after its last new announcement. */
export const ANNOUNCE_INTERVAL_MS = 20_000;
export const MEMBER_TTL_MS = 60_000;
/** Announcements sent longer ago (or further ahead) than this are refused, as envelopes are. */
const MAX_ANNOUNCE_SKEW_MS = 120_000;
/** At most this many discovered members per network (docs/mesh.md §4). */
const MAX_MEMBERS = 1024;
/** Replay state is kept this long for keys no longer members (bounded LRU). */
const MAX_SEEN = 4096;
export const DEFAULT_PREFIX4 = '100.96.0.0/16';

const NONCE_LENGTH = 24;
const BODY_LENGTH = 24;
const TAG_LENGTH = 16;
const ANNOUNCEMENT_LENGTH = 1 + NONCE_LENGTH + BODY_LENGTH + TAG_LENGTH;
const AD_LABEL = label('announcement');
const ADDRESS_LABEL = label('address');

export interface AnnouncementFields {
  /** The sender's mesh session start (Unix ms); later on every restart. */
  epoch: number;
  /** Increases by one per announcement within an epoch. */
  seq: number;
  /** Unix ms when sealed. */
  sent: number;
}

function writeU64(b: Uint8Array, o: number, n: number): void {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  v.setUint32(o, Math.floor(n / 0x1_0000_0000));
  v.setUint32(o + 4, n >>> 0);
}

function readU64(b: Uint8Array, o: number): number {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return v.getUint32(o) * 0x1_0000_0000 + v.getUint32(o + 4);
}

function announceAd(networkId: Uint8Array, sender: Uint8Array): Uint8Array {
  return concatBytes(AD_LABEL, networkId, sender, Uint8Array.of(ANNOUNCE_VERSION));
}

export function sealAnnouncement(
  crypto: CryptoProvider, rng: Rng, announceKey: Uint8Array, networkId: Uint8Array, sender: Uint8Array, f: AnnouncementFields,
): Uint8Array {
  const body = new Uint8Array(BODY_LENGTH);
  writeU64(body, 0, f.epoch);
  writeU64(body, 8, f.seq);
  writeU64(body, 16, Math.max(0, Math.floor(f.sent)));
  const nonce = new Uint8Array(NONCE_LENGTH);
  rng.fill(nonce);
  const sealed = crypto.xseal(announceKey, nonce, body, announceAd(networkId, sender));
  return concatBytes(Uint8Array.of(ANNOUNCE_VERSION), nonce, sealed);
}

/** The fields, or why not: malformed, or `seal` (wrong network key, tampered, or another sender's). */
export function openAnnouncement(
  crypto: CryptoProvider, announceKey: Uint8Array, networkId: Uint8Array, sender: Uint8Array, sealed: Uint8Array,
): AnnouncementFields | 'malformed' | 'seal' {
  if (sealed.length !== ANNOUNCEMENT_LENGTH || sealed[0] !== ANNOUNCE_VERSION || sender.length !== 32) return 'malformed';
  const body = crypto.xopen(announceKey, sealed.subarray(1, 1 + NONCE_LENGTH), sealed.subarray(1 + NONCE_LENGTH), announceAd(networkId, sender));
  if (!body || body.length !== BODY_LENGTH) return 'seal';
  return { epoch: readU64(body, 0), seq: readU64(body, 8), sent: readU64(body, 16) };
}

// ------------------------------------------------------------------------------- addresses

/** The network's default IPv6 /64: fd ‖ the first 5 bytes of the network id ‖ 0000. */
export function defaultPrefix6(networkId: Uint8Array): Prefix {
  const bytes = new Uint8Array(16);
  bytes[0] = 0xfd;
  bytes.set(networkId.subarray(0, 5), 1);
  return { family: 6, bytes, bits: 64 };
}

function withHost(prefix: Prefix, host: Uint8Array): Uint8Array {
  const out = prefix.bytes.slice();
  for (let bit = prefix.bits; bit < out.length * 8; bit++) {
    const byte = bit >> 3, mask = 0x80 >> (bit & 7);
    out[byte] = (out[byte]! & ~mask) | (host[byte]! & mask);
  }
  return out;
}

function hostIsEdge(prefix: Prefix, address: Uint8Array): 'zero' | 'ones' | null {
  let zero = true, ones = true;
  for (let bit = prefix.bits; bit < address.length * 8; bit++) {
    const set = (address[bit >> 3]! & (0x80 >> (bit & 7))) !== 0;
    if (set) zero = false; else ones = false;
  }
  return zero ? 'zero' : ones ? 'ones' : null;
}

/**
 * The addresses a member without `Address` uses: the host part of each prefix from
 * HASH("wireweave mesh v1 address" ‖ S ‖ n), n = 0, 1, … until the IPv4 host part is neither all
 * zeros nor all ones. The prefix length is kept (so the interface routes the whole network).
 */
export function derivedAddresses(crypto: CryptoProvider, publicKey: Uint8Array, prefix4: Prefix, prefix6: Prefix): Prefix[] {
  for (let n = 0; ; n++) {
    const h = crypto.hash([ADDRESS_LABEL, publicKey, Uint8Array.of(n)]);
    const v4 = withHost(prefix4, h.subarray(0, 4));
    if (prefix4.bits < 31 && hostIsEdge(prefix4, v4)) continue;
    const v6 = withHost(prefix6, h.subarray(16, 32));
    return [{ family: 4, bytes: v4, bits: prefix4.bits }, { family: 6, bytes: v6, bits: prefix6.bits }];
  }
}

/** Whether `address` (4 or 16 bytes) lies inside `prefix`. */
export function prefixContains(prefix: Prefix, address: Uint8Array): boolean {
  if (address.length !== prefix.bytes.length) return false;
  for (let bit = 0; bit < prefix.bits; bit++) {
    const mask = 0x80 >> (bit & 7);
    if ((address[bit >> 3]! & mask) !== (prefix.bytes[bit >> 3]! & mask)) return false;
  }
  return true;
}

/** A DNS-label name from a host name (`Name =` absent): lowercased, invalid characters to '-'. */
export function nameFromHostname(host: string): string {
  const s = host.split('.')[0]!.toLowerCase().replace(/[^a-z0-9-]/g, '-').replace(/^-+|-+$/g, '').slice(0, 63).replace(/-+$/, '');
  return s;
}

// ------------------------------------------------------------------------------- members

export type AnnounceDrop = 'malformed' | 'seal' | 'stale' | 'replay' | 'full';
export type HelloRefusal = 'notMember' | 'old' | 'noAddress' | 'outOfRange' | 'overlap';

export interface Member {
  readonly key: Uint8Array;
  readonly hex: string;
  /** Highest accepted announcement. */
  epoch: number;
  seq: number;
  /** Monotonic ms after which the member is forgotten without a newer announcement. */
  expiresAt: number;
  /** From the member's newest accepted `Hello`; empty until then. */
  addresses: Prefix[];
  name: string;
  helloEpoch: number;
  helloGeneration: number;
  /** Why its last `Hello` was refused, if it was. */
  refused: HelloRefusal | null;
}

export interface DiscoveryOptions {
  crypto: CryptoProvider;
  networkId: Uint8Array;
  announceKey: Uint8Array;
  self: Uint8Array;
  /** The network's ranges: a member's addresses must be host addresses inside them. */
  prefix4: Prefix;
  prefix6: Prefix;
  /** Addresses nobody else may claim: ours and configured peers' allowed IPs. */
  reserved(): readonly Prefix[];
}

export type AnnouncementResult = { kind: 'new' | 'renewed'; member: Member } | { kind: 'duplicate' } | { kind: 'dropped'; reason: AnnounceDrop };
export type HelloResult = { ok: true; changed: boolean; member: Member } | { ok: false; reason: HelloRefusal };

/** Who is in the network, as far as this member knows. Every table is bounded. */
export class DiscoveryBook {
  readonly drops: Record<AnnounceDrop, number> = { malformed: 0, seal: 0, stale: 0, replay: 0, full: 0 };
  readonly refused: Record<HelloRefusal, number> = { notMember: 0, old: 0, noAddress: 0, outOfRange: 0, overlap: 0 };
  private readonly o: DiscoveryOptions;
  private readonly members = new Map<string, Member>();
  /** Highest (epoch, seq) per key, kept past a member's removal so its old announcements stay refused. */
  private readonly seen = new Map<string, { epoch: number; seq: number }>();

  constructor(options: DiscoveryOptions) {
    this.o = options;
  }

  get size(): number {
    return this.members.size;
  }

  get(hex: string): Member | undefined {
    return this.members.get(hex);
  }

  list(): Member[] {
    return [...this.members.values()];
  }

  /**
   * An `Announcement` frame: `sender` as the hub stamped it. Accepted when it opens under the
   * network key for that sender, was sent within ±120 s, and its (epoch, seq) is newer than any
   * seen from that key; the same (epoch, seq) again is a harmless duplicate (a hub re-delivering).
   */
  onAnnouncement(now: number, wallNow: number, sender: Uint8Array, sealed: Uint8Array): AnnouncementResult {
    const drop = (reason: AnnounceDrop): AnnouncementResult => { this.drops[reason]++; return { kind: 'dropped', reason }; };
    const hex = encodeHex(sender);
    if (hex === encodeHex(this.o.self)) return { kind: 'duplicate' };
    const f = openAnnouncement(this.o.crypto, this.o.announceKey, this.o.networkId, sender, sealed);
    if (f === 'malformed' || f === 'seal') return drop(f);
    if (Math.abs(wallNow - f.sent) > MAX_ANNOUNCE_SKEW_MS) return drop('stale');
    const last = this.seen.get(hex);
    if (last && (f.epoch < last.epoch || (f.epoch === last.epoch && f.seq < last.seq))) return drop('replay');
    if (last && f.epoch === last.epoch && f.seq === last.seq) return { kind: 'duplicate' };
    let member = this.members.get(hex);
    if (!member && this.members.size >= MAX_MEMBERS) return drop('full');
    this.seen.delete(hex);
    this.seen.set(hex, { epoch: f.epoch, seq: f.seq });
    if (this.seen.size > MAX_SEEN) this.seen.delete(this.seen.keys().next().value!);
    const kind = member ? 'renewed' : 'new';
    if (!member) {
      member = { key: sender.slice(), hex, epoch: f.epoch, seq: f.seq, expiresAt: 0, addresses: [], name: '', helloEpoch: -1, helloGeneration: -1, refused: null };
      this.members.set(hex, member);
    }
    member.epoch = f.epoch;
    member.seq = f.seq;
    member.expiresAt = now + MEMBER_TTL_MS;
    return { kind, member };
  }

  /** The member is gone (withdrawn by the hub, or expired): true when it was one. */
  remove(hex: string): boolean {
    return this.members.delete(hex);
  }

  /** Members whose last announcement is older than the TTL; they are removed. */
  expire(now: number): Member[] {
    const out: Member[] = [];
    for (const m of this.members.values()) if (m.expiresAt <= now) out.push(m);
    for (const m of out) this.members.delete(m.hex);
    return out;
  }

  nextDeadline(): number {
    let at = Infinity;
    for (const m of this.members.values()) at = Math.min(at, m.expiresAt);
    return at;
  }

  /**
   * A `Hello` that opened under the pairwise key of `sender` (so only `sender` sealed it). Its
   * addresses become the member's allowed IPs when each is a host address inside the network's
   * ranges, none is claimed by another member or reserved, and it is newer than the last.
   */
  onHello(sender: Uint8Array, envelopeEpoch: number, hello: { addresses: readonly TunnelAddress[]; name: string; generation?: number }): HelloResult {
    const refuse = (reason: HelloRefusal, m?: Member): HelloResult => {
      this.refused[reason]++;
      if (m) m.refused = reason;
      return { ok: false, reason };
    };
    const m = this.members.get(encodeHex(sender));
    if (!m) return refuse('notMember');
    const generation = hello.generation ?? 0;
    if (envelopeEpoch < m.helloEpoch || (envelopeEpoch === m.helloEpoch && generation < m.helloGeneration)) return refuse('old', m);
    if (hello.addresses.length === 0) return refuse('noAddress', m);
    const prefixes: Prefix[] = [];
    for (const a of hello.addresses) {
      let p: Prefix;
      try { p = parsePrefix(`${a.address}/${a.bits}`); } catch { return refuse('outOfRange', m); }
      const range = p.family === 4 ? this.o.prefix4 : this.o.prefix6;
      if (p.bits !== p.bytes.length * 8 || !prefixContains(range, p.bytes)) return refuse('outOfRange', m);
      prefixes.push(p);
    }
    for (const p of prefixes) {
      if (this.o.reserved().some((r) => prefixContains(r, p.bytes))) return refuse('overlap', m);
      for (const other of this.members.values()) {
        if (other !== m && other.addresses.some((q) => q.family === p.family && prefixContains(q, p.bytes))) return refuse('overlap', m);
      }
    }
    const changed = m.helloEpoch < 0 || m.name !== hello.name || m.addresses.length !== prefixes.length
      || m.addresses.some((q, i) => formatIp(q.bytes) !== formatIp(prefixes[i]!.bytes));
    m.helloEpoch = envelopeEpoch;
    m.helloGeneration = generation;
    m.addresses = prefixes;
    m.name = hello.name;
    m.refused = null;
    return { ok: true, changed, member: m };
  }

  /** Addresses of the member called `name` (case-insensitive), IPv4 first; empty when none. */
  lookup(name: string): string[] {
    const n = name.toLowerCase().replace(/\.$/, '');
    for (const m of this.members.values()) {
      if (m.name !== '' && m.name.toLowerCase() === n) {
        return [...m.addresses].sort((a, b) => a.family - b.family).map((p) => formatIp(p.bytes));
      }
    }
    return [];
  }
}
