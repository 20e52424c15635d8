/**
 * Small helpers for the benchmarks: command-line flags, a batched timing loop and output
 * formatting. No timing assertions live here (or anywhere): the benchmarks only report.
 */
import { cpus } from 'node:os';

export interface BenchArgs {
  /** Measured seconds per case (warm-up not included). */
  seconds: number;
  /** Warm-up seconds per case, before measuring. */
  warmup: number;
  json: boolean;
  /** Only run cases of these providers (empty: all). */
  providers: string[];
  /** Only run cases with these ids (empty: all). */
  cases: string[];
}

export const USAGE = `usage: npm run bench:core -- [--seconds N] [--quick] [--json] [--provider P] [--case ID]
  --seconds N   measure each case for N seconds (default 1)
  --quick       measure each case for 0.3 s
  --json        print JSON instead of a Markdown table
  --provider P  only run the cases of provider P: node or portable (may be repeated)
  --case ID     only run the cases with id ID (may be repeated; ids are listed in the JSON output)`;

export function parseArgs(argv: readonly string[]): BenchArgs {
  let seconds = 1;
  let json = false;
  const providers: string[] = [];
  const cases: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new UsageError(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--seconds': {
        const v = value();
        seconds = Number(v);
        if (!Number.isFinite(seconds) || seconds <= 0) throw new UsageError(`--seconds must be a positive number, not ${v}`);
        break;
      }
      case '--quick': seconds = 0.3; break;
      case '--json': json = true; break;
      case '--provider': providers.push(value()); break;
      case '--case': cases.push(value()); break;
      case '--help': case '-h': throw new UsageError('');
      default: throw new UsageError(`unknown argument ${arg}`);
    }
  }
  return { seconds, warmup: Math.max(0.05, seconds * 0.2), json, providers, cases };
}

export class UsageError extends Error {}

/**
 * The positive number after flag `name` in `args` (an integer when `integer`), or `dflt` without
 * the flag; anything else ends the process with `BENCH: NAME needs a positive integer|number`.
 */
export function positiveFlag(args: readonly string[], bench: string, name: string, dflt: number, integer = false): number {
  const i = args.indexOf(name);
  if (i < 0) return dflt;
  const v = Number(args[i + 1]);
  if (!(integer ? Number.isInteger(v) : Number.isFinite(v)) || v <= 0) {
    console.error(`${bench}: ${name} needs a positive ${integer ? 'integer' : 'number'}`);
    process.exit(2);
  }
  return v;
}

/**
 * One benchmark case. `run(n)` performs n operations and is timed; `prepare(n)`, when given,
 * runs before each `run(n)` and is not timed (e.g. sealing the datagrams that `run` opens).
 */
export interface Case {
  prepare?(n: number): void;
  run(n: number): void;
  /** Largest batch (bounds the memory of prepared pools); default 4096. */
  maxBatch?: number;
}

export interface Measurement {
  ops: number;
  /** Timed nanoseconds (only inside `run`). */
  ns: number;
  /** Batch size the warm-up settled on. */
  batch: number;
  /** Timed nanoseconds of each measured batch (all of size `batch`). */
  batchNs: number[];
}

export function nowNs(): number {
  return Number(process.hrtime.bigint());
}

/**
 * Warm up, then time batches until `seconds` of timed work have been done. The batch size
 * starts at 1 and doubles during warm-up until a batch takes about 1/50 of the measured
 * duration (2..20 ms), so the clock is read rarely compared to the work.
 */
export function measure(c: Case, seconds: number, warmup: number): Measurement {
  const maxBatch = c.maxBatch ?? 4096;
  const target = Math.min(20e6, Math.max(2e6, (seconds * 1e9) / 50));
  let n = 1;
  let warmNs = 0;
  while (warmNs < warmup * 1e9) {
    c.prepare?.(n);
    const t0 = nowNs();
    c.run(n);
    const dt = nowNs() - t0;
    warmNs += dt;
    if (dt < target && n < maxBatch) n = Math.min(maxBatch, n * 2);
  }
  let ops = 0;
  let ns = 0;
  const batchNs: number[] = [];
  while (ns < seconds * 1e9) {
    c.prepare?.(n);
    const t0 = nowNs();
    c.run(n);
    const dt = nowNs() - t0;
    ns += dt;
    ops += n;
    batchNs.push(dt);
  }
  return { ops, ns, batch: n, batchNs };
}

/**
 * How much the batches disagreed: half the distance between the 10th and 90th percentile of
 * per-batch time, relative to the median (0.05 = ±5 %). Large values mean interference
 * (other processes, GC, CPU frequency) rather than a property of the code.
 */
export function spread(batchNs: readonly number[]): number {
  if (batchNs.length < 3) return NaN;
  const sorted = [...batchNs].sort((x, y) => x - y);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.round(q * (sorted.length - 1)))]!;
  return (at(0.9) - at(0.1)) / 2 / at(0.5);
}

export interface Environment {
  node: string;
  v8: string;
  openssl: string;
  cpu: string;
  cores: number;
  platform: string;
  date: string;
}

export function environment(): Environment {
  const list = cpus();
  return {
    node: process.version,
    v8: process.versions.v8,
    openssl: process.versions.openssl ?? 'none',
    cpu: list[0]?.model.trim() ?? 'unknown',
    cores: list.length,
    platform: `${process.platform} ${process.arch}`,
    date: new Date().toISOString(),
  };
}

/** 1234567.8 → "1,234,568"; below 100 keeps one decimal. */
export function formatRate(x: number): string {
  if (x < 100) return x.toFixed(1);
  return Math.round(x).toLocaleString('en-US');
}

/** Seconds as a short decimal: 0.06, 0.3, 1. */
export function formatSeconds(x: number): string {
  return String(Number(x.toPrecision(3)));
}

/** Three significant digits, without exponent notation. */
export function formatSig(x: number): string {
  if (x >= 100) return Math.round(x).toLocaleString('en-US');
  return x.toPrecision(3);
}

export function markdownTable(headers: readonly string[], rows: readonly (readonly string[])[], rightAligned: readonly boolean[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const pad = (s: string, i: number) => (rightAligned[i] ? s.padStart(widths[i]!) : s.padEnd(widths[i]!));
  const line = (cells: readonly string[]) => `| ${cells.map(pad).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (rightAligned[i] ? `${'-'.repeat(w + 1)}:` : `:${'-'.repeat(w + 1)}`)).join('|')}|`;
  return [line(headers), rule, ...rows.map(line)].join('\n');
}
