#!/usr/bin/env node
// The `wireweave` command from the TypeScript sources (src/cli/run.ts through tsx), for the
// tests: they spawn this instead of bin/wireweave (which runs the compiled dist/), so they test
// the working tree as it is, built or not. A daemon started through it re-executes it (the
// daemon re-runs process.argv[1]), so its interface process runs the sources too.
// Executable, so wg-quick can run it as WG_QUICK_USERSPACE_IMPLEMENTATION.
import process from 'node:process';

// Loader hooks can trigger an ExperimentalWarning on some Node versions: not for users' eyes
// (test/cli/keys.test.ts checks for noise). Other warnings still show.
const emitWarning = process.emitWarning;
process.emitWarning = function (warning, ...rest) {
  const type = typeof rest[0] === 'string' ? rest[0] : rest[0]?.type;
  if (type === 'ExperimentalWarning' || warning?.name === 'ExperimentalWarning') return;
  return emitWarning.call(process, warning, ...rest);
};

const { register } = await import('tsx/esm/api');
// tsconfig: false, so that a tsconfig.json in the caller's working directory cannot change how
// these sources are compiled.
register({ tsconfig: false });

await import(new URL('../../src/cli/run.ts', import.meta.url).href);
