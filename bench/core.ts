/**
 * Micro-benchmark of the sans-I/O protocol core, for both crypto providers: handshakes per
 * second and the data path (seal and open) at 64, 512 and 1420 bytes. No sockets, no timers:
 * two Endpoints in one process hand datagrams to each other, and the virtual time `now` that
 * the core takes as a parameter is advanced by hand (6 s per handshake, past REKEY_TIMEOUT and
 * the initiation flood limit, so every handshake is a fresh, accepted one).
 *
 *   npm run bench:core -- [--seconds N] [--quick] [--json] [--provider sodium|node|portable] [--case ID]
 *
 * Reports only; nothing here asserts a timing. See bench/README.md for how to read the output.
 */
import { Endpoint } from '../src/core/endpoint.ts';
import type { CryptoProvider } from '../src/core/crypto.ts';
import type { PeerId } from '../src/core/peer.ts';
import { nodeCrypto } from '../src/crypto/node.ts';
import { portableCrypto } from '../src/crypto/portable.ts';
import { sodiumCrypto } from '../src/crypto/sodium.ts';
import { wasmBlake2sLoaded } from '../src/crypto/blake2s-wasm.ts';
import type { Case, Environment } from './util.ts';
import { environment, formatRate, formatSeconds, formatSig, markdownTable, measure, parseArgs, spread, USAGE, UsageError } from './util.ts';

const PROVIDERS: readonly CryptoProvider[] = [...(sodiumCrypto ? [sodiumCrypto] : []), nodeCrypto, portableCrypto];
/** Plaintext packet sizes for the data path; 1420 is the usual tunnel MTU (also set as `mtu`). */
const SIZES = [64, 512, 1420] as const;
const MTU = 1420;
/** Virtual time between handshakes: more than REKEY_TIMEOUT (5 s) and the flood limit (20 ms). */
const HANDSHAKE_STEP = 6_000;
const WALL_BASE = 1_700_000_000_000;
/** Transport header (16) + tag (16); the sizes above need no padding with mtu = 1420. */
const OVERHEAD = 32;
const EMPTY = new Uint8Array(0);

/** Keeps results observable so no loop can be optimised away. */
let sink = 0;

// ---------------------------------------------------------------- two endpoints, no I/O

/** One datagram in flight, copied on send: buffers handed to `io` are valid only during the call. */
class Wire {
  private readonly buf = new Uint8Array(2048);
  private length = 0;

  put(datagram: Uint8Array): void {
    if (this.length !== 0) throw new Error('bench: a datagram is already on the wire');
    this.buf.set(datagram);
    this.length = datagram.length;
  }

  take(): Uint8Array {
    if (this.length === 0) throw new Error('bench: expected a datagram on the wire');
    const d = this.buf.subarray(0, this.length);
    this.length = 0;
    return d;
  }
}

class Side {
  /** What the endpoint's sendToPeer does; each case sets its own. */
  onSend: (datagram: Uint8Array) => void = () => {};
  delivered = 0;
  readonly endpoint: Endpoint<string>;
  peer: PeerId = 0;

  constructor(crypto: CryptoProvider) {
    const privateKey = globalThis.crypto.getRandomValues(new Uint8Array(32));
    const tag = new Uint8Array([127, 0, 0, 1, 0x33, 0x33]);
    this.endpoint = new Endpoint<string>({
      crypto,
      privateKey,
      mtu: MTU,
      wallClock: (now) => WALL_BASE + now,
      io: {
        sendToPeer: (_peer, datagram) => this.onSend(datagram),
        sendToSource: () => {},
        deliver: (_peer, packet) => { this.delivered += packet.length; },
        authenticated: () => {},
        sourceTag: () => tag,
      },
    });
  }
}

interface Pair {
  a: Side;
  b: Side;
  ab: Wire;
  ba: Wire;
  /** Virtual time of the last thing done (ms). */
  now: number;
}

