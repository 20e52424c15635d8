/**
 * Helpers the network benchmarks share: number formatting for their tables, one-line error text,
 * and CPU time from /proc (utime + stime).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';

/** `digits` significant digits; thousands separators at and above 10^digits; '–' for NaN. */
export function fmt(x: number, digits = 3): string {
  if (!Number.isFinite(x)) return '–';
  if (x === 0) return '0';
  if (Math.abs(x) >= 10 ** digits) return Math.round(x).toLocaleString('en-US');
  return String(Number(x.toPrecision(digits)));
}

export function errorText(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).replace(/\s+/g, ' ').trim();
}

/** A command's trimmed stdout ('' when it fails). */
export function cmdOutput(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
  return `${r.stdout ?? ''}`.trim();
}

export const CLK_TCK = Number(cmdOutput('getconf', ['CLK_TCK'])) || 100;

/** utime + stime in seconds from a /proc/…/stat file (a process or one thread); NaN if unreadable. */
export function statCpu(file: string): number {
  try {
    const stat = fs.readFileSync(file, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return NaN;
  }
}

/** utime + stime of a process (all its threads), in seconds; NaN if it is gone. */
export function cpuSeconds(pid: number): number {
  return statCpu(`/proc/${pid}/stat`);
}

/** Progress and errors go to stderr; tables and JSON to files or stdout. */
export function log(s: string): void {
  process.stderr.write(`${s}\n`);
}

/** A bad command line (empty message: --help). */
export class UsageError extends Error {}

/**
 * Parses the command line; on a UsageError prints it and the usage and returns the exit code
 * (2, or 0 for --help).
 */
export function argsOr<T>(parse: () => T, usage: string): T | number {
  try {
    return parse();
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    if (e.message) log(e.message);
    log(usage);
    return e.message ? 2 : 0;
  }
}

/** Runs a benchmark's main; the rig's children are unref'd, so the loop is kept alive meanwhile. */
export async function runMain(main: () => Promise<number>): Promise<void> {
  const keepAlive = setInterval(() => {}, 1 << 30);
  try {
    process.exitCode = await main();
  } finally {
    clearInterval(keepAlive);
  }
}

/** The JSON of a results file: non-finite numbers as null. */
export function resultsJson(json: unknown): string {
  return `${JSON.stringify(json, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)}\n`;
}

/**
 * Walks `--flag value` / `--flag=value` arguments: `handle` gets each flag, a `value()` that
 * takes its value (throwing a UsageError when there is none), and the argument as given.
 */
export function parseFlags(argv: readonly string[], handle: (flag: string, value: () => string, arg: string) => void): void {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    handle(flag, () => {
      const v = eq > 0 ? arg.slice(eq + 1) : argv[++i];
      if (v === undefined) throw new UsageError(`${flag} needs a value`);
      return v;
    }, arg);
  }
}
