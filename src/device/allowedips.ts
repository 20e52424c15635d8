/**
 * Cryptokey routing (whitepaper §2): the table that maps IPv4 and IPv6 prefixes to the peer
 * that owns them. The device looks up the destination of every outgoing packet here to pick a
 * peer, and the source of every decrypted packet to check that the sending peer may use it.
 *
 * Semantics follow wireguard-go's device/allowedips.go:
 * - a prefix belongs to exactly one peer; inserting it for another peer moves it there;
 * - `remove(prefix, peer)` (the UAPI's `allowed_ip=-prefix`) only removes a prefix that the
 *   given peer owns, and does nothing otherwise;
 * - `entriesForPeer` lists a peer's prefixes in the order they were (last) inserted, IPv4 and
 *   IPv6 mixed, as wireguard-go's per-peer entry list does;
 * - the longest matching prefix wins; host bits are zeroed on insert.
 *
 * Design: one path-compressed binary trie per family, as in wireguard-go and the kernel, with
 * two changes for speed in JavaScript:
 * - the nodes live in one Int32Array, 8 int32 (32 bytes) per node, indices instead of pointers:
 *   a lookup step reads one cache line, a lookup never allocates, and the garbage collector
 *   sees a few arrays however many prefixes there are. Freed nodes are reused through a free
 *   list; the arrays double when full;
 * - a family whose trie is large gets a jump table indexed by the first 16 address bits, so
 *   a lookup starts near the bottom of the trie instead of at the root. A lookup in a large
 *   trie is a chain of dependent memory reads, one per node; the table replaces the first dozen
 *   or so with one (see bench/allowedips.ts).
 * Not thread-safe and not re-entrant (JavaScript is neither here).
 *
 * Text forms (`parsePrefix`, `formatPrefix`, `parseIp`, `formatIp`) follow Go's net/netip,
 * which is what wireguard-go parses UAPI `allowed_ip` values with, with two differences: a bare
 * address is accepted as a host prefix (/32 or /128), as `wg set … allowed-ips` does, and
 * zones (`fe80::1%eth0`) are always rejected. IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`)
 * stay IPv6, as in netip and wireguard-go: `::ffff:10.0.0.1/128` only matches IPv6 packets
 * carrying that mapped address, never IPv4 packets from 10.0.0.1. They format as netip does
 * (`::ffff:10.0.0.1`).
 */
import type { Prefix } from './config.ts';
import { formatIp, parseIp, PrefixError, quote } from '../core/ip-address.ts';

// ---------------------------------------------------------------------------------------------
// Text forms of prefixes (addresses themselves: core/ip-address.ts)


/**
 * Parses `address/bits` into a canonical prefix (host bits zeroed): `10.0.0.1/24` gives
 * 10.0.0.0/24. A bare address is a host prefix (/32 or /128). `bits` is decimal without
 * leading zeros or sign, at most 32 (IPv4) or 128 (IPv6).
 */
export function parsePrefix(text: string): Prefix {
  const slash = text.lastIndexOf('/');
  const bytes = parseIp(slash < 0 ? text : text.slice(0, slash));
  const max = bytes.length * 8;
  let bits = max;
  if (slash >= 0) {
    const b = text.slice(slash + 1);
    if (!/^(?:0|[1-9][0-9]{0,2})$/.test(b)) throw new PrefixError(`bad prefix length after '/' in ${quote(text)}`);
    bits = Number(b);
    if (bits > max) throw new PrefixError(`prefix length ${bits} out of range (0..${max}) in ${quote(text)}`);
  }
  maskBytes(bytes, bits);
  return { family: bytes.length === 4 ? 4 : 6, bytes, bits };
}

/** `10.0.0.0/24`, `fd00::/64`, `::/0`: the address as `formatIp` writes it, then the length. */
export function formatPrefix(prefix: Prefix): string {
  checkPrefix(prefix);
  return `${formatIp(prefix.bytes)}/${prefix.bits}`;
}

/** A validated copy of `prefix` with host bits zeroed (what `insert` stores). */
export function canonicalPrefix(prefix: Prefix): Prefix {
  checkPrefix(prefix);
  const bytes = prefix.bytes.slice();
  maskBytes(bytes, prefix.bits);
  return { family: prefix.family, bytes, bits: prefix.bits };
}