function makePair(crypto: CryptoProvider): Pair {
  const a = new Side(crypto);
  const b = new Side(crypto);
  a.peer = a.endpoint.addPeer({ publicKey: b.endpoint.publicKey! }, 0);
  b.peer = b.endpoint.addPeer({ publicKey: a.endpoint.publicKey! }, 0);
  const ab = new Wire();
  const ba = new Wire();
  a.onSend = (d) => ab.put(d);
  b.onSend = (d) => ba.put(d);
  return { a, b, ab, ba, now: 0 };
}

/** One full handshake at `now`: initiation → response → keepalive that confirms B's session. */
function handshake(p: Pair, now: number): void {
  p.a.endpoint.initiateHandshake(now, p.a.peer);
  p.b.endpoint.recv(now, p.ab.take(), 'a');
  p.a.endpoint.recv(now, p.ba.take(), 'b');
  p.b.endpoint.recv(now, p.ab.take(), 'a');
}

/** A pair after one full handshake: A (initiator) → B is a confirmed session, sendToPeer still goes to the wires. */
function establishedPair(crypto: CryptoProvider): Pair {
  const p = makePair(crypto);
  p.now = HANDSHAKE_STEP;
  handshake(p, p.now);
  if (p.b.endpoint.counters.handshakesCompleted !== 1) throw new Error('bench: setup handshake did not complete');
  return p;
}

function expectDelta(what: string, before: number, after: number, n: number): void {
  if (after - before !== n) throw new Error(`bench: ${what}: expected ${n}, got ${after - before}`);
}

function packetOf(size: number): Uint8Array {
  const p = globalThis.crypto.getRandomValues(new Uint8Array(size));
  p[0] = 0x45; // looks like IPv4
  return p;
}

/** Reusable buffers for prepared datagrams: slot i is a fixed-size array, allocated on first use. */
class Pool {
  readonly slots: Uint8Array[] = [];
  private readonly length: number;
  constructor(length: number) {
    this.length = length;
  }
  ensure(n: number): void {
    while (this.slots.length < n) this.slots.push(new Uint8Array(this.length));
  }
}

// ---------------------------------------------------------------- cases

interface CaseSpec {
  id: string;
  label: string;
  provider: string;
  size: number | null;
  make(): Case;
}

function handshakeCases(crypto: CryptoProvider): CaseSpec[] {
  const provider = crypto.name;
  return [
    {
      id: 'handshake', label: 'handshake, full (both sides)', provider, size: null,
      make() {
        const p = makePair(crypto);
        return {
          run(n) {
            const before = p.b.endpoint.counters.handshakesCompleted;
            for (let i = 0; i < n; i++) {
              p.now += HANDSHAKE_STEP;
              handshake(p, p.now);
            }
            expectDelta('handshakes completed', before, p.b.endpoint.counters.handshakesCompleted, n);
          },
        };
      },
    },
    {
      id: 'initiation-create', label: 'initiation create (initiator)', provider, size: null,
      make() {
        const p = makePair(crypto);
        p.a.onSend = (d) => { sink ^= d[4]!; };
        return {
          run(n) {
            const before = p.a.endpoint.counters.handshakeInitiationsSent;
            for (let i = 0; i < n; i++) {
              p.now += HANDSHAKE_STEP;
              p.a.endpoint.initiateHandshake(p.now, p.a.peer);
            }
            expectDelta('initiations sent', before, p.a.endpoint.counters.handshakeInitiationsSent, n);
          },
        };
      },
    },
    {
      id: 'initiation-consume', label: 'initiation consume + response (responder)', provider, size: null,
      make() {
        // Initiations are made (untimed) at increasing times, then consumed in order at those
        // times, so each carries a newer timestamp and none is flood-limited.
        const p = makePair(crypto);
        const pool = new Pool(148);
        const times: number[] = [];
        let k = 0;
        p.a.onSend = (d) => { pool.slots[k++]!.set(d); };
        p.b.onSend = (d) => { sink ^= d[4]!; };
        return {
          maxBatch: 1024,
          prepare(n) {
            pool.ensure(n);
            k = 0;
            for (let i = 0; i < n; i++) {
              p.now += HANDSHAKE_STEP;
              p.a.endpoint.initiateHandshake(p.now, p.a.peer);
              times[i] = p.now;
            }
            expectDelta('initiations prepared', 0, k, n);
          },
          run(n) {
            const before = p.b.endpoint.counters.handshakeResponsesSent;
            const slots = pool.slots;
            for (let i = 0; i < n; i++) p.b.endpoint.recv(times[i]!, slots[i]!, 'a');
            expectDelta('responses sent', before, p.b.endpoint.counters.handshakeResponsesSent, n);
          },
        };
      },
    },
  ];
}

