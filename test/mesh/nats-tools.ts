/** What the NATS interop tests share: the nats-server prerequisite, free ports, waiting, child processes. */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { until as poll } from '../support/until.ts';

export const natsMissing = spawnSync('nats-server', ['--version']).error ? 'nats-server not found on PATH (apt-get install nats-server)' : undefined;
/** Skipped without nats-server, except under CI, where the test then fails on `natsMissing`. */
export const natsSkip: string | false = process.env.CI ? false : (natsMissing ?? false);

export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** The suite's `until`, with the longer wait NATS clusters need to form. */
export const until = (what: string, cond: () => boolean | Promise<boolean>, ms = 20_000): Promise<boolean> => poll(what, cond, ms);

export interface Proc { child: ChildProcess; output: () => string }

/** Spawns `cmd` with stdout and stderr collected, and records it in `procs` for the cleanup. */
export function start(cmd: string, args: string[], procs: ChildProcess[]): Proc {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(child);
  let out = '';
  child.stdout!.on('data', (d) => { out += d; });
  child.stderr!.on('data', (d) => { out += d; });
  return { child, output: () => out };
}
