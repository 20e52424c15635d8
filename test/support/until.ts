/** Polling for tests that wait on real I/O: the one `until` the suite's files share. */
import assert from 'node:assert/strict';

/**
 * Calls `f` every `stepMs` until it returns something truthy, and returns that; fails naming
 * `what` (and the last value) once `ms` have passed.
 */
export async function until<T>(what: string, f: () => T | undefined | false | Promise<T | undefined | false>, ms = 15_000, stepMs = 20): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const last = await f();
    if (last) return last;
    if (Date.now() > end) assert.fail(`timed out waiting for ${what} (last: ${String(last)})`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