/**
 * The X25519 operations a handshake is made of, alone: they bound the handshake rate. The
 * responder's part of a handshake does 3 DH (the static-static one is precomputed per peer) and
 * derives 1 ephemeral key; so does the initiator's.
 */
function x25519Cases(crypto: CryptoProvider): CaseSpec[] {
  const provider = crypto.name;
  const random32 = (): Uint8Array => globalThis.crypto.getRandomValues(new Uint8Array(32));
  return [
    {
      id: 'x25519-dh', label: 'X25519 DH (prepared private key)', provider, size: null,
      make() {
        const priv = crypto.x25519PrivateKey(random32());
        const pubs = Array.from({ length: 64 }, () => crypto.x25519PrivateKey(random32()).publicKey);
        return {
          run(n) {
            for (let i = 0; i < n; i++) sink ^= crypto.x25519(priv, pubs[i & 63]!)![0]!;
          },
        };
      },
    },
    {
      id: 'x25519-keygen', label: 'X25519 key preparation (ephemeral key)', provider, size: null,
      make() {
        const raws = Array.from({ length: 64 }, random32);
        return {
          run(n) {
            for (let i = 0; i < n; i++) sink ^= crypto.x25519PrivateKey(raws[i & 63]!).publicKey[0]!;
          },
        };
      },
    },
  ];
}

function dataCases(crypto: CryptoProvider, size: number): CaseSpec[] {
  const provider = crypto.name;
  const datagramLength = size + OVERHEAD;
  return [
    {
      id: 'seal-endpoint', label: 'seal: endpoint.send', provider, size,
      make() {
        const p = establishedPair(crypto);
        const packet = packetOf(size);
        let bytes = 0;
        p.a.onSend = (d) => { bytes += d.length; };
        return {
          run(n) {
            const before = bytes;
            for (let i = 0; i < n; i++) p.a.endpoint.send(p.now, p.a.peer, packet);
            expectDelta('bytes sent', before, bytes, n * datagramLength);
          },
        };
      },
    },
    {
      id: 'open-endpoint', label: 'open: endpoint.recv (incl. copy)', provider, size,
      make() {
        // Datagrams with consecutive counters are sealed beforehand (untimed); each is copied
        // into one reusable buffer and handed to recv, which decrypts it there in place.
        const p = establishedPair(crypto);
        const packet = packetOf(size);
        const pool = new Pool(datagramLength);
        const buf = new Uint8Array(datagramLength);
        let k = 0;
        p.a.onSend = (d) => {
          if (d.length !== datagramLength) throw new Error(`bench: datagram of ${d.length} bytes, expected ${datagramLength}`);
          pool.slots[k++]!.set(d);
        };
        return {
          maxBatch: 2048,
          prepare(n) {
            pool.ensure(n);
            k = 0;
            for (let i = 0; i < n; i++) p.a.endpoint.send(p.now, p.a.peer, packet);
          },
          run(n) {
            const before = p.b.delivered;
            const slots = pool.slots;
            const b = p.b.endpoint;
            for (let i = 0; i < n; i++) {
              buf.set(slots[i]!);
              b.recv(p.now, buf, 'a');
            }
            expectDelta('bytes delivered', before, p.b.delivered, n * size);
          },
        };
      },
    },
    {
      id: 'seal-raw', label: 'seal: provider only', provider, size,
      make() {
        const key = crypto.aeadKey(globalThis.crypto.getRandomValues(new Uint8Array(32)));
        const plaintext = packetOf(size);
        const out = new Uint8Array(datagramLength);
        let counter = 0;
        return {
          run(n) {
            for (let i = 0; i < n; i++) {
              crypto.seal(key, counter, 0, plaintext, EMPTY, out, 16);
              counter = (counter + 1) >>> 0;
            }
            sink ^= out[20]!;
          },
        };
      },
    },
    {
      id: 'open-raw', label: 'open: provider only', provider, size,
      make() {
        // The same ciphertext opened again and again into a separate buffer (no replay window here).
        const key = crypto.aeadKey(globalThis.crypto.getRandomValues(new Uint8Array(32)));
        const ciphertext = new Uint8Array(size + 16);
        crypto.seal(key, 7, 0, packetOf(size), EMPTY, ciphertext, 0);
        const out = new Uint8Array(size);
        return {
          run(n) {
            let ok = 0;
            for (let i = 0; i < n; i++) if (crypto.open(key, 7, 0, ciphertext, EMPTY, out, 0)) ok++;
            expectDelta('raw opens', 0, ok, n);
          },
        };
      },
    },
  ];
}

