/**
 * `wireweave forward CONFIG --tcp [BIND:]PORT:HOST:HOSTPORT ... --udp ... --reverse-tcp ...`:
 * the tunnel up rootless, with ssh -L / -R style port forwards. The same command as `proxy`
 * (one process for proxies and forwards, cli/proxy.ts), with forwards required. Runs until
 * SIGINT/SIGTERM.
 */
import { runTunnel } from './proxy.ts';
import type { ProxyIo, RunOptions } from './proxy.ts';

export { FORWARD_USAGE } from './proxy.ts';

export function forward(args: string[], io: ProxyIo, options: RunOptions = {}): Promise<number> {
  return runTunnel('forward', args, io, options);
}
