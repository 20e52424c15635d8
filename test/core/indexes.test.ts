/** Receiver indexes (src/core/indexes.ts): never 0, never two live at once, bounded retries. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { IndexTable } from '../../src/core/indexes.ts';
import type { Rng } from '../../src/core/rng.ts';
import { seededRng } from '../../src/core/rng.ts';

/** An rng that yields the given 32-bit values (little-endian), then repeats the last one. */
function scripted(values: number[]): Rng {
  let i = 0;
  return {
    fill(out) {
      const v = values[Math.min(i++, values.length - 1)]!;
      out.set([v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24]);
    },
  };
}

describe('IndexTable', () => {
  it('skips 0 and indexes already live', () => {
    const t = new IndexTable<string>(scripted([0, 7, 7, 0, 9]));
    assert.equal(t.allocate('a'), 7, '0 skipped');
    assert.equal(t.allocate('b'), 9, 'the live 7 and then 0 skipped');
    assert.equal(t.size, 2);
    assert.equal(t.get(7), 'a');
    assert.equal(t.get(9), 'b');
    assert.equal(t.get(0), undefined);
  });

  it('gives up loudly when the rng keeps returning taken values', () => {
    const t = new IndexTable<string>(scripted([5]));
    t.allocate('a');
    assert.throws(() => t.allocate('b'), /rng stuck 1/);
    assert.equal(t.size, 1);
    assert.throws(() => new IndexTable<string>(scripted([0])).allocate('x'), /rng stuck 0/);
  });

  it('makes 1001 tries before giving up', () => {
    // 1000 unusable values, then a free one: found on the last allowed try (the 1001st).
    const t = new IndexTable<string>(scripted([...Array<number>(1000).fill(0), 42]));
    assert.equal(t.allocate('a'), 42);
    const u = new IndexTable<string>(scripted([...Array<number>(1001).fill(0), 42]));
    assert.throws(() => u.allocate('a'), /rng stuck/);
  });

  it('replace rebinds only a live index; delete frees it; delete(0) is a no-op', () => {
    const t = new IndexTable<string>(seededRng(1));
    const i = t.allocate('handshake');
    t.replace(i, 'session');
    assert.equal(t.get(i), 'session');
    t.replace(i + 1, 'stray');
    assert.equal(t.get(i + 1), undefined, 'replace does not create');
    assert.equal(t.size, 1);
    t.delete(0);
    assert.equal(t.size, 1);
    t.delete(i);
    assert.equal(t.get(i), undefined);
    assert.equal(t.size, 0);
  });
});