/** The copy that the open case does before each recv, alone, over a pool of the same shape. */
function copyCase(size: number): CaseSpec {
  const datagramLength = size + OVERHEAD;
  return {
    id: 'copy', label: 'copy datagram only (part of open)', provider: '-', size,
    make() {
      const pool = new Pool(datagramLength);
      const buf = new Uint8Array(datagramLength);
      return {
        maxBatch: 2048,
        prepare(n) {
          pool.ensure(n);
        },
        run(n) {
          const slots = pool.slots;
          for (let i = 0; i < n; i++) buf.set(slots[i]!);
          sink ^= buf[0]!;
        },
      };
    },
  };
}

// ---------------------------------------------------------------- running and reporting

interface Result {
  case: string;
  label: string;
  provider: string;
  /** Plaintext packet bytes, or null for handshakes. */
  size: number | null;
  ops: number;
  seconds: number;
  opsPerSecond: number;
  microsecondsPerOp: number;
  /** Plaintext bits per second / 1e9, or null for handshakes. */
  gbitPerSecond: number | null;
  /** Operations per timed batch. */
  batch: number;
  batches: number;
  /** Half the p10–p90 range of batch times over their median (0.05 = ±5 %); null with < 3 batches. */
  spread: number | null;
}

const CASE_ORDER = ['handshake', 'initiation-create', 'initiation-consume', 'x25519-dh', 'x25519-keygen', 'seal-endpoint', 'open-endpoint', 'copy', 'seal-raw', 'open-raw'];

function runCase(spec: CaseSpec, seconds: number, warmup: number): Result {
  const m = measure(spec.make(), seconds, warmup);
  const s = m.ns / 1e9;
  const opsPerSecond = m.ops / s;
  return {
    case: spec.id,
    label: spec.label,
    provider: spec.provider,
    size: spec.size,
    ops: m.ops,
    seconds: s,
    opsPerSecond,
    microsecondsPerOp: (m.ns / 1e3) / m.ops,
    gbitPerSecond: spec.size === null ? null : (opsPerSecond * spec.size * 8) / 1e9,
    batch: m.batch,
    batches: m.batchNs.length,
    spread: Number.isNaN(spread(m.batchNs)) ? null : spread(m.batchNs),
  };
}

