/**
 * Runs a deliberately buggy target through the fuzz harness and prints what it found, as JSON.
 * A child process of fuzz.test.ts: node:test claims exceptions that escape asynchronously for
 * itself, so the harness's own catching of them is shown outside it.
 */
import { loadCorpus } from '../../fuzz/corpus.ts';
import type { FuzzTarget } from '../../fuzz/harness.ts';
import { invariant, replay, runTarget } from '../../fuzz/harness.ts';

/** Fails on inputs containing 0x42 (an invariant), 0x43 (a timer throws) and 0x44 (a promise rejects). */
const buggy: FuzzTarget<{ seen: number }> = {
  name: 'buggy',
  description: 'test double',
  batchSize: 50,
  setup: () => ({ seen: 0 }),
  seeds: () => [Uint8Array.of(1, 2, 3)],
  generate: (rng) => rng.bytes(rng.range(1, 4)),
  run: (ctx, input) => {
    ctx.seen++;
    invariant(!input.includes(0x42), 'found 0x42');
    if (input.includes(0x43)) setImmediate(() => { throw new Error('escaped 0x43'); });
    if (input.includes(0x44)) void Promise.reject(new Error('rejected 0x44'));
  },
  check: (ctx) => invariant(ctx.seen <= 50, 'batch bounded'),
};

const dir = process.argv[2]!;
const result = await runTarget(buggy, { runs: 5000, seed: 1, corpusDir: dir });
const replays: boolean[] = [];
for (const [, inputs] of loadCorpus('buggy', dir)) replays.push((await replay(buggy, inputs)) !== undefined);
process.stdout.write(JSON.stringify({ signatures: result.crashes.map((c) => c.signature), crashCount: result.crashCount, replays }));
