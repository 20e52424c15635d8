/**
 * Which UDP bind a real interface uses: the Linux bind (recvmmsg on a worker, UDP GSO/GRO,
 * sticky source addresses) when it opens here, else node:dgram. A trial open on a free port finds
 * out, and the reason for falling back is logged. Root is not needed for either.
 *
 *   WIREWEAVE_BIND=node        force node:dgram (comparisons, diagnosis)
 *   WIREWEAVE_UDP_BUFFER=N     socket buffer bytes for the Linux bind (default 7 MiB, as wireguard-go)
 *   WIREWEAVE_UDP_GSO=0        no UDP_SEGMENT batches on send (comparisons, diagnosis)
 *   WIREWEAVE_UDP_GRO=0        no UDP_GRO coalescing on receive
 *   WIREWEAVE_SEAL_WORKERS=N   threads that seal and send transport messages (needs sodium-native)
 *   WIREWEAVE_UDP_SLOTS=N      receive ring slots (a power of two; tuning and diagnosis)
 */
import { ConfigError } from '../core/errors.ts';
import type { Bind } from './bind.ts';
import { LinuxUdpBind } from './linux/bind.ts';
import { NodeUdpBind } from './bind-node.ts';

export interface BindLog {
  error(message: string): void;
  verbose(message: string): void;
}

const quiet: BindLog = { error: () => {}, verbose: () => {} };

/** WIREWEAVE_SEAL_WORKERS: a count in 0..64; anything else is a configuration error. */
function sealWorkersFrom(text: string | undefined): number | undefined {
  if (text === undefined || text === '') return undefined;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 64) throw new ConfigError('ERR_SEAL_WORKERS', `WIREWEAVE_SEAL_WORKERS must be a number of threads in 0..64, not ${JSON.stringify(text)}`);
  return n;
}

export async function chooseBind(env: NodeJS.ProcessEnv = process.env, log: BindLog = quiet): Promise<Bind> {
  if (env.WIREWEAVE_BIND === 'node' || process.platform !== 'linux') return new NodeUdpBind();
  const bind = new LinuxUdpBind({
    socketBuffer: env.WIREWEAVE_UDP_BUFFER ? Number(env.WIREWEAVE_UDP_BUFFER) : undefined,
    gso: env.WIREWEAVE_UDP_GSO !== '0',
    gro: env.WIREWEAVE_UDP_GRO !== '0',
    sealWorkers: sealWorkersFrom(env.WIREWEAVE_SEAL_WORKERS),
    ringSlots: env.WIREWEAVE_UDP_SLOTS ? Number(env.WIREWEAVE_UDP_SLOTS) : undefined,
    onError: (err) => log.error(err.message),
    onSourceCleared: (e, _cleared, why) => log.verbose(`source address ${e.localAddress} for ${e.text} refused (${why}), sending from the default address`),
  });
  try {
    await bind.open(0, () => {});
    await bind.close();
    return bind;
  } catch (err) {
    await bind.close().catch(() => undefined);
    log.error(`the Linux UDP bind failed (${(err as Error).message}); using node:dgram (no batching, no sticky source addresses)`);
    return new NodeUdpBind();
  }
}
