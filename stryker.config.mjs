/**
 * Mutation testing (`npm run mutate`): Stryker mutates the protocol code where a surviving
 * mutant is a security question and runs our node:test files on the mutants through the TAP
 * runner (tsx loads the TypeScript). Not in CI: it takes minutes to hours. Results go to
 * docs/mutation.md.
 *
 *   npm run mutate                         # src/core
 *   MUTATE_TARGET=uapi npm run mutate      # core | routing | ip | allowedips | uapi | tcp | all
 *   npm run mutate -- --mutate src/core/cookie.ts   # narrower, within the target's tests
 *   MUTATE_TESTS=test/core/replay.test.ts npm run mutate -- --mutate src/core/replay.ts
 *     # fewer test files for a quick look; survivors are then a superset of the full run's
 *   MUTATE_CONCURRENCY=2 npm run mutate     # default 1 (two shared cores)
 *
 * test/core/endpoint.soak.test.ts (a virtual day, seconds per run) is left out on purpose.
 */
import process from 'node:process';

const TARGETS = {
  core: {
    // checksum.ts and ip-address.ts (moved here from device/netstack as shared utilities, not
    // protocol code) have their own target, `ip`, with the tests that exercise them.
    mutate: ['src/core/**/*.ts', '!src/core/index.ts', '!src/core/checksum.ts', '!src/core/ip-address.ts'],
    // Listed, not globbed: the TAP runner takes no negations, and interop tests do not belong here.
    tests: [
      'test/core/@(bytes|constants|cookie|endpoint|endpoint.api|endpoint.load|endpoint.secrets|endpoint.timers|errors|handshake|handshake.drops|indexes|initiation|keys|keys.errors|messages|noise|peer|public-key|ratelimiter|recv.property|replay|rng|session|session-slots|tai64n).test.ts', 'test/fuzz/zeroize.test.ts',
    ],
  },
  // The cryptokey-routing checks of the device (onTunPacket: outbound destination; deliver:
  // inbound source). Line range: re-check it when device.ts changes above line 216.
  routing: { mutate: ['src/device/device.ts:184-216'], tests: ['test/device/device.test.ts', 'test/device/cryptokey-routing.test.ts'] },
  ip: {
    mutate: ['src/core/checksum.ts', 'src/core/ip-address.ts'],
    tests: ['test/netstack/stack/ip.test.ts', 'test/device/offload.test.ts', 'test/core/ip-address.test.ts', 'test/core/checksum.test.ts', 'test/device/allowedips.test.ts', 'test/device/wgquick.test.ts', 'test/device/uapi.test.ts'],
  },
  allowedips: { mutate: ['src/device/allowedips.ts'], tests: ['test/device/allowedips.test.ts'] },
  uapi: { mutate: ['src/device/uapi.ts'], tests: ['test/device/uapi.test.ts'] },
  tcp: {
    mutate: ['src/netstack/stack/tcp/**/*.ts'],
    tests: ['test/netstack/stack/tcp-*.test.ts', 'test/netstack/stack/property.test.ts'],
  },
};
TARGETS.all = {
  mutate: Object.values(TARGETS).flatMap((t) => t.mutate),
  tests: [...new Set(Object.values(TARGETS).flatMap((t) => t.tests))],
};

const name = process.env.MUTATE_TARGET ?? 'core';
/** Report and sandbox names, so two runs (e.g. on different files) do not collide. */
const run = process.env.MUTATE_RUN ?? name;
const target = TARGETS[name];
if (target && process.env.MUTATE_TESTS) target.tests = process.env.MUTATE_TESTS.split(',');
if (!target) throw new Error(`MUTATE_TARGET must be one of ${Object.keys(TARGETS).join(', ')}; got ${name}`);

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'tap',
  tap: {
    testFiles: target.tests,
    nodeArgs: ['--test-reporter=tap', '--import', 'tsx', '-r', '{{hookFile}}', '{{testFile}}'],
    forceBail: true,
  },
  mutate: target.mutate,
  coverageAnalysis: 'perTest',
  // Two shared cores: one test process at a time.
  concurrency: Number(process.env.MUTATE_CONCURRENCY ?? 1),
  // On top of 1.5 × the measured run time: a mutant that loops is cut off without waiting long.
  timeoutMS: 5_000,
  // Re-runs only redo mutants whose code or covering test files changed since the last run of
  // the same MUTATE_RUN name (survivors, after new tests are added).
  incremental: true,
  incrementalFile: `reports/mutation/${run}.incremental.json`,
  // Only what the tests need goes into the sandbox.
  ignorePatterns: ['/*', '!/src', '!/test', '!/package.json', '!/tsconfig.json'],
  reporters: ['clear-text', 'progress-append-only', 'json', 'html'],
  jsonReporter: { fileName: `reports/mutation/${run}.json` },
  htmlReporter: { fileName: `reports/mutation/${run}.html` },
  tempDirName: `.stryker-tmp/${run}`,
  cleanTempDir: 'always',
};
