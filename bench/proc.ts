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
