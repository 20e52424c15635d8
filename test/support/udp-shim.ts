/**
 * A UDP relay that loses, reorders and duplicates datagrams between two WireGuard endpoints,
 * from a seeded generator (we have no `tc netem`). Run it in a rig namespace:
 *
 *   node --import tsx test/support/udp-shim.ts HOST PORT_A PORT_B A_ADDR:PORT B_ADDR:PORT \
 *        [--loss P] [--dup P] [--reorder P] [--delay-max MS] [--seed N]
 *
 * A is configured with HOST:PORT_A as B's endpoint, B with HOST:PORT_B as A's. Datagrams from A
 * arriving on PORT_A go out to B from PORT_B, and B's on PORT_B go to A from PORT_A, so each
 * side always sees its peer at the address it was given. Each datagram is, independently:
 * dropped with probability `loss`; otherwise held for 1..`delay-max` ms with probability
 * `reorder` (later ones overtake it); and sent a second time (after up to `delay-max` ms) with
 * probability `dup`. Datagrams from anyone else are ignored.
 *
 * Prints `ready`, then a JSON line of counters every second and on SIGTERM/SIGINT (then exits).
 */
import dgram from 'node:dgram';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface ShimCounters {
  in: number;
  lost: number;
  reordered: number;
  duplicated: number;
  out: number;
}

export interface ShimReport { aToB: ShimCounters; bToA: ShimCounters }

export interface ShimOptions { loss: number; dup: number; reorder: number; delayMax: number; seed: number }

/** mulberry32: small, seeded, good enough for fault injection. */
export function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The last shim report printed in `stdout`, if any. */
export function lastShimReport(stdout: string): ShimReport | undefined {
  const lines = stdout.split('\n').filter((l) => l.startsWith('{'));
  for (let i = lines.length - 1; i >= 0; i--) {
    try {
      return JSON.parse(lines[i]!) as ShimReport;
    } catch {
      /* cut line */
    }
  }
  return undefined;
}

function parseHostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  return { host: s.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(s.slice(i + 1)) };
}

function main(argv: string[]): void {
  const pos: string[] = [];
  const opts: ShimOptions = { loss: 0, dup: 0, reorder: 0, delayMax: 10, seed: 1 };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    if (k.startsWith('--')) {
      const v = Number(argv[++i]);
      if (k === '--loss') opts.loss = v;
      else if (k === '--dup') opts.dup = v;
      else if (k === '--reorder') opts.reorder = v;
      else if (k === '--delay-max') opts.delayMax = v;
      else if (k === '--seed') opts.seed = v;
      else throw new Error(`unknown option ${k}`);
    } else pos.push(k);
  }
  const [host, portA, portB, aAddr, bAddr] = pos;
  if (!host || !portA || !portB || !aAddr || !bAddr) throw new Error('usage: udp-shim.ts HOST PORT_A PORT_B A_ADDR:PORT B_ADDR:PORT [options]');
  const a = parseHostPort(aAddr);
  const b = parseHostPort(bAddr);
  const type = host.includes(':') ? 'udp6' : 'udp4';
  const sockA = dgram.createSocket(type); // faces A
  const sockB = dgram.createSocket(type); // faces B
  const random = seeded(opts.seed);
  const zero = (): ShimCounters => ({ in: 0, lost: 0, reordered: 0, duplicated: 0, out: 0 });
  const report: ShimReport = { aToB: zero(), bToA: zero() };

  const relay = (m: Buffer, via: dgram.Socket, to: { host: string; port: number }, c: ShimCounters): void => {
    c.in++;
    if (random() < opts.loss) { c.lost++; return; }
    const send = (): void => { c.out++; via.send(m, to.port, to.host); };
    if (random() < opts.reorder) {
      c.reordered++;
      setTimeout(send, 1 + Math.floor(random() * opts.delayMax));
    } else send();
    if (random() < opts.dup) {
      c.duplicated++;
      setTimeout(send, Math.floor(random() * opts.delayMax));
    }
  };
  sockA.on('message', (m, r) => { if (r.port === a.port && r.address === a.host) relay(m, sockB, b, report.aToB); });
  sockB.on('message', (m, r) => { if (r.port === b.port && r.address === b.host) relay(m, sockA, a, report.bToA); });
  for (const s of [sockA, sockB]) s.on('error', (e) => process.stderr.write(`shim: ${e.message}\n`));
  const print = (): void => { process.stdout.write(JSON.stringify(report) + '\n'); };
  let bound = 0;
  const onBound = (): void => { if (++bound === 2) process.stdout.write('ready\n'); };
  sockA.bind(Number(portA), host, onBound);
  sockB.bind(Number(portB), host, onBound);
  setInterval(print, 1000);
  const stop = (): void => { print(); process.exit(0); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) main(process.argv.slice(2));
