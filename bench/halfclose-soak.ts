/**
 * Half-close soak (issue 11 §1): random orders of half-closes through every relay (SOCKS5, HTTP
 * CONNECT, forward --tcp, --reverse-tcp, in-process connect()) for a while, with random sizes,
 * a bottleneck link, loss, reordering and duplication on an in-process memory network between two
 * netstacks (test/netstack/halfclose-rig.ts). Every transfer is hashed at both ends.
 *
 *   npm run soak:halfclose -- [--minutes N] [--parallel K] [--seed S] [--out FILE]
 *
 * Defaults: 60 minutes, 3 transfers at a time. A transfer is truncated when either direction
 * arrives short or different, or an end is seen other than exactly once; stalled when it does not
 * finish within 3 minutes. Prints a line per minute and a summary, writes a markdown report to
 * docs/soak/halfclose-<UTC date>.md (or --out). Exit code 1 on any truncation or stall.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeResult, impair, makeRig, ORDERS, PATHS, transfer } from '../test/netstack/halfclose-rig.ts';
import type { CloseOrder, ImpairCounters, RelayPath, Rig } from '../test/netstack/halfclose-rig.ts';
import { seeded } from '../test/support/udp-shim.ts';

const REPO = fileURLToPath(new URL('..', import.meta.url));

interface Args { minutes: number; parallel: number; seed: number; out: string | undefined }

function parseArgs(argv: string[]): Args {
  const a: Args = { minutes: 60, parallel: 3, seed: Date.now() % 1_000_000, out: undefined };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = argv[++i];
    if (v === undefined) throw new Error(`${k}: needs a value`);
    if (k === '--minutes') a.minutes = Number(v);
    else if (k === '--parallel') a.parallel = Number(v);
    else if (k === '--seed') a.seed = Number(v);
    else if (k === '--out') a.out = v;
    else throw new Error(`unknown option ${k}`);
  }
  if (!(a.minutes > 0)) throw new Error('--minutes: a positive number');
  if (!Number.isInteger(a.parallel) || a.parallel < 1) throw new Error('--parallel: a positive integer');
  return a;
}

interface Cell { transfers: number; truncated: number; stalled: number; bytes: number }

/** A network profile per rig: each rig keeps its impairment for its life. */
interface Profile { name: string; loss: number; reorder: number; dup: number; latency: number; rate: number; sendBuffer?: number }

