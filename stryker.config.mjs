/**
 * Mutation testing (`npm run mutate`): Stryker mutates the protocol code where a surviving
 * mutant is a security question and runs our node:test files on the mutants through the TAP
 * runner (tsx loads the TypeScript). Not in CI: it takes minutes to hours. Results go to
 * docs/mutation.md.
 *
 *   npm run mutate                         # src/core
 *   MUTATE_TARGET=uapi npm run mutate      # core | routing | allowedips | uapi | tcp | all
 *   npm run mutate -- --mutate src/core/cookie.ts   # narrower, within the target's tests
 */
import process from 'node:process';

const TARGETS = {
  core: {
    mutate: ['src/core/**/*.ts', '!src/core/index.ts'],
    // Listed, not globbed: the TAP runner takes no negations, and interop tests do not belong here.
    tests: [
      'test/core/@(cookie|endpoint|keys|noise|ratelimiter|recv.property|replay).test.ts', 'test/fuzz/zeroize.test.ts',
    ],
  },
  // The cryptokey-routing checks of the device (inbound source, outbound destination).
  routing: { mutate: ['src/device/device.ts:170-206'], tests: ['test/device/device.test.ts'] },
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
  concurrency: 1,
  timeoutMS: 20_000,
  // Only what the tests need goes into the sandbox.
  ignorePatterns: ['/*', '!/src', '!/test', '!/package.json', '!/tsconfig.json'],
  reporters: ['clear-text', 'progress-append-only', 'json', 'html'],
  jsonReporter: { fileName: `reports/mutation/${run}.json` },
  htmlReporter: { fileName: `reports/mutation/${run}.html` },
  tempDirName: `.stryker-tmp/${run}`,
  cleanTempDir: 'always',
};
