/**
 * The `wireweave` process: runs `main` on this process's arguments and stdio, then exits with
 * its code. Imported for its effect by the launchers: `bin/wireweave` (the compiled dist/) and
 * the tests' source launcher (test/support/wireweave.js, these sources through tsx).
 */
import process from 'node:process';
import { main } from './main.ts';

// A closed stdout (e.g. `wireweave genkey | head -c 0`) ends the process quietly.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(1);
    throw err;
  });
}

let code: number;
try {
  code = await main(process.argv.slice(2), { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr });
} catch (err) {
  process.stderr.write(`wireweave: internal error: ${(err as Error | undefined)?.stack ?? String(err)}\n`);
  code = 1;
}

// Exit even if stdin is still open (a terminal, or a writer that never closes), but only once
// stdout and stderr have been handed to the OS.
const flush = (stream: NodeJS.WriteStream) => new Promise<void>((resolve) => stream.write('', () => resolve()));
await Promise.all([flush(process.stdout), flush(process.stderr)]);
process.exit(code);
