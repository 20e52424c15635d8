/**
 * Per-source token buckets for handshake messages, after wireguard-go's `ratelimiter` package
 * (and the kernel's ratelimiter.c): each source gets PACKETS_PER_SECOND tokens a second, holds
 * at most BURST, and one message costs one token.
 *
 * Sans-I/O like the rest of the core: time is the `now` (monotonic ms) passed to `allow`, and
 * a source is named by the bytes of its source tag (what `EndpointIO.sourceTag` returns; the
 * device's tags are IP address ‖ big-endian port). The bucket key is derived from the tag:
 *
 * - 6 bytes (IPv4 ‖ port): the IPv4 address;
 * - 18 bytes (IPv6 ‖ port): the IPv6 /64 (the first 8 bytes), since one host usually owns a /64;
 * - anything else: all of the tag's bytes (opaque tags, e.g. in simulations).
 *
 * The port never counts: a flooder cannot get more tokens by using more sockets.
 *
 * The table is bounded: entries idle for GC_AFTER ms are swept at most once per GC_INTERVAL
 * (lazily, inside `allow`, so no timer is needed), and when `maxEntries` sources are live a new
 * source is refused (as the kernel does) until the sweep frees room. Memory is O(maxEntries).
 *
 * One deliberate difference from wireguard-go: it admits a message when more than one token's
 * worth remains (strictly greater), so a brand-new source gets 4 messages at one instant; here
 * a full bucket admits exactly BURST at one instant (≥), which is what the constant says.
 */

export const RATELIMIT_PACKETS_PER_SECOND = 20;
export const RATELIMIT_BURST = 5;
/** Entries idle longer than this are forgotten (a forgotten source starts with a full bucket). */
export const RATELIMIT_GC_AFTER = 1_000;
/** The sweep runs at most this often. */
const RATELIMIT_GC_INTERVAL = 1_000;
/** Default bound on tracked sources (the kernel's minimum: 8192 buckets × 8). */
const RATELIMIT_MAX_ENTRIES = 65_536;

export interface RateLimiterOptions {
  packetsPerSecond?: number;
  burst?: number;
  maxEntries?: number;
}

interface Bucket {
  /** Tokens in units of milliseconds of refill: one packet costs `cost`. */
  tokens: number;
  last: number;
}

export interface RateLimiterStats {
  allowed: number;
  limited: number;
  /** New sources refused because the table was full. */
  tableFull: number;
  /** Live entries. */
  entries: number;
}

export class RateLimiter {
  /** Milliseconds of refill one packet costs (1000 / packetsPerSecond). */
  private readonly cost: number;
  private readonly max: number;
  private readonly maxEntries: number;
  private readonly table = new Map<number | string, Bucket>();
  private lastGc = -Infinity;
  private allowedCount = 0;
  private limitedCount = 0;
  private tableFullCount = 0;

  constructor(options: RateLimiterOptions = {}) {
    const pps = options.packetsPerSecond ?? RATELIMIT_PACKETS_PER_SECOND;
    const burst = options.burst ?? RATELIMIT_BURST;
    if (!(pps > 0) || !(burst >= 1)) throw new RangeError('packetsPerSecond must be > 0 and burst ≥ 1');
    this.cost = 1000 / pps;
    this.max = this.cost * burst;
    this.maxEntries = Math.max(1, options.maxEntries ?? RATELIMIT_MAX_ENTRIES);
  }

  /** Whether a handshake message from the source named by `tag` may be processed at `now`. */
  allow(now: number, tag: Uint8Array): boolean {
    if (now - this.lastGc >= RATELIMIT_GC_INTERVAL) this.gc(now);
    const key = bucketKey(tag);
    const b = this.table.get(key);
    if (!b) {
      if (this.table.size >= this.maxEntries) {
        this.tableFullCount++;
        this.limitedCount++;
        return false;
      }
      this.table.set(key, { tokens: this.max - this.cost, last: now });
      this.allowedCount++;
      return true;
    }
    // A clock that went backwards adds nothing (and takes nothing).
    if (now > b.last) {
      b.tokens = Math.min(this.max, b.tokens + (now - b.last));
      b.last = now;
    }
    if (b.tokens >= this.cost) {
      b.tokens -= this.cost;
      this.allowedCount++;
      return true;
    }
    this.limitedCount++;
    return false;
  }

  /**
   * Whether `allow(now, tag)` would say yes, without taking a token or creating an entry: lets
   * a caller drop a message it would refuse anyway before doing expensive work on it.
   */
  wouldAllow(now: number, tag: Uint8Array): boolean {
    const b = this.table.get(bucketKey(tag));
    if (!b) return this.table.size < this.maxEntries || now - this.lastGc >= RATELIMIT_GC_INTERVAL;
    return Math.min(this.max, b.tokens + Math.max(0, now - b.last)) >= this.cost;
  }

  /** Forgets sources idle for more than RATELIMIT_GC_AFTER (also done lazily by `allow`). */
  gc(now: number): void {
    this.lastGc = now;
    for (const [key, b] of this.table) if (now - b.last > RATELIMIT_GC_AFTER) this.table.delete(key);
  }

  /** Forgets every source. */
  clear(): void {
    this.table.clear();
  }

  get stats(): RateLimiterStats {
    return { allowed: this.allowedCount, limited: this.limitedCount, tableFull: this.tableFullCount, entries: this.table.size };
  }
}

/** IPv4 address as a number, IPv6 /64 or an opaque tag as a string. */
function bucketKey(tag: Uint8Array): number | string {
  if (tag.length === 6) return ((tag[0]! << 24) | (tag[1]! << 16) | (tag[2]! << 8) | tag[3]!) >>> 0;
  const v6 = tag.length === 18;
  const n = v6 ? 8 : tag.length;
  // The prefix keeps an 8-byte opaque tag out of the bucket of the IPv6 /64 with those bytes.
  let s = v6 ? '6' : 'x';
  for (let i = 0; i < n; i++) s += String.fromCharCode(tag[i]!);
  return s;
}
