/** The Node options daemonize() gives the interface process it re-executes (src/device/daemon.ts). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DAEMON_V8_FLAGS, daemonNodeArgs, initiationThreadFrom } from '../../src/device/daemon.ts';

describe('daemonNodeArgs', () => {
  it("keeps this process's options and adds a small young generation", () => {
    assert.deepEqual(DAEMON_V8_FLAGS, ['--max-semi-space-size=1']);
    assert.deepEqual(daemonNodeArgs([]), ['--max-semi-space-size=1']);
    assert.deepEqual(daemonNodeArgs(['--import', 'tsx', '--cpu-prof']), ['--import', 'tsx', '--cpu-prof', '--max-semi-space-size=1']);
    assert.deepEqual(daemonNodeArgs([], '--enable-source-maps'), ['--max-semi-space-size=1']);
  });

  it('adds nothing when the user sized the heap, on the command line or in NODE_OPTIONS', () => {
    for (const own of ['--max-semi-space-size=8', '--max_semi_space_size=8', '--min-semi-space-size=4', '--max-heap-size=512', '--semi-space-growth-factor=1']) {
      assert.deepEqual(daemonNodeArgs([own]), [own], own);
      assert.deepEqual(daemonNodeArgs(['--cpu-prof'], `--trace-warnings ${own}`), ['--cpu-prof'], `NODE_OPTIONS ${own}`);
    }
    assert.deepEqual(daemonNodeArgs(['--max-semi-space-size', '8']), ['--max-semi-space-size', '8'], 'value as the next word');
  });
});

describe('WIREWEAVE_INITIATION_THREAD', () => {
  it('defaults to a thread started on bursts only with more than two cores', () => {
    assert.equal(initiationThreadFrom(undefined, 2), 'off');
    assert.equal(initiationThreadFrom('', 1), 'off');
    assert.equal(initiationThreadFrom(undefined, 4), 'auto');
    for (const v of ['auto', 'always', 'off'] as const) assert.equal(initiationThreadFrom(v, 2), v);
  });

  it('refuses anything else with a one-line error naming the variable', () => {
    assert.throws(() => initiationThreadFrom('yes', 8), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'ERR_INITIATION_THREAD');
      assert.match(e.message, /^WIREWEAVE_INITIATION_THREAD must be auto, always or off, not "yes"$/);
      return true;
    });
  });
});