function checkPrefix(p: Prefix): void {
  const len = p.family === 4 ? 4 : p.family === 6 ? 16 : -1;
  if (len < 0) throw new PrefixError(`prefix family must be 4 or 6, not ${String(p.family)}`);
  if (!(p.bytes instanceof Uint8Array) || p.bytes.length !== len) {
    throw new PrefixError(`an IPv${p.family} prefix has ${len} address bytes`);
  }
  if (!Number.isInteger(p.bits) || p.bits < 0 || p.bits > len * 8) {
    throw new PrefixError(`prefix length ${p.bits} out of range (0..${len * 8})`);
  }
}

function maskBytes(bytes: Uint8Array, bits: number): void {
  for (let i = 0; i < bytes.length; i++) {
    const keep = bits - i * 8;
    if (keep <= 0) bytes[i] = 0;
    else if (keep < 8) bytes[i]! &= (0xff << (8 - keep)) & 0xff;
  }
}

// ---------------------------------------------------------------------------------------------
// The table

/**
 * `MASKS[c]`: the mask of the last 32-bit word a c-bit prefix touches (word (c - 1) >> 5);
 * 0 for c = 0, so the root check of a /0 always passes.
 */
const MASKS = new Int32Array(129);
for (let c = 1; c <= 128; c++) {
  const r = ((c - 1) & 31) + 1;
  MASKS[c] = r === 32 ? -1 : ~(-1 >>> r);
}

/** Scratch for the words of the prefix being inserted, removed or looked up exactly. */
const K = new Int32Array(4);

// Node layout: 8 int32 per node (32 bytes), so that a lookup step reads one cache line.
/** Int32s per node. */
const STRIDE = 8;
/** Words 0..3: the prefix as big-endian int32 words (IPv4 uses word 0), host bits zeroed. */
const CHILD0 = 4;
const CHILD1 = 5;
/** owner × 256 + cidr; owner is the peer id, 0 for an internal branch node. */
const META = 6;
const PARENT = 7;
/** Peer ids must fit in the 23 bits above the cidr byte of META. */
const MAX_PEER_ID = 0x7fffff;

const INITIAL_CAPACITY = 64;

/** Tuning of the first-level jump table (see `AllowedIps`). */
export interface AllowedIpsOptions {
  /** Address bits the jump table indexes (0 = no jump table, at most 16; default 16). */
  jumpBits?: number;
  /**
   * Trie nodes a family needs before it gets a jump table (default 1024); it is dropped again
   * below half that.
   */
  jumpMinNodes?: number;
}

/**
 * A longest-prefix-match table from IPv4 and IPv6 prefixes to peers. `T` is whatever the
 * device uses to name a peer (an object, an id); it is compared by identity (Map semantics) and
 * may not be undefined or null (undefined means "no match").
 *
 * Once a family's trie is large (`jumpMinNodes`), a jump table indexed by the first
 * `jumpBits` address bits holds, for each value of those bits, where the walk from the root
 * gets to (the first node of `jumpBits` or more bits) and the best entry met on the way; a
 * lookup starts there instead of at the root. Each change refreshes the slots under the one
 * trie link it changed, so inserting or removing a long prefix touches one slot.
 */
export class AllowedIps<T extends NonNullable<unknown>> {
  /**
   * Nodes 1.. (index 0 means "no node"), STRIDE int32 each. A node is a prefix entry (owner
   * != 0) or an internal branch node (owner 0, always with two children).
   */
  private node = new Int32Array(INITIAL_CAPACITY * STRIDE);
  /** 4 or 6 per node. Not needed by lookups, so kept apart. */
  private family = new Uint8Array(INITIAL_CAPACITY);
  /** The owner's entry list in insertion order; `next` also links the free list. */
  private prev = new Int32Array(INITIAL_CAPACITY);
  private next = new Int32Array(INITIAL_CAPACITY);
  private capacity = INITIAL_CAPACITY;
  /** Nodes 1..used-1 have been handed out at least once. */
  private used = 1;
  private freeHead = 0;
  private root4 = 0;
  private root6 = 0;
  private entries = 0;
  private nodesInUse = 0;
  private nodes4 = 0;
  private nodes6 = 0;
  /** Per slot: [resume node, best META so far]; null while the family is small. */
  private jump4: Int32Array | null = null;
  private jump6: Int32Array | null = null;
  private readonly jumpBits: number;
  private readonly jumpShift: number;
  private readonly jumpMinNodes: number;

