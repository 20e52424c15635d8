/**
 * The major-collection watch behind `nodejs_heap_live_bytes` (src/device/gc-watch.ts): it counts
 * major collections only while watched and reads the heap after each.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import vm from 'node:vm';
import { gcSnapshot, watchGc } from '../../src/device/gc-watch.ts';

// A full collection on demand without starting node with --expose-gc.
v8.setFlagsFromString('--expose-gc');
const fullGc = vm.runInNewContext('gc') as () => void;

/** Until the observer has been told (Node delivers gc entries asynchronously). */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  await new Promise((r) => setTimeout(r, 20));
}

describe('gc watch', () => {
  it('sees major collections while watched, with the heap in use after them, and not after it stops', async () => {
    const before = gcSnapshot().majorCollections;
    const stop = watchGc();
    const stopAgain = watchGc();
    fullGc();
    await settle();
    const seen = gcSnapshot();
    assert.ok(seen.majorCollections >= before + 1, `a major collection counted (${before} -> ${seen.majorCollections})`);
    const heap = v8.getHeapStatistics();
    assert.ok(seen.liveHeapBytes > 1e6 && seen.liveHeapBytes <= heap.total_heap_size, `live heap ${seen.liveHeapBytes} within (1 MB, heap size ${heap.total_heap_size}]`);
    stop();
    stop(); // twice is harmless: the other watcher still counts
    fullGc();
    await settle();
    assert.ok(gcSnapshot().majorCollections > seen.majorCollections, 'still watched by the second watcher');
    stopAgain();
    const after = gcSnapshot().majorCollections;
    fullGc();
    await settle();
    assert.equal(gcSnapshot().majorCollections, after, 'nothing counted once every watcher stopped');
  });
});
