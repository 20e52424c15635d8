/** What the NATS interop tests share: the nats-server prerequisite, free ports, waiting, child processes. */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

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

/** Polls `cond` every `stepMs` until it holds; throws naming `what` after `ms`. */
export async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 20_000, stepMs = 20): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

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