  // Peers with at least one prefix, by small integer id (1..).
  private readonly peerIds = new Map<T, number>();
  private readonly peerValue: (T | undefined)[] = [undefined];
  private readonly peerHead: number[] = [0];
  private readonly peerTail: number[] = [0];
  private readonly peerSize: number[] = [0];
  private readonly freePeerIds: number[] = [];

  constructor(options: AllowedIpsOptions = {}) {
    const bits = options.jumpBits ?? 16;
    const min = options.jumpMinNodes ?? 1024;
    if (!Number.isInteger(bits) || bits < 0 || bits > 16) throw new RangeError('allowed IPs: jumpBits must be an integer 0..16');
    if (!Number.isInteger(min) || min < 0) throw new RangeError('allowed IPs: jumpMinNodes must be a non-negative integer');
    this.jumpBits = bits;
    this.jumpShift = 32 - bits;
    this.jumpMinNodes = min;
  }

  /** Number of prefixes in the table. */
  get size(): number {
    return this.entries;
  }

  /**
   * Trie nodes in use: the prefixes plus internal branch nodes (fewer than the prefixes, so
   * at most 2 × size − 1). Only for tests and benchmarks.
   */
  get nodeCount(): number {
    return this.nodesInUse;
  }

  /** Number of distinct peers owning at least one prefix. */
  get peerCount(): number {
    return this.peerIds.size;
  }

  /**
   * Gives `prefix` (host bits ignored) to `peer`. A prefix already in the table moves to
   * `peer` (and to the end of its entry list, also when it already belonged to `peer`).
   */
  insert(prefix: Prefix, peer: T): void {
    if (peer === undefined || peer === null) throw new TypeError('allowed IPs: peer must not be undefined or null');
    checkPrefix(prefix);
    if (this.freePeerIds.length === 0 && this.peerValue.length > MAX_PEER_ID && !this.peerIds.has(peer)) {
      throw new RangeError(`allowed IPs: more than ${MAX_PEER_ID} peers`);
    }
    const v6 = prefix.family === 6;
    const words = v6 ? 4 : 1;
    const c = prefix.bits;
    loadWords(prefix.bytes, c);
    const root = v6 ? this.root6 : this.root4;
    if (root === 0) {
      const n = this.allocate(c, prefix.family);
      this.entries++;
      this.setRoot(v6, n);
      this.attach(n, peer);
      this.changedLink(v6, 0, 0);
      return;
    }
    let parent = 0;
    let cur = root;
    while (cur !== 0 && this.cidrOf(cur) <= c && this.commonBits(cur, words) >= this.cidrOf(cur)) {
      if (this.cidrOf(cur) === c) {
        // The prefix is there already (as an entry, or as a branch node it now turns into).
        if (this.ownerOf(cur) !== 0) this.detach(cur);
        else this.entries++;
        this.attach(cur, peer);
        this.changedOwner(v6, cur);
        return;
      }
      parent = cur;
      cur = this.node[cur * STRIDE + CHILD0 + bitOf(K, 0, this.cidrOf(cur))]!;
    }
    const n = this.allocate(c, prefix.family);
    this.entries++;
    this.attach(n, peer);
    // Everything below happens under one link: `parent`'s child towards K (or the root).
    const side = parent === 0 ? 0 : bitOf(K, 0, this.cidrOf(parent));
    if (cur === 0) {
      // A free slot under `parent` (never the root: the root exists).
      this.link(parent, side, n);
    } else {
      const common = Math.min(this.commonBits(cur, words), c);
      if (common === c) {
        // The new prefix contains `cur`: it goes between `parent` and `cur`.
        this.replace(parent, cur, n, v6);
        this.link(n, bitOf(this.node, cur * STRIDE, c), cur);
      } else {
        // They diverge at bit `common`: a new branch node holds both.
        const m = this.allocate(common, prefix.family);
        this.replace(parent, cur, m, v6);
        this.link(m, bitOf(this.node, cur * STRIDE, common), cur);
        this.link(m, bitOf(K, 0, common), n);
      }
    }
    this.changedLink(v6, parent, side);
  }

  /**
   * Removes `prefix` (host bits ignored) if `peer` owns it, as `allowed_ip=-prefix` does in
   * wireguard-go; a prefix of another peer, or one not in the table, is left alone.
   * Returns whether something was removed.
   */
  remove(prefix: Prefix, peer: T): boolean {
    const n = this.find(prefix);
    if (n === 0) return false;
    const id = this.ownerOf(n);
    if (id === 0 || this.peerValue[id] !== peer) return false;
    this.detach(n);
    this.entries--;
    this.unlinkNode(n);
    return true;
  }

