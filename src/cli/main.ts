/**
 * The `wireweave` command line: dispatches a subcommand and returns its exit code. All I/O goes
 * through `io`, so tests and embedders can run it in-process; `bin/wireweave` wires it to the
 * real process. Subcommand modules are imported lazily to keep startup short.
 */
import { readFileSync } from 'node:fs';
import { WireweaveError } from '../core/errors.ts';
import { isInterfaceName } from '../device/ifname.ts';
import { interfaceArgument, refuseAsInterfaceName } from './commands.ts';
import type { Writable } from 'node:stream';

export interface CliIo {
  stdin: NodeJS.ReadableStream;
  stdout: Writable;
  stderr: Writable;
}

const USAGE = `Usage: wireweave <command> [<args>]
       wireweave [-f|--foreground] [--metrics [HOST:]PORT] [--user NAME] [--] INTERFACE-NAME

A userspace WireGuard for Node.js.

With an interface name, creates that TUN interface and serves the UAPI socket
/var/run/wireguard/INTERFACE-NAME.sock for wg and wg-quick, like wireguard-go
(needs root; -f stays in the foreground, as does WG_PROCESS_FOREGROUND=1).
--metrics serves Prometheus metrics at http://HOST:PORT/metrics (HOST defaults
to 127.0.0.1; or WIREWEAVE_METRICS); --user switches to user NAME once the
interface and its sockets are open (or WIREWEAVE_USER). wg's own commands
(showconf, set, setconf, ...) and near-misses of the commands below are
refused as interface names; put -- before a name to take it as one anyway.

Commands:
  genkey   Generate a new private key and write it to stdout
  pubkey   Read a private key from stdin and write its public key to stdout
  genpsk   Generate a new preshared key and write it to stdout
  demo     Run the demo
  up       Bring up an interface from a wg-quick config file (like wg-quick up)
  down     Take it down again (like wg-quick down)
  show     Show interfaces as wg show does
  proxy    Rootless tunnel from a wg-quick config: SOCKS5/HTTP proxies and forwards
  forward  Rootless tunnel from a wg-quick config, forwarding ports (ssh -L/-R style)
  hub      Run a mesh hub: signaling and relay for peers found by public key
  help     Show this help

Options:
  -h, --help      Show this help
  -V, --version   Print the version

Pass --help to a command for its usage. Example:
  umask 077; wireweave genkey | tee private.key | wireweave pubkey > public.key
`;

function write(stream: Writable, text: string): Promise<void> {
  return new Promise((resolve) => {
    stream.write(text, () => resolve());
  });
}

/** The version in the package.json next to src/. */
function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  if (typeof pkg.version !== 'string') throw new WireweaveError('ERR_PACKAGE', 'package.json has no version');
  return pkg.version;
}

/** Quote a command name in an error only when it cannot be key material or other junk. */
function nameForMessage(arg: string): string {
  return /^-{0,2}[A-Za-z][A-Za-z0-9-]{0,31}$/.test(arg) ? ` '${arg}'` : '';
}

async function runDemoCommand(args: string[], io: CliIo): Promise<number> {
  const { runDemo } = await import('./demo.ts');
  const code = await runDemo(args, io);
  return typeof code === 'number' ? code : 0;
}


/** Options of `wireweave IFNAME` that may come first. */
const DAEMON_FLAG = /^(?:-f|--foreground|--metrics(?:=.*)?|--user(?:=.*)?)$/;

export async function main(argv: string[], io: CliIo): Promise<number> {
  const [command, ...args] = argv;
  switch (command) {
    case undefined:
      await write(io.stderr, USAGE);
      return 1;
    case 'help':
    case '--help':
    case '-h':
      await write(io.stdout, USAGE);
      return 0;
    case 'version':
    case '--version':
    case '-V':
      await write(io.stdout, packageVersion() + '\n');
      return 0;
    case 'genkey':
      return (await import('./keys.ts')).genkey(args, io);
    case 'genpsk':
      return (await import('./keys.ts')).genpsk(args, io);
    case 'pubkey':
      return (await import('./keys.ts')).pubkey(args, io);
    case 'demo':
      return runDemoCommand(args, io);
    case 'up':
    case 'down':
      return (await import('./quick.ts')).quick(command, args, io);
    case 'show':
      return (await import('./show.ts')).show(args, io);
    case 'proxy':
      return (await import('./proxy.ts')).proxy(args, io);
    case 'forward':
      return (await import('./forward.ts')).forward(args, io);
    case 'hub':
      return (await import('./hub.ts')).hub(args, io);
    default: {
      // `wireweave [FLAGS] -- NAME` takes NAME as an interface name whatever it looks like.
      const forced = argv.includes('--');
      const name = forced ? undefined : interfaceArgument(argv, DAEMON_FLAG);
      const refusal = name === undefined || name.startsWith('-') ? null : refuseAsInterfaceName(name);
      if (refusal) {
        await write(io.stderr, `wireweave: ${refusal}\n`);
        return 1;
      }
      if (forced || DAEMON_FLAG.test(command) || (isInterfaceName(command) && !command.startsWith('-'))) {
        const { runInterfaceCommand } = await import('../device/daemon.ts');
        // `up` of a file with [Mesh] hands the daemon its mesh options in the environment.
        const meshEnv = process.env.WIREWEAVE_MESH;
        if (!meshEnv) return runInterfaceCommand(argv, io);
        const mesh = await import('../mesh/peer/daemon.ts');
        let ext;
        try {
          ext = mesh.meshDaemonExtension(mesh.parseMeshEnv(meshEnv));
        } catch (err) {
          await write(io.stderr, `wireweave: ${(err as Error).message}\n`);
          return 1;
        }
        return runInterfaceCommand(argv, io, process.env, ext);
      }
      await write(
        io.stderr,
        `wireweave: unknown command${nameForMessage(command)}; run 'wireweave --help' for the list of commands\n`,
      );
      return 1;
    }
  }
}
