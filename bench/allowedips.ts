/**
 * Benchmark of the cryptokey routing table (src/device/allowedips.ts):
 *
 * 1. lookups per second in a table of 100,000 distinct random prefixes (half IPv4, half IPv6,
 *    1,000 peers), for random addresses and for addresses inside inserted prefixes, with and
 *    without the first-level jump table, plus the data-path form: length check and lookup of
 *    the destination in place in an IP packet;
 * 2. the time and memory to insert 10,000 peers × 10 prefixes (a large hub), then to remove
 *    them peer by peer.
 *
 *   node --import tsx bench/allowedips.ts [--seconds N] [--quick] [--json]
 *
 * Inputs come from a fixed-seed generator, so runs differ only by machine noise. Reports only;
 * nothing asserts a timing.
 */
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { AllowedIps, canonicalPrefix, formatPrefix } from '../src/device/allowedips.ts';
import type { Prefix } from '../src/device/config.ts';
import { destinationAddressOffset, ipPacketLength, ipVersion } from '../src/device/ip.ts';
import type { Case } from './util.ts';
import { environment, formatRate, formatSeconds, formatSig, markdownTable, measure, spread } from './util.ts';

const USAGE = `usage: node --import tsx bench/allowedips.ts [--seconds N] [--quick] [--json]
  --seconds N   measure each lookup case for N seconds (default 1)
  --quick       measure each lookup case for 0.3 s
  --json        print JSON instead of Markdown tables`;

const TABLE_PREFIXES = 100_000;
const TABLE_PEERS = 1_000;
const HUB_PEERS = 10_000;
const HUB_PREFIXES_PER_PEER = 10;
/** Addresses (or packets) cycled through by each lookup case; a power of two. */
const POOL = 1 << 16;

/** Keeps results observable so no loop can be optimised away. */
let sink = 0;

// ------------------------------------------------------------------------------ inputs

/** xorshift32: a small deterministic generator, good enough for benchmark inputs. */
function rng(seed: number): () => number {
  let s = seed | 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
}

function randomBytes(next: () => number, out: Uint8Array, at: number, n: number): void {
  for (let i = 0; i < n; i++) out[at + i] = next() & 0xff;
}

/** A random prefix: IPv4 /8../32 or IPv6 /16../128, lengths uniform, host bits random. */
function randomPrefix(next: () => number, v6: boolean): Prefix {
  const bytes = new Uint8Array(v6 ? 16 : 4);
  randomBytes(next, bytes, 0, bytes.length);
  const bits = v6 ? 16 + (next() % 113) : 8 + (next() % 25);
  return { family: v6 ? 6 : 4, bytes, bits };
}

/** `count` addresses of `len` bytes each, back to back; `inside` draws them from `prefixes`. */
function addressPool(next: () => number, len: 4 | 16, prefixes: readonly Prefix[] | null): Uint8Array {
  const out = new Uint8Array(POOL * len);
  randomBytes(next, out, 0, out.length);
  if (prefixes !== null) {
    for (let i = 0; i < POOL; i++) {
      const p = prefixes[next() % prefixes.length]!;
      // Keep the prefix bits, randomise the host bits.
      for (let b = 0; b < p.bits; b++) {
        const byte = b >> 3;
        const m = 0x80 >> (b & 7);
        out[i * len + byte] = (out[i * len + byte]! & ~m) | (p.bytes[byte]! & m);
      }
    }
  }
  return out;
}

/**
 * Minimal IPv4 (28 B) and IPv6 (48 B) packets to the pool's addresses, each a view of its own
 * 64-byte slot (as a device gets each packet as a view), randomly one family or the other.
 */
function packetPool(next: () => number, v4: Uint8Array, v6: Uint8Array): Uint8Array[] {
  const out = new Uint8Array(POOL * 64);
  for (let i = 0; i < POOL; i++) {
    const o = i * 64;
    if ((next() & 1) === 0) {
      out[o] = 0x45;
      out[o + 3] = 28;
      out.set(v4.subarray(i * 4, i * 4 + 4), o + 16);
    } else {
      out[o] = 0x60;
      out[o + 5] = 8;
      out.set(v6.subarray(i * 16, i * 16 + 16), o + 24);
    }
  }
  return Array.from({ length: POOL }, (_, i) => out.subarray(i * 64, i * 64 + 64));
}