  /** Removes every prefix of `peer`; returns how many there were. */
  removeByPeer(peer: T): number {
    const id = this.peerIds.get(peer);
    if (id === undefined) return 0;
    let removed = 0;
    let n = this.peerHead[id]!;
    while (n !== 0) {
      const after = this.next[n]!;
      this.detach(n);
      this.entries--;
      this.unlinkNode(n);
      removed++;
      n = after;
    }
    return removed;
  }

  /** The peer owning exactly `prefix` (host bits ignored), not a longest match. */
  get(prefix: Prefix): T | undefined {
    const n = this.find(prefix);
    return n === 0 ? undefined : this.peerValue[this.ownerOf(n)];
  }

  /**
   * The prefixes of `peer` in wireguard-go's order: the order they were last inserted in,
   * IPv4 and IPv6 mixed. Fresh canonical objects each call.
   */
  entriesForPeer(peer: T): Prefix[] {
    const id = this.peerIds.get(peer);
    const out: Prefix[] = [];
    if (id === undefined) return out;
    for (let n = this.peerHead[id]!; n !== 0; n = this.next[n]!) out.push(this.prefixOf(n));
    return out;
  }

  /** Longest match for a 4-byte (IPv4) or 16-byte (IPv6) address. */
  lookup(address: Uint8Array): T | undefined {
    if (address.length === 4) return this.lookupV4(address, 0);
    if (address.length === 16) return this.lookupV6(address, 0);
    throw new PrefixError(`an IP address has 4 or 16 bytes, not ${address.length}`);
  }

  /**
   * Longest match for the IPv4 address at `b[offset..offset+4)`, e.g. a packet's source (12)
   * or destination (16). The caller checks the bounds (see ip.ts); no allocation.
   */
  lookupV4(b: Uint8Array, offset: number): T | undefined {
    const a = (b[offset]! << 24) | (b[offset + 1]! << 16) | (b[offset + 2]! << 8) | b[offset + 3]!;
    const node = this.node;
    let found = 0;
    let n = this.root4;
    const jump = this.jump4;
    if (jump !== null) {
      const slot = (a >>> this.jumpShift) << 1;
      n = jump[slot]!;
      found = jump[slot + 1]!;
    }
    while (n !== 0) {
      const base = n << 3;
      const meta = node[base + META]!;
      const c = meta & 0xff;
      if (((a ^ node[base]!) & MASKS[c]!) !== 0) break;
      // found = meta when the node is an entry (meta > 0xff), without a branch.
      const entry = (0xff - meta) >> 31;
      found = (found & ~entry) | (meta & entry);
      // For a /32 this reads bit 0 again, but a /32 has no children.
      n = node[base + CHILD0 + ((a >>> (31 - c)) & 1)]!;
    }
    return found === 0 ? undefined : this.peerValue[found >>> 8];
  }

  /**
   * Longest match for the IPv6 address at `b[offset..offset+16)`, e.g. a packet's source (8)
   * or destination (24). The caller checks the bounds; no allocation.
   */
  lookupV6(b: Uint8Array, offset: number): T | undefined {
    const a0 = (b[offset]! << 24) | (b[offset + 1]! << 16) | (b[offset + 2]! << 8) | b[offset + 3]!;
    const a1 = (b[offset + 4]! << 24) | (b[offset + 5]! << 16) | (b[offset + 6]! << 8) | b[offset + 7]!;
    const a2 = (b[offset + 8]! << 24) | (b[offset + 9]! << 16) | (b[offset + 10]! << 8) | b[offset + 11]!;
    const a3 = (b[offset + 12]! << 24) | (b[offset + 13]! << 16) | (b[offset + 14]! << 8) | b[offset + 15]!;
    const node = this.node;
    let found = 0;
    let n = this.root6;
    const jump = this.jump6;
    if (jump !== null) {
      const slot = (a0 >>> this.jumpShift) << 1;
      n = jump[slot]!;
      found = jump[slot + 1]!;
    }
    while (n !== 0) {
      const base = n << 3;
      const meta = node[base + META]!;
      const c = meta & 0xff;
      // Words wholly inside the prefix must be equal; the last one is compared under its mask.
      if (c <= 32) {
        if (((a0 ^ node[base]!) & MASKS[c]!) !== 0) break;
      } else if (a0 !== node[base]) {
        break;
      } else if (c <= 64) {
        if (((a1 ^ node[base + 1]!) & MASKS[c]!) !== 0) break;
      } else if (a1 !== node[base + 1]) {
        break;
      } else if (c <= 96) {
        if (((a2 ^ node[base + 2]!) & MASKS[c]!) !== 0) break;
      } else if (a2 !== node[base + 2] || ((a3 ^ node[base + 3]!) & MASKS[c]!) !== 0) {
        break;
      }
      const entry = (0xff - meta) >> 31;
      found = (found & ~entry) | (meta & entry);
      const w = c < 32 ? a0 : c < 64 ? a1 : c < 96 ? a2 : a3;
      n = node[base + CHILD0 + ((w >>> (31 - (c & 31))) & 1)]!;
    }
    return found === 0 ? undefined : this.peerValue[found >>> 8];
  }

