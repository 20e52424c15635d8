/**
 * What the V8 heap holds after each major (mark-sweep-compact) collection: the live heap, the
 * figure that says whether a long-running daemon leaks. Heap in use at a random moment
 * saw-tooths with the allocation rate and V8 sizes its heap by its own heuristics, so neither
 * says much on its own.
 *
 * Watched through perf_hooks `gc` entries, which Node reports shortly after each collection
 * (the heap is read then, so a little allocation since may be included). Only while someone
 * watches (the metrics server): the observer costs one entry per collection. Reference
 * counted, process-wide.
 */
import { constants as perfConstants, PerformanceObserver } from 'node:perf_hooks';
import v8 from 'node:v8';

export interface GcSnapshot {
  /** Major collections seen since the first watcher started. */
  majorCollections: number;
  /** V8 heap in use right after the latest major collection, bytes; NaN before the first. */
  liveHeapBytes: number;
}

const state: GcSnapshot = { majorCollections: 0, liveHeapBytes: NaN };
let observer: PerformanceObserver | undefined;
let watchers = 0;

/** Starts watching (if nobody was); the returned function stops this watcher. */
export function watchGc(): () => void {
  if (watchers++ === 0) {
    observer = new PerformanceObserver((list) => {
      let major = 0;
      for (const entry of list.getEntries()) {
        if (((entry as { detail?: { kind?: number } }).detail)?.kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR) major++;
      }
      if (major === 0) return;
      state.majorCollections += major;
      state.liveHeapBytes = v8.getHeapStatistics().used_heap_size;
    });
    observer.observe({ entryTypes: ['gc'] });
  }
  let stopped = false;
  return () => {
    if (stopped) return;
    stopped = true;
    if (--watchers === 0) {
      observer?.disconnect();
      observer = undefined;
    }
  };
}

/** The latest figures (a copy). */
export function gcSnapshot(): GcSnapshot {
  return { ...state };
}
