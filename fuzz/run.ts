/**
 * `npm run fuzz -- [--target NAME[,NAME…]] [--runs N] [--seed S] [--list]`
 *
 * Runs each target for N inputs (default 1,000,000) from seed S (default: from the clock,
 * printed so a run can be repeated), prints per-target counts and inputs/s, saves crashing
 * inputs under test/corpus/<target>/ and exits 1 if there was any. The test suite replays the
 * saved inputs (test/fuzz/fuzz.test.ts).
 */
import { loadCorpus } from './corpus.ts';
import { runTarget } from './harness.ts';
import type { RunResult } from './harness.ts';
import { TARGETS, targetByName } from './targets/index.ts';

function usage(message: string): never {
  process.stderr.write(`fuzz: ${message}\nUsage: npm run fuzz -- [--target NAME[,NAME...]] [--runs N] [--seed S] [--list]\n`);
  process.exit(2);
}

function parseArgs(argv: string[]): { names: string[]; runs: number; seed: number; list: boolean } {
  let names = TARGETS.map((t) => t.name);
  let runs = 1_000_000;
  let seed = Date.now() % 0x1_0000_0000;
  let list = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => argv[++i] ?? usage(`${a} needs a value`);
    if (a === '--target' || a === '-t') names = value().split(',');
    else if (a === '--runs' || a === '-n') runs = Number(value());
    else if (a === '--seed' || a === '-s') seed = Number(value());
    else if (a === '--list') list = true;
    else usage(`unknown argument ${JSON.stringify(a)}`);
  }
  if (!Number.isSafeInteger(runs) || runs < 1) usage('--runs must be a positive integer');
  if (!Number.isSafeInteger(seed) || seed < 0 || seed > 0xffffffff) usage('--seed must be an integer from 0 to 4294967295');
  for (const n of names) if (!targetByName(n)) usage(`no target ${JSON.stringify(n)} (targets: ${TARGETS.map((t) => t.name).join(', ')})`);
  return { names, runs, seed, list };
}

function row(r: RunResult): string {
  return `${r.target.padEnd(14)} ${String(r.runs).padStart(10)} ${String(r.crashCount).padStart(8)} ${r.seconds.toFixed(1).padStart(9)} ${Math.round(r.perSecond).toString().padStart(10)}`;
}

async function main(): Promise<number> {
  const { names, runs, seed, list } = parseArgs(process.argv.slice(2));
  if (list) {
    for (const t of TARGETS) process.stdout.write(`${t.name.padEnd(14)} ${t.description}\n`);
    return 0;
  }
  process.stdout.write(`fuzz: seed ${seed}, ${runs} inputs per target, node ${process.version}\n`);
  process.stdout.write(`${'target'.padEnd(14)} ${'inputs'.padStart(10)} ${'crashes'.padStart(8)} ${'seconds'.padStart(9)} ${'inputs/s'.padStart(10)}\n`);
  const results: RunResult[] = [];
  for (const name of names) {
    const target = targetByName(name)!;
    const extraSeeds = loadCorpus(name).flatMap(([, inputs]) => inputs);
    const result = await runTarget(target, {
      runs, seed, extraSeeds,
      progress: (_done, r) => process.stderr.write(`  … ${row(r)}\r`),
    });
    results.push(result);
    process.stdout.write(`${row(result)}\n`);
    for (const c of result.crashes) process.stdout.write(`  crash: ${c.signature}\n    saved: ${c.saved ?? '(not saved)'}\n`);
  }
  const heap = process.memoryUsage().heapUsed / 2 ** 20;
  process.stdout.write(`total: ${results.reduce((n, r) => n + r.runs, 0)} inputs, ${results.reduce((n, r) => n + r.crashCount, 0)} crashes, heap ${heap.toFixed(0)} MiB at the end\n`);
  return results.some((r) => r.crashCount > 0) ? 1 : 0;
}

process.exitCode = await main();