  // -------------------------------------------------------------------------------- internals

  private cidrOf(n: number): number {
    return this.node[n * STRIDE + META]! & 0xff;
  }

  private ownerOf(n: number): number {
    return this.node[n * STRIDE + META]! >>> 8;
  }

  private setOwner(n: number, id: number): void {
    const at = n * STRIDE + META;
    this.node[at] = (id << 8) | (this.node[at]! & 0xff);
  }

  /** The node holding exactly `prefix` (entry or branch), or 0. Loads the prefix into K. */
  private find(prefix: Prefix): number {
    checkPrefix(prefix);
    const words = prefix.family === 6 ? 4 : 1;
    const c = prefix.bits;
    loadWords(prefix.bytes, c);
    let cur = prefix.family === 6 ? this.root6 : this.root4;
    while (cur !== 0 && this.cidrOf(cur) <= c && this.commonBits(cur, words) >= this.cidrOf(cur)) {
      if (this.cidrOf(cur) === c) return cur;
      cur = this.node[cur * STRIDE + CHILD0 + bitOf(K, 0, this.cidrOf(cur))]!;
    }
    return 0;
  }

  /** Leading bits node `n` and K have in common (up to 32 × words). */
  private commonBits(n: number, words: number): number {
    const base = n * STRIDE;
    for (let i = 0; i < words; i++) {
      const x = this.node[base + i]! ^ K[i]!;
      if (x !== 0) return i * 32 + Math.clz32(x);
    }
    return words * 32;
  }

  private setRoot(v6: boolean, n: number): void {
    if (v6) this.root6 = n;
    else this.root4 = n;
    if (n !== 0) this.node[n * STRIDE + PARENT] = 0;
  }

  private link(parent: number, bit: number, n: number): void {
    this.node[parent * STRIDE + CHILD0 + bit] = n;
    this.node[n * STRIDE + PARENT] = parent;
  }

  /** Puts `replacement` (possibly 0) where `old` hangs under `parent` (0: the root). */
  private replace(parent: number, old: number, replacement: number, v6: boolean): void {
    if (parent === 0) {
      this.setRoot(v6, replacement);
      return;
    }
    const at = parent * STRIDE + (this.node[parent * STRIDE + CHILD0] === old ? CHILD0 : CHILD1);
    this.node[at] = replacement;
    if (replacement !== 0) this.node[replacement * STRIDE + PARENT] = parent;
  }

  /**
   * Takes node `n` (already detached from its peer) out of the trie if it is no longer needed:
   * with two children it stays as a branch node; with one, the child takes its place; a leaf
   * goes, and a branch parent left with one child goes too.
   */
  private unlinkNode(n: number): void {
    const node = this.node;
    const v6 = this.family[n] === 6;
    const c0 = node[n * STRIDE + CHILD0]!;
    const c1 = node[n * STRIDE + CHILD1]!;
    if (c0 !== 0 && c1 !== 0) {
      this.changedOwner(v6, n);
      return;
    }
    const only = c0 !== 0 ? c0 : c1;
    const p = node[n * STRIDE + PARENT]!;
    const pSide = p === 0 ? 0 : node[p * STRIDE + CHILD0] === n ? 0 : 1;
    this.replace(p, n, only, v6);
    this.release(n);
    if (only !== 0 || p === 0 || this.ownerOf(p) !== 0) {
      this.changedLink(v6, p, pSide);
      return;
    }
    const p0 = node[p * STRIDE + CHILD0]!;
    const sibling = p0 !== 0 ? p0 : node[p * STRIDE + CHILD1]!;
    const g = node[p * STRIDE + PARENT]!;
    const gSide = g === 0 ? 0 : node[g * STRIDE + CHILD0] === p ? 0 : 1;
    this.replace(g, p, sibling, v6);
    this.release(p);
    this.changedLink(v6, g, gSide);
  }

