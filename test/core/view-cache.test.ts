import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ViewCache } from '../../src/core/view-cache.ts';

function sameWindow(a: Uint8Array, b: Uint8Array): void {
  assert.equal(a.buffer, b.buffer);
  assert.equal(a.byteOffset, b.byteOffset);
  assert.equal(a.length, b.length);
}

describe('ViewCache', () => {
  it('returns the window subarray would, and the same object for the same window again', () => {
    const cache = new ViewCache(128);
    const buf = new Uint8Array(new ArrayBuffer(131072), 100, 120000);
    const first: Uint8Array[] = [];
    // 64 segments of one batch, then the same batch again: every segment hits.
    for (let k = 0; k < 64; k++) {
      const v = cache.view(buf, 16 + k * 1452, 16 + (k + 1) * 1452);
      sameWindow(v, buf.subarray(16 + k * 1452, 16 + (k + 1) * 1452));
      first.push(v);
    }
    let hits = 0;
    for (let k = 0; k < 64; k++) if (cache.view(buf, 16 + k * 1452, 16 + (k + 1) * 1452) === first[k]) hits++;
    assert.ok(hits >= 60, `${hits} of 64 segments reused`);
  });

  it('does not reuse a view of another buffer, offset or length', () => {
    const cache = new ViewCache(8);
    const a = new Uint8Array(4096), b = new Uint8Array(4096);
    const va = cache.view(a, 0, 1000);
    const vb = cache.view(b, 0, 1000);
    assert.notEqual(va, vb);
    sameWindow(vb, b.subarray(0, 1000));
    const shorter = cache.view(b, 0, 999);
    sameWindow(shorter, b.subarray(0, 999));
    const later = cache.view(b, 1, 1000);
    sameWindow(later, b.subarray(1, 1000));
    vb[5] = 7;
    assert.equal(b[5], 7, 'a view, not a copy');
    // Views of a window inside a larger view count by absolute offset.
    const inner = b.subarray(10);
    sameWindow(cache.view(inner, 0, 100), b.subarray(10, 110));
  });

  it('behaves as subarray for windows past the end or negative (never a wrong cached view)', () => {
    const cache = new ViewCache(4);
    const buf = new Uint8Array(100);
    sameWindow(cache.view(buf, 90, 120), buf.subarray(90, 120));
    sameWindow(cache.view(buf, 90, 120), buf.subarray(90, 120));
    sameWindow(cache.view(buf, -10, 100), buf.subarray(-10, 100));
    sameWindow(cache.view(buf, 0, 100), buf);
  });

  it('one slot: the last window only', () => {
    const cache = new ViewCache(1);
    const buf = new Uint8Array(100);
    const v = cache.view(buf, 0, 10);
    assert.equal(cache.view(buf, 0, 10), v);
    const w = cache.view(buf, 10, 20);
    assert.notEqual(w, v);
    assert.equal(cache.view(buf, 10, 20), w);
    // Same slot, so only the checks tell these apart.
    sameWindow(cache.view(buf, 10, 21), buf.subarray(10, 21));
    sameWindow(cache.view(buf, 11, 21), buf.subarray(11, 21));
    const other = new Uint8Array(100);
    sameWindow(cache.view(other, 11, 21), other.subarray(11, 21));
  });

  it('rejects a size that is not a power of two', () => {
    assert.throws(() => new ViewCache(0), RangeError);
    assert.throws(() => new ViewCache(100), RangeError);
  });
});