function sortResults(results: Result[]): Result[] {
  const providerRank = (p: string) => (p === '-' ? -1 : PROVIDERS.findIndex((x) => x.name === p));
  return [...results].sort((x, y) =>
    (x.size ?? 0) - (y.size ?? 0) ||
    CASE_ORDER.indexOf(x.case) - CASE_ORDER.indexOf(y.case) ||
    providerRank(x.provider) - providerRank(y.provider));
}

function markdown(env: Environment, seconds: number, warmup: number, results: Result[]): string {
  const rows = sortResults(results).map((r) => [
    r.provider,
    r.label,
    r.size === null ? '' : `${r.size} B`,
    formatRate(r.opsPerSecond),
    formatSig(r.microsecondsPerOp),
    r.gbitPerSecond === null ? '' : r.gbitPerSecond.toFixed(2),
    r.spread === null ? '' : `±${Math.round(r.spread * 100)}%`,
  ]);
  return [
    '## wireweave core benchmark',
    '',
    `- Node ${env.node} (V8 ${env.v8}, OpenSSL ${env.openssl}), ${env.platform}`,
    `- CPU: ${env.cpu} (${env.cores} logical cores; the benchmark uses one)`,
    `- date: ${env.date}`,
    `- per case: ${formatSeconds(warmup)} s warm-up, then ${formatSeconds(seconds)} s measured`,
    '',
    markdownTable(['provider', 'case', 'size', 'ops/s', 'µs/op', 'Gbit/s', 'spread'], rows, [false, false, true, true, true, true, true]),
    '',
    'Gbit/s counts plaintext packet bytes (not the 32 B of WireGuard header and tag). "open: endpoint.recv" includes',
    'copying each datagram into the receive buffer; "copy datagram only" is that copy alone. spread: half the p10–p90',
    'range of the timed batches relative to their median (noise, not precision of the mean).',
  ].join('\n');
}

function main(): number {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    if (e.message) process.stderr.write(`${e.message}\n`);
    process.stderr.write(`${USAGE}\n`);
    return e.message ? 2 : 0;
  }
  const providers = PROVIDERS.filter((p) => args.providers.length === 0 || args.providers.includes(p.name));
  const unknown = args.providers.filter((name) => !PROVIDERS.some((p) => p.name === name));
  if (unknown.length > 0) {
    process.stderr.write(`unknown provider ${unknown.join(', ')} (known: ${PROVIDERS.map((p) => p.name).join(', ')})\n`);
    return 2;
  }

  const specs: CaseSpec[] = [];
  for (const crypto of providers) {
    specs.push(...handshakeCases(crypto), ...x25519Cases(crypto));
    for (const size of SIZES) specs.push(...dataCases(crypto, size));
  }
  for (const size of SIZES) specs.push(copyCase(size));
  const selected = specs.filter((s) => args.cases.length === 0 || args.cases.includes(s.id));
  const unknownCases = args.cases.filter((id) => !CASE_ORDER.includes(id));
  if (unknownCases.length > 0) {
    process.stderr.write(`unknown case ${unknownCases.join(', ')} (known: ${CASE_ORDER.join(', ')})\n`);
    return 2;
  }

  const env = environment();
  const results: Result[] = [];
  for (const spec of selected) {
    process.stderr.write(`  ${spec.provider.padEnd(8)} ${spec.label}${spec.size === null ? '' : ` ${spec.size} B`} …`);
    const r = runCase(spec, args.seconds, args.warmup);
    process.stderr.write(` ${formatRate(r.opsPerSecond)} ops/s\n`);
    results.push(r);
  }
  process.stderr.write(`  done (checksum ${sink})\n`);

  if (args.json) {
    const out = { environment: env, seconds: args.seconds, warmup: args.warmup, results: sortResults(results) };
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  } else {
    process.stdout.write(`${markdown(env, args.seconds, args.warmup, results)}\n`);
  }
  return 0;
}

await wasmBlake2sLoaded; // measure the BLAKE2s the providers use once loaded
process.exitCode = main();