  // ------------------------------------------------------------------------ the jump table

  /** The subtrie hanging from `parent`'s child `side` (parent 0: the root) has changed. */
  private changedLink(v6: boolean, parent: number, side: number): void {
    if (parent === 0) {
      this.refreshJump(v6, 0, 0);
      return;
    }
    const c = this.cidrOf(parent);
    if (c >= this.jumpBits) return this.refreshJump(v6, 0, -1);
    const slot = (this.node[parent * STRIDE]! >>> this.jumpShift) | (side << (this.jumpBits - 1 - c));
    this.refreshJump(v6, slot, c + 1);
  }

  /** Node `n` has a new owner (or none); its prefix is unchanged. */
  private changedOwner(v6: boolean, n: number): void {
    const c = this.cidrOf(n);
    if (c >= this.jumpBits) return this.refreshJump(v6, 0, -1);
    this.refreshJump(v6, this.node[n * STRIDE]! >>> this.jumpShift, c);
  }

  /**
   * Creates or drops the family's jump table as its size requires, and recomputes the slots
   * whose first `depth` bits are those of `slot` (depth -1: none; 0: all).
   */
  private refreshJump(v6: boolean, slot: number, depth: number): void {
    const count = v6 ? this.nodes6 : this.nodes4;
    const root = v6 ? this.root6 : this.root4;
    let jump = v6 ? this.jump6 : this.jump4;
    if (jump === null) {
      if (this.jumpBits === 0 || count < this.jumpMinNodes || count === 0) return;
      jump = new Int32Array(2 << this.jumpBits);
      if (v6) this.jump6 = jump;
      else this.jump4 = jump;
      this.fillJump(jump, root, 0, 0, 0);
      return;
    }
    if (count < this.jumpMinNodes >> 1 || count === 0) {
      if (v6) this.jump6 = null;
      else this.jump4 = null;
      return;
    }
    if (depth >= 0) this.fillJump(jump, root, 0, slot, depth);
  }

  /**
   * Fills the slots whose first `depth` bits are those of `lo` (the others zero), for a walk
   * that has reached node `n` having met `found` (a META, 0 for none) on the way. The walk
   * stops at the first node of `jumpBits` or more bits, which the lookup resumes from.
   */
  private fillJump(jump: Int32Array, n: number, found: number, lo: number, depth: number): void {
    const node = this.node;
    const bits = this.jumpBits;
    for (;;) {
      const count = 1 << (bits - depth);
      if (n === 0) return fillSlots(jump, lo, count, 0, found);
      const meta = node[n * STRIDE + META]!;
      const c = meta & 0xff;
      if (c >= bits) return fillSlots(jump, lo, count, n, found);
      const top = node[n * STRIDE]! >>> this.jumpShift;
      if (c > depth) {
        // Only the slots that start with the node's c bits go on; the others do not match it.
        if (((top ^ lo) >>> (bits - depth)) !== 0) return fillSlots(jump, lo, count, 0, found);
        const size = 1 << (bits - c);
        fillSlots(jump, lo, top - lo, 0, found);
        fillSlots(jump, top + size, lo + count - top - size, 0, found);
        lo = top;
        depth = c;
      } else if (((top ^ lo) >>> (bits - c)) !== 0) {
        return fillSlots(jump, lo, count, 0, found);
      }
      if (meta > 0xff) found = meta;
      if (c < depth) {
        n = node[n * STRIDE + CHILD0 + ((lo >>> (bits - 1 - c)) & 1)]!;
      } else {
        // Bit c splits the slots in two halves, one per child.
        this.fillJump(jump, node[n * STRIDE + CHILD0]!, found, lo, c + 1);
        n = node[n * STRIDE + CHILD1]!;
        lo += 1 << (bits - 1 - c);
        depth = c + 1;
      }
    }
  }

