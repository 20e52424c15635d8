/**
 * `wireweave forward CONFIG --tcp [BIND:]PORT:HOST:HOSTPORT ... --udp ... --reverse-tcp ...`:
 * the tunnel up rootless, with ssh -L / -R style port forwards. Runs until SIGINT/SIGTERM.
 */
import type { Netstack } from '../netstack/api.ts';
import { messageOf } from '../netstack/errors.ts';
import { forwardTcp, forwardUdp, formatForwardSpec, parseForwardSpec, reverseTcp } from '../netstack/forward.ts';
import type { Forward, ForwardSpec } from '../netstack/forward.ts';
import { CliError, describeTunnel, openTunnel, untilStopped, write } from './proxy.ts';
import type { ProxyIo, RunOptions } from './proxy.ts';

export const FORWARD_USAGE = `Usage: wireweave forward CONFIG [--tcp SPEC]... [--udp SPEC]... [--reverse-tcp SPEC]...

Brings up the WireGuard tunnel described by the wg-quick CONFIG file without root or a TUN
device and forwards ports, like ssh -L and -R:

  --tcp [BIND:]PORT:HOST:HOSTPORT      listen on this host's BIND:PORT (BIND defaults to
                                       127.0.0.1) and connect through the tunnel to HOST:HOSTPORT
  --udp [BIND:]PORT:HOST:HOSTPORT      the same for UDP datagrams (replies go back to the sender)
  --reverse-tcp [ADDR:]PORT:HOST:HOSTPORT
                                       listen on our tunnel address PORT and connect each
                                       connection to HOST:HOSTPORT from this host

HOST is resolved by the config's DNS servers through the tunnel (reverse: by this host) and must
be inside a peer's AllowedIPs. IPv6 addresses go in brackets: --tcp 8080:[fd00::2]:80.
`;

type Kind = 'tcp' | 'udp' | 'reverse-tcp';

function parseArgs(args: string[]): { config: string; forwards: { kind: Kind; spec: ForwardSpec }[] } | 'help' {
  let config: string | undefined;
  const forwards: { kind: Kind; spec: ForwardSpec }[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    if (flag === '-h' || flag === '--help') return 'help';
    if (flag === '--tcp' || flag === '--udp' || flag === '--reverse-tcp') {
      const text = eq > 0 ? arg.slice(eq + 1) : args[++i];
      if (text === undefined) throw new CliError(`${flag} needs [BIND:]PORT:HOST:HOSTPORT`);
      const spec = parseForwardSpec(text);
      if (!spec) throw new CliError(`${flag}: not [BIND:]PORT:HOST:HOSTPORT (ports 1-65535): ${JSON.stringify(text.slice(0, 80))}`);
      if (spec.bindPort === 0 && flag === '--reverse-tcp') throw new CliError('--reverse-tcp needs a tunnel port from 1 to 65535');
      forwards.push({ kind: flag.slice(2) as Kind, spec });
      continue;
    }
    if (arg.startsWith('-')) throw new CliError(`unknown option${/^--?[A-Za-z][A-Za-z0-9-]{0,31}$/.test(flag) ? ` '${flag}'` : ''}; run 'wireweave forward --help'`);
    if (config !== undefined) throw new CliError('only one CONFIG file, please');
    config = arg;
  }
  if (config === undefined) throw new CliError('missing CONFIG (a wg-quick file); run \'wireweave forward --help\'');
  if (forwards.length === 0) throw new CliError('nothing to forward: give at least one --tcp, --udp or --reverse-tcp');
  return { config, forwards };
}

export async function forward(args: string[], io: ProxyIo, options: RunOptions = {}): Promise<number> {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs(args);
  } catch (err) {
    await write(io.stderr, `wireweave: forward: ${messageOf(err)}\n`);
    return 1;
  }
  if (parsed === 'help') { await write(io.stdout, FORWARD_USAGE); return 0; }
  const log = (line: string) => { io.stderr.write(`wireweave: ${line}\n`); };
  let tunnel: Netstack | undefined;
  const open: Forward[] = [];
  try {
    tunnel = await openTunnel(parsed.config, options.netstack, (line) => io.stderr.write(`${line}\n`));
    await write(io.stderr, `wireweave: ${describeTunnel(tunnel)}\n`);
    const listening: Record<string, string> = {};
    for (const { kind, spec } of parsed.forwards) {
      const what = `--${kind} ${formatForwardSpec(spec)}`;
      let f: Forward;
      try {
        f = kind === 'tcp' ? await forwardTcp(tunnel, spec, log) : kind === 'udp' ? await forwardUdp(tunnel, spec, log) : await reverseTcp(tunnel, spec, log);
      } catch (err) {
        throw new CliError(`${what}: ${messageOf(err)}`);
      }
      open.push(f);
      listening[what] = f.listening;
      const arrow = kind === 'reverse-tcp' ? `tunnel ${f.listening} → host ${spec.host}:${spec.hostPort}` : `host ${f.listening} → tunnel ${spec.host}:${spec.hostPort}`;
      await write(io.stderr, `wireweave: ${kind === 'udp' ? 'UDP' : 'TCP'} forward ${arrow}\n`);
    }
    options.onReady?.({ tunnel, listening });
    await untilStopped(options.signal);
    return 0;
  } catch (err) {
    await write(io.stderr, `wireweave: forward: ${messageOf(err)}\n`);
    return 1;
  } finally {
    for (const f of open) await f.close().catch(() => {});
    await tunnel?.close();
  }
}