const PROFILES: Profile[] = [
  { name: 'clean, 1 ms, 8 MB/s', loss: 0, reorder: 0, dup: 0, latency: 1, rate: 8000 },
  { name: '1% loss, 3% reorder, 0.5% dup, 2 ms, 4 MB/s', loss: 0.01, reorder: 0.03, dup: 0.005, latency: 2, rate: 4000 },
  { name: '3% loss, 5% reorder, 1% dup, 5 ms, 2 MB/s, 64 KiB send buffer', loss: 0.03, reorder: 0.05, dup: 0.01, latency: 5, rate: 2000, sendBuffer: 64 * 1024 },
];

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const random = seeded(args.seed);
  const started = new Date();
  const deadline = performance.now() + args.minutes * 60_000;
  const rigs: { rig: Rig; profile: Profile; counters: ImpairCounters }[] = [];
  for (const [i, profile] of PROFILES.entries()) {
    const rig = await makeRig(profile.sendBuffer ? { options: { stack: { tcpSendBuffer: profile.sendBuffer } } } : {});
    const counters = impair(rig.pair.network, { ...profile, delayMax: 10, seed: args.seed + i });
    rigs.push({ rig, profile, counters });
  }
  const cells = new Map<string, Cell>();
  const cell = (p: RelayPath, o: CloseOrder): Cell => {
    const key = `${p}|${o}`;
    let c = cells.get(key);
    if (!c) cells.set(key, (c = { transfers: 0, truncated: 0, stalled: 0, bytes: 0 }));
    return c;
  };
  const failures: string[] = [];
  let total = 0, truncated = 0, stalled = 0, bytes = 0;
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  // Sizes from empty to 8 MiB, log-uniform, so small and odd sizes are as common as large ones.
  const size = (): number => (random() < 0.1 ? 0 : Math.floor(Math.exp(random() * Math.log(8 * 1024 * 1024))));

  const worker = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const r = pick(rigs);
      const plan = {
        path: pick(PATHS), order: pick(ORDERS), upload: size(), download: size(),
        readRate: random() < 0.25 ? 1000 + Math.floor(random() * 4000) : undefined,
      };
      const result = await transfer(r.rig, plan, 180_000).catch((err: Error) => ({ ok: false, stalledOrFailed: err.message }));
      const c = cell(plan.path, plan.order);
      c.transfers++;
      total++;
      if ('plan' in result) {
        const moved = result.uploadReceived.bytes + result.downloadReceived.bytes;
        c.bytes += moved;
        bytes += moved;
        if (!result.ok) {
          const isStall = result.errors.some((e) => e.startsWith('stalled'));
          if (isStall) { c.stalled++; stalled++; } else { c.truncated++; truncated++; }
          failures.push(`${new Date().toISOString()} [${r.profile.name}] ${describeResult(result)}`);
          process.stdout.write(`FAIL ${failures.at(-1)}\n`);
        }
      } else {
        c.stalled++;
        stalled++;
        failures.push(`${new Date().toISOString()} [${r.profile.name}] ${plan.path} ${plan.order}: ${result.stalledOrFailed}`);
        process.stdout.write(`FAIL ${failures.at(-1)}\n`);
      }
      // The memory bind keeps a record of every datagram it sent: forget it as we go.
      r.rig.pair.aliceBind.sent.length = 0;
      r.rig.pair.bobBind.sent.length = 0;
    }
  };

  const t0 = performance.now();
  const ticker = setInterval(() => {
    const min = ((performance.now() - t0) / 60_000).toFixed(1);
    const rss = (process.memoryUsage().rss / 1048576).toFixed(0);
    process.stdout.write(`${min} min: ${total} transfers, ${(bytes / 1048576).toFixed(0)} MiB, ${truncated} truncated, ${stalled} stalled, RSS ${rss} MiB\n`);
  }, 60_000);
  await Promise.all(Array.from({ length: args.parallel }, () => worker()));
  clearInterval(ticker);
  const minutes = (performance.now() - t0) / 60_000;
  for (const r of rigs) await r.rig.pair.alice.destroy().then(() => r.rig.close()).catch(() => {});

  const rows = [...cells.entries()].sort().map(([key, c]) => {
    const [p, o] = key.split('|');
    return `| ${p} | ${o} | ${c.transfers} | ${(c.bytes / 1048576).toFixed(0)} | ${c.truncated} | ${c.stalled} |`;
  });
  const impairRows = rigs.map((r) => `| ${r.profile.name} | ${r.counters.lost} | ${r.counters.reordered} | ${r.counters.duplicated} | ${r.counters.queueDropped} |`);
  const verdict = truncated === 0 && stalled === 0 ? 'PASS: no truncated or stalled transfer' : `FAIL: ${truncated} truncated, ${stalled} stalled`;
  const summary = `${total} transfers (${(bytes / 1048576).toFixed(0)} MiB hashed) in ${minutes.toFixed(1)} min: ${truncated} truncated, ${stalled} stalled. ${verdict}`;
  process.stdout.write(`\n${summary}\n`);
  const report = [
    `# Half-close soak, ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC`,
    '',
    '`npm run soak:halfclose -- --minutes ' + args.minutes + ' --parallel ' + args.parallel + ' --seed ' + args.seed + '` (bench/halfclose-soak.ts):',
    'random half-close orders (client first, server first, both at once) through each relay, random',
    'sizes (0 to 8 MiB each way, log-uniform; a quarter of the servers read slowly), two netstacks',
    'on an in-process memory network with the impairments below; SHA-256 over both directions.',
    '',
    `**${summary}**`,
    '',
    '| path | order | transfers | MiB | truncated | stalled |',
    '| --- | --- | ---: | ---: | ---: | ---: |',
    ...rows,
    '',
    '| network profile | lost | reordered | duplicated | dropped at the bottleneck |',
    '| --- | ---: | ---: | ---: | ---: |',
    ...impairRows,
    '',
    failures.length ? '## Failures\n\n' + failures.map((f) => `- ${f}`).join('\n') : 'No failures.',
    '',
  ].join('\n');
  const out = args.out ?? path.join(REPO, 'docs', 'soak', `halfclose-${started.toISOString().slice(0, 10)}.md`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, report);
  process.stdout.write(`report: ${out}\n`);
  return truncated === 0 && stalled === 0 ? 0 : 1;
}

main().then((code) => process.exit(code), (err: Error) => {
  process.stderr.write(`halfclose-soak: ${err.message}\n`);
  process.exit(2);
});