  /** A fresh node for the first `c` bits of K (masked), no owner, no children. */
  private allocate(c: number, family: 4 | 6): number {
    let n = this.freeHead;
    if (n !== 0) {
      this.freeHead = this.next[n]!;
    } else {
      if (this.used === this.capacity) this.grow();
      n = this.used++;
    }
    this.nodesInUse++;
    if (family === 6) this.nodes6++;
    else this.nodes4++;
    const base = n * STRIDE;
    for (let i = 0; i < 4; i++) {
      const bit = i * 32;
      this.node[base + i] = c <= bit ? 0 : c >= bit + 32 ? K[i]! : K[i]! & MASKS[c - bit]!;
    }
    this.node[base + CHILD0] = 0;
    this.node[base + CHILD1] = 0;
    this.node[base + META] = c;
    this.node[base + PARENT] = 0;
    this.family[n] = family;
    this.prev[n] = 0;
    this.next[n] = 0;
    return n;
  }

  private release(n: number): void {
    this.nodesInUse--;
    if (this.family[n] === 6) this.nodes6--;
    else this.nodes4--;
    this.node.fill(0, n * STRIDE, (n + 1) * STRIDE);
    this.next[n] = this.freeHead;
    this.freeHead = n;
  }

  private grow(): void {
    const cap = this.capacity * 2;
    const node = new Int32Array(cap * STRIDE);
    node.set(this.node);
    this.node = node;
    const family = new Uint8Array(cap);
    family.set(this.family);
    this.family = family;
    const prev = new Int32Array(cap);
    prev.set(this.prev);
    this.prev = prev;
    const next = new Int32Array(cap);
    next.set(this.next);
    this.next = next;
    this.capacity = cap;
  }

  /** Makes node `n` an entry of `peer`, at the end of its list. */
  private attach(n: number, peer: T): void {
    let id = this.peerIds.get(peer);
    if (id === undefined) {
      id = this.freePeerIds.pop() ?? this.peerValue.length;
      if (id === this.peerValue.length) {
        this.peerValue.push(peer);
        this.peerHead.push(0);
        this.peerTail.push(0);
        this.peerSize.push(0);
      } else {
        this.peerValue[id] = peer;
      }
      this.peerIds.set(peer, id);
    }
    const tail = this.peerTail[id]!;
    this.setOwner(n, id);
    this.prev[n] = tail;
    this.next[n] = 0;
    if (tail === 0) this.peerHead[id] = n;
    else this.next[tail] = n;
    this.peerTail[id] = n;
    this.peerSize[id]!++;
  }

  /** Takes node `n` off its owner's list (forgetting the peer when that was its last entry). */
  private detach(n: number): void {
    const id = this.ownerOf(n);
    const p = this.prev[n]!;
    const x = this.next[n]!;
    if (p === 0) this.peerHead[id] = x;
    else this.next[p] = x;
    if (x === 0) this.peerTail[id] = p;
    else this.prev[x] = p;
    this.setOwner(n, 0);
    this.prev[n] = 0;
    this.next[n] = 0;
    if (--this.peerSize[id]! === 0) {
      this.peerIds.delete(this.peerValue[id]!);
      this.peerValue[id] = undefined;
      this.freePeerIds.push(id);
    }
  }

  private prefixOf(n: number): Prefix {
    const v6 = this.family[n] === 6;
    const bytes = new Uint8Array(v6 ? 16 : 4);
    const base = n * STRIDE;
    for (let i = 0; i < bytes.length; i++) bytes[i] = this.node[base + (i >> 2)]! >>> (24 - 8 * (i & 3));
    return { family: v6 ? 6 : 4, bytes, bits: this.cidrOf(n) };
  }
}

function fillSlots(jump: Int32Array, lo: number, count: number, n: number, found: number): void {
  for (let i = lo << 1, end = (lo + count) << 1; i < end; i += 2) {
    jump[i] = n;
    jump[i + 1] = found;
  }
}

/** Loads the first `bits` bits of `bytes` into K as big-endian int32 words, the rest zeroed. */
function loadWords(bytes: Uint8Array, bits: number): void {
  K.fill(0);
  for (let i = 0; i < bytes.length; i++) K[i >> 2]! |= bytes[i]! << (24 - 8 * (i & 3));
  for (let w = 0; w < 4; w++) {
    const bit = w * 32;
    if (bits <= bit) K[w] = 0;
    else if (bits < bit + 32) K[w]! &= MASKS[bits - bit]!;
  }
}

/** Bit `c` (0 = most significant) of the words at `words[base..]`. */
function bitOf(words: Int32Array, base: number, c: number): number {
  return (words[base + (c >>> 5)]! >>> (31 - (c & 31))) & 1;
}
