/**
 * Starts one of the device's worker threads (linux/: tun-reader, udp-receiver, sealer; here:
 * initiation-worker) from its own module.
 *
 * Compiled (dist/), the module is `<name>.js` in its folder. From the sources (tests, bench,
 * `node --import tsx`) it is `<name>.ts`, and a worker needs a TypeScript loader of its own:
 * Node 20 applies neither `--import tsx` from execArgv nor module.register() hooks to a worker's
 * modules. So the thread starts from a two-line script that installs tsx's require hook (tsx is
 * a devDependency, present wherever the sources run) and then loads the module; without tsx
 * (a Node that strips types itself) the module is started directly.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { WorkerOptions } from 'node:worker_threads';

/** '.ts' when this module runs from the sources, '.js' when compiled. */
const EXTENSION = new URL(import.meta.url).pathname.endsWith('.ts') ? '.ts' : '.js';

export function startWorker(name: 'tun-reader' | 'udp-receiver' | 'sealer' | 'initiation-worker', options: WorkerOptions): Worker {
  const dir = name === 'initiation-worker' ? './' : './linux/';
  const url = new URL(`${dir}${name}${EXTENSION}`, import.meta.url);
  if (EXTENSION === '.js') return new Worker(url, options);
  let tsx: string;
  try {
    tsx = createRequire(import.meta.url).resolve('tsx/cjs/api');
  } catch {
    return new Worker(url, options);
  }
  const source = `require(${JSON.stringify(tsx)}).register(); require(${JSON.stringify(fileURLToPath(url))});`;
  return new Worker(source, { ...options, eval: true });
}
