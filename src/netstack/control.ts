/**
 * The control socket of a rootless tunnel: the device's UAPI (wireguard-go's protocol, get and
 * set) on a unix socket, so `wireweave show NAME` reads a `proxy`/`forward`/`netstack()` tunnel
 * as it reads a TUN interface. As root, and when nothing else has the name, the socket goes to
 * /var/run/wireguard, where `wg show` finds it too; otherwise to the per-user runtime directory
 * (`$XDG_RUNTIME_DIR/wireweave`, kept 0700), since /var/run/wireguard is root's.
 */
import { lstat, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Device } from '../device/device.ts';
import { isInterfaceName } from '../device/ifname.ts';
import { DEFAULT_SOCKET_DIR, startUapiServer } from '../device/uapi-server.ts';
import type { UapiServer } from '../device/uapi-server.ts';
import { netError } from './errors.ts';

/**
 * Where a user's rootless tunnels keep their sockets and locks: `$XDG_RUNTIME_DIR/wireweave`,
 * else /run/wireweave for root, else `<tmpdir>/wireweave-UID`. Pass the environment in (only the
 * CLI reads it).
 */
export function runtimeDir(env: { XDG_RUNTIME_DIR?: string }, uid: number): string {
  if (env.XDG_RUNTIME_DIR && env.XDG_RUNTIME_DIR.startsWith('/')) return join(env.XDG_RUNTIME_DIR, 'wireweave');
  return uid === 0 ? '/run/wireweave' : join(tmpdir(), `wireweave-${uid}`);
}

/**
 * Creates `dir` 0700 if missing and checks that it is a directory of ours that nobody else can
 * write: in a shared /tmp another user could have made it first to catch our sockets.
 */
export async function ensurePrivateDir(dir: string, uid: number): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await lstat(dir);
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o022) !== 0) {
    throw netError('EPERM', `${dir} is not a private directory of user ${uid} (owner ${st.uid}, mode ${(st.mode & 0o777).toString(8)}); remove it or set XDG_RUNTIME_DIR`);
  }
}

/** A tunnel name for a config file, as wg-quick names the interface: `wg0.conf` → `wg0`. */
export function nameForConfig(file: string): string | undefined {
  const base = file.split('/').pop() ?? '';
  const name = base.endsWith('.conf') ? base.slice(0, -5) : base;
  return isInterfaceName(name) ? name : undefined;
}

export interface ControlSocketOptions {
  /** The per-user directory (runtimeDir()). */
  dir: string;
  /** Try /var/run/wireguard first (as root), so that `wg show` sees the tunnel. */
  system?: boolean;
  /** Directory for `system` (default /var/run/wireguard). */
  systemDir?: string;
  uid: number;
  log?: (line: string) => void;
}

/**
 * Serves the device's UAPI on `<dir>/<name>.sock`. Rejects when the name is not an interface
 * name or a live process already answers on that socket in the per-user directory.
 */
export async function startControlSocket(device: Device, name: string, options: ControlSocketOptions): Promise<UapiServer> {
  if (!isInterfaceName(name)) throw netError('EINVAL', `${JSON.stringify(name.slice(0, 40))} is not a usable tunnel name (1-15 of A-Z a-z 0-9 _ = + . -)`);
  const log = options.log;
  if (options.system) {
    try {
      return await startUapiServer(name, device, { dir: options.systemDir ?? DEFAULT_SOCKET_DIR, log });
    } catch {
      // Taken (an interface of that name runs) or not writable: the per-user directory will do.
    }
  }
  await ensurePrivateDir(options.dir, options.uid);
  try {
    return await startUapiServer(name, device, { dir: options.dir, log });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw netError('EADDRINUSE', `another tunnel named ${name} is running (${join(options.dir, `${name}.sock`)}); choose another --name`);
    throw err;
  }
}