// ------------------------------------------------------------------------------ lookup cases

interface LookupResult {
  id: string;
  label: string;
  jump: boolean;
  opsPerSecond: number;
  nsPerOp: number;
  spread: number | null;
}

interface Peer { readonly id: number }

interface LookupCase { id: string; label: string; jump: boolean; c: Case }

function lookupCases(): { build: BuildResult; cases: LookupCase[] } {
  const next = rng(0x5eed);
  const peers: Peer[] = Array.from({ length: TABLE_PEERS }, (_, id) => ({ id }));
  const prefixes: Prefix[] = [];
  const seen = new Set<string>();
  while (prefixes.length < TABLE_PREFIXES) {
    const p = canonicalPrefix(randomPrefix(next, (prefixes.length & 1) === 1));
    const key = formatPrefix(p);
    if (seen.has(key)) continue;
    seen.add(key);
    prefixes.push(p);
  }
  const table = new AllowedIps<Peer>();
  const build = timeBuild(() => {
    for (let i = 0; i < prefixes.length; i++) table.insert(prefixes[i]!, peers[i % TABLE_PEERS]!);
  }, table);
  // The same table without the first-level jump table: a plain path-compressed trie.
  const plain = new AllowedIps<Peer>({ jumpBits: 0 });
  for (let i = 0; i < prefixes.length; i++) plain.insert(prefixes[i]!, peers[i % TABLE_PEERS]!);

  const v4Prefixes = prefixes.filter((p) => p.family === 4);
  const v6Prefixes = prefixes.filter((p) => p.family === 6);
  const v4Random = addressPool(next, 4, null);
  const v4Hits = addressPool(next, 4, v4Prefixes);
  const v6Random = addressPool(next, 16, null);
  const v6Hits = addressPool(next, 16, v6Prefixes);
  const packets = packetPool(next, v4Hits, v6Hits);

  const mask = POOL - 1;
  let cursor = 0;
  const v4 = (t: AllowedIps<Peer>, pool: Uint8Array): Case => ({
    run(n) {
      let i = cursor;
      let hits = 0;
      for (let k = 0; k < n; k++, i = (i + 1) & mask) if (t.lookupV4(pool, i << 2) !== undefined) hits++;
      cursor = i;
      sink += hits;
    },
    maxBatch: 1 << 20,
  });
  const v6 = (t: AllowedIps<Peer>, pool: Uint8Array): Case => ({
    run(n) {
      let i = cursor;
      let hits = 0;
      for (let k = 0; k < n; k++, i = (i + 1) & mask) if (t.lookupV6(pool, i << 4) !== undefined) hits++;
      cursor = i;
      sink += hits;
    },
    maxBatch: 1 << 20,
  });
  const packetCase: Case = {
    run(n) {
      let i = cursor;
      let hits = 0;
      for (let k = 0; k < n; k++, i = (i + 1) & mask) {
        const p = packets[i]!;
        if (ipPacketLength(p) === 0) continue;
        const dst = destinationAddressOffset(p);
        const peer = ipVersion(p) === 4 ? table.lookupV4(p, dst) : table.lookupV6(p, dst);
        if (peer !== undefined) hits++;
      }
      cursor = i;
      sink += hits;
    },
    maxBatch: 1 << 20,
  };
  const hitRate = (pool: Uint8Array, len: 4 | 16) => {
    let hits = 0;
    for (let i = 0; i < POOL; i++) if (table.lookup(pool.subarray(i * len, i * len + len)) !== undefined) hits++;
    return `${Math.round((hits / POOL) * 100)}% match`;
  };
  return {
    build,
    cases: [
      ...[table, plain].flatMap((t) => {
        const jump = t === table;
        const suffix = jump ? '' : '-plain';
        return [
          { id: `v4-random${suffix}`, label: `IPv4, random addresses (${hitRate(v4Random, 4)})`, jump, c: v4(t, v4Random) },
          { id: `v4-hit${suffix}`, label: 'IPv4, addresses inside inserted prefixes', jump, c: v4(t, v4Hits) },
          { id: `v6-random${suffix}`, label: `IPv6, random addresses (${hitRate(v6Random, 16)})`, jump, c: v6(t, v6Random) },
          { id: `v6-hit${suffix}`, label: 'IPv6, addresses inside inserted prefixes', jump, c: v6(t, v6Hits) },
        ];
      }),
      { id: 'packet', label: 'packet: length check + destination lookup (mixed)', jump: true, c: packetCase },
    ],
  };
}

