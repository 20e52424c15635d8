/**
 * The fuzz targets in the normal test suite: a short seeded run of each (the full campaign is
 * `npm run fuzz`), every saved crash input under test/corpus replayed as a regression, and the
 * harness itself shown to catch, save and replay a crash.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeInputs, encodeInputs, loadCorpus } from '../../fuzz/corpus.ts';
import { replay, runTarget } from '../../fuzz/harness.ts';
import { FuzzRng } from '../../fuzz/rng.ts';
import { TARGETS } from '../../fuzz/targets/index.ts';

/** Inputs per target here: enough to pass through every generator branch, a second or so each. */
const SHORT_RUNS: Record<string, number> = { wire: 400, 'device-tun': 300, 'device-bind': 300, proxy: 300 };

describe('fuzz targets, short seeded runs', () => {
  for (const target of TARGETS) {
    it(`${target.name}: ${SHORT_RUNS[target.name] ?? 1000} inputs without a crash`, async () => {
      const result = await runTarget(target, { runs: SHORT_RUNS[target.name] ?? 1000, seed: 20261122, save: false });
      const first = result.crashes[0];
      assert.equal(result.crashCount, 0, first ? `${first.signature}\n${(first.error as Error)?.stack ?? ''}` : 'crashes');
      assert.ok(result.runs > 0, 'ran');
    });
  }
});

describe('fuzz corpus regressions', () => {
  for (const target of TARGETS) {
    const files = loadCorpus(target.name);
    if (files.length === 0) continue;
    for (const [name, inputs] of files) {
      it(`${target.name}/${name} replays without failure`, async () => {
        const err = await replay(target, inputs);
        assert.equal(err, undefined, `${String(err)}\n${(err as Error)?.stack ?? ''}`);
      });
    }
  }
});

describe('fuzz harness', () => {
  it('finds, saves and replays crashes, including exceptions and rejections that escape asynchronously', () => {
    const dir = mkdtempSync(join(tmpdir(), 'wireweave-fuzz-'));
    try {
      const child = fileURLToPath(new URL('./harness.child.ts', import.meta.url));
      const out = execFileSync(process.execPath, ['--import', 'tsx', child, dir], { encoding: 'utf8', timeout: 60_000 });
      const found = JSON.parse(out) as { signatures: string[]; crashCount: number; replays: boolean[] };
      const all = found.signatures.join('\n');
      for (const bug of ['InvariantError: found', 'Error: escaped', 'Error: rejected']) assert.ok(all.includes(bug), `${bug} in ${all}`);
      assert.equal(found.replays.length, found.signatures.length);
      assert.ok(found.replays.every(Boolean), 'every saved crash fails again on replay');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('encodes input sequences losslessly and tolerates a damaged tail', () => {
    const inputs = [Uint8Array.of(), Uint8Array.of(1), new Uint8Array(300).fill(7)];
    assert.deepEqual(decodeInputs(encodeInputs(inputs)), inputs);
    assert.deepEqual(decodeInputs(encodeInputs(inputs).subarray(0, 10)), inputs.slice(0, 2));
  });

  it('the same seed generates the same inputs', () => {
    for (const target of TARGETS) {
      const corpus = target.seeds();
      const draw = () => { const rng = new FuzzRng(5); return Array.from({ length: 50 }, () => target.generate(rng, corpus)); };
      assert.deepEqual(draw(), draw(), target.name);
    }
  });
});