// ------------------------------------------------------------------------------ bulk insert

interface BuildResult {
  label: string;
  prefixes: number;
  nodes: number;
  seconds: number;
  heapBytes: number;
  rssBytes: number;
}

/** `gc()` through V8's flag, since the benchmark is started without --expose-gc. */
const gc: () => void = (() => {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
})();

function memory(): { heap: number; rss: number } {
  gc();
  gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed + m.arrayBuffers, rss: m.rss };
}

function timeBuild(fill: () => void, table: AllowedIps<Peer>, label = ''): BuildResult {
  const before = memory();
  const t0 = process.hrtime.bigint();
  fill();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const after = memory();
  return { label, prefixes: table.size, nodes: table.nodeCount, seconds, heapBytes: after.heap - before.heap, rssBytes: after.rss - before.rss };
}

interface HubResult extends BuildResult {
  removeSeconds: number;
  lookupsPerSecond: number;
}

/**
 * 10,000 peers × 10 distinct prefixes: a tunnel /32 (in 10.64.0.0/10) and /128 (in fd00::/64)
 * each, plus four IPv4 /24 … /30 and four IPv6 /48 … /64 subnets, random but distinct.
 */
function hub(): HubResult {
  const next = rng(0x10b);
  const peers: Peer[] = Array.from({ length: HUB_PEERS }, (_, id) => ({ id }));
  const plan: Prefix[][] = peers.map(({ id }) => {
    const list: Prefix[] = [
      { family: 4, bytes: Uint8Array.of(10, 64 + (id >> 16), (id >> 8) & 0xff, id & 0xff), bits: 32 },
      { family: 6, bytes: Uint8Array.of(0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, id >> 8, id & 0xff), bits: 128 },
    ];
    for (let j = 0; j < 4; j++) {
      // The first 24 (IPv4) or 48 (IPv6) bits differ for each (peer, j).
      const b = Uint8Array.of(100 + 20 * j + (next() % 20), id >> 8, id & 0xff, next() & 0xff);
      list.push({ family: 4, bytes: b, bits: 24 + (next() % 7) });
      const b6 = new Uint8Array(16);
      randomBytes(next, b6, 0, 16);
      b6.set([0x20, 0x01, j, next() & 0xff, id >> 8, id & 0xff], 0);
      list.push({ family: 6, bytes: b6, bits: 48 + (next() % 17) });
    }
    return list;
  });
  const table = new AllowedIps<Peer>();
  const built = timeBuild(() => {
    for (let i = 0; i < HUB_PEERS; i++) for (const p of plan[i]!) table.insert(p, peers[i]!);
  }, table, `${HUB_PEERS.toLocaleString('en-US')} peers × ${HUB_PREFIXES_PER_PEER} prefixes`);

  // Lookups of the peers' tunnel addresses (what a hub's TUN sends).
  const dst = new Uint8Array(POOL * 4);
  for (let i = 0; i < POOL; i++) dst.set(plan[next() % HUB_PEERS]![0]!.bytes, i * 4);
  const m = measure({
    run(n) {
      let hits = 0;
      for (let k = 0; k < n; k++) if (table.lookupV4(dst, (k & (POOL - 1)) << 2) !== undefined) hits++;
      sink += hits;
    },
    maxBatch: 1 << 20,
  }, 0.3, 0.1);

  const t0 = process.hrtime.bigint();
  for (const p of peers) table.removeByPeer(p);
  const removeSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (table.size !== 0 || table.nodeCount !== 0) throw new Error('bench: table not empty after removing every peer');
  return { ...built, removeSeconds, lookupsPerSecond: (m.ops / m.ns) * 1e9 };
}

// ------------------------------------------------------------------------------ main

function parse(argv: readonly string[]): { seconds: number; json: boolean } | string {
  let seconds = 1;
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quick') seconds = 0.3;
    else if (a === '--json') json = true;
    else if (a === '--seconds' || a.startsWith('--seconds=')) {
      const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i];
      seconds = Number(v);
      if (!Number.isFinite(seconds) || seconds <= 0) return `--seconds must be a positive number, not ${String(v)}`;
    } else if (a === '--help' || a === '-h') return '';
    else return `unknown argument ${a}`;
  }
  return { seconds, json };
}

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

function main(): number {
  const args = parse(process.argv.slice(2));
  if (typeof args === 'string') {
    if (args) process.stderr.write(`${args}\n`);
    process.stderr.write(`${USAGE}\n`);
    return args ? 2 : 0;
  }
  const warmup = Math.max(0.05, args.seconds * 0.2);
  const env = environment();

  process.stderr.write(`  building a table of ${TABLE_PREFIXES.toLocaleString('en-US')} random prefixes …\n`);
  const { build, cases } = lookupCases();
  build.label = `${TABLE_PREFIXES.toLocaleString('en-US')} random prefixes, ${TABLE_PEERS.toLocaleString('en-US')} peers`;
  const results: LookupResult[] = [];
  for (const { id, label, jump, c } of cases) {
    process.stderr.write(`  ${label}${jump ? '' : ' (no jump table)'} …`);
    const m = measure(c, args.seconds, warmup);
    const r = { id, label, jump, opsPerSecond: (m.ops / m.ns) * 1e9, nsPerOp: m.ns / m.ops, spread: Number.isNaN(spread(m.batchNs)) ? null : spread(m.batchNs) };
    process.stderr.write(` ${formatRate(r.opsPerSecond)} lookups/s\n`);
    results.push(r);
  }
  process.stderr.write(`  ${HUB_PEERS.toLocaleString('en-US')} peers × ${HUB_PREFIXES_PER_PEER} prefixes …\n`);
  const h = hub();
  process.stderr.write(`  done (checksum ${sink})\n`);

  if (args.json) {
    process.stdout.write(`${JSON.stringify({ environment: env, seconds: args.seconds, warmup, lookups: results, builds: [build, h] }, null, 2)}\n`);
    return 0;
  }
  const lookupRows = results.map((r) => [r.label, r.jump ? 'yes' : 'no', formatRate(r.opsPerSecond), formatSig(r.nsPerOp), r.spread === null ? '' : `±${Math.round(r.spread * 100)}%`]);
  const buildRow = (b: BuildResult) => [
    b.label, b.prefixes.toLocaleString('en-US'), b.nodes.toLocaleString('en-US'), `${formatSig(b.seconds * 1000)} ms`,
    formatSig((b.seconds / b.prefixes) * 1e9), mib(b.heapBytes), mib(b.rssBytes),
  ];
  process.stdout.write([
    '## wireweave allowed IPs benchmark',
    '',
    `- Node ${env.node} (V8 ${env.v8}), ${env.platform}`,
    `- CPU: ${env.cpu} (${env.cores} logical cores; the benchmark uses one)`,
    `- date: ${env.date}`,
    `- per lookup case: ${formatSeconds(warmup)} s warm-up, then ${formatSeconds(args.seconds)} s measured`,
    '',
    `### Lookups, table of ${TABLE_PREFIXES.toLocaleString('en-US')} random prefixes (half IPv4 /8–/32, half IPv6 /16–/128)`,
    '',
    markdownTable(['case', 'jump table', 'lookups/s', 'ns/lookup', 'spread'], lookupRows, [false, false, true, true, true]),
    '',
    '### Building tables',
    '',
    markdownTable(['table', 'prefixes', 'trie nodes', 'insert time', 'ns/insert', 'heap Δ', 'RSS Δ'], [buildRow(build), buildRow(h)],
      [false, true, true, true, true, true, true]),
    '',
    `${h.label}: removing every peer (removeByPeer) took ${formatSig(h.removeSeconds * 1000)} ms; looking up the peers'`,
    `tunnel addresses ran at ${formatRate(h.lookupsPerSecond)} lookups/s.`,
    '"jump table no" is the same table built with `{ jumpBits: 0 }`: the plain path-compressed trie.',
    'heap Δ is the JS heap plus ArrayBuffers after a full GC, i.e. the table (node arrays grown by doubling, one',
    '512 KiB jump table per family); RSS Δ is the process growth, which includes memory V8 keeps for later.',
    'spread: half the p10–p90 range of the timed batches relative to their median.',
  ].join('\n') + '\n');
  return 0;
}

process.exitCode = main();
