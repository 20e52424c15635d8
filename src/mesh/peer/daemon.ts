/**
 * The mesh in the interface process (`wireweave up` with a [Mesh] section): the options come in
 * the environment as WIREWEAVE_MESH (hub URLs and the relay policy; no secret: the private key
 * reaches the daemon over the UAPI as always), the UDP bind is wrapped by the mesh bind, and the
 * mesh node runs beside the device with its status socket for `wireweave show`.
 */
import os from 'node:os';
import { systemRng } from '../../core/rng.ts';
import { nodeCrypto } from '../../crypto/node.ts';
import type { DaemonExtension } from '../../device/daemon.ts';
import { DEFAULT_SOCKET_DIR } from '../../device/uapi-server.ts';
import { parseHubUrl } from '../../device/wgquick-mesh.ts';
import type { MeshRelayPolicy, WgQuickMesh } from '../../device/wgquick-mesh.ts';
import { nodeTimers, nodeWebSocket } from '../client/node.ts';
import { MeshBind } from './mesh-bind.ts';
import { MeshNode } from './mesh-node.ts';
import type { MeshDevice, MeshLog } from './mesh-node.ts';
import { meshStatusPath, startStatusSocket } from './status-socket.ts';
import type { StatusSocket } from './status-socket.ts';
import { WireweaveError } from '../../core/errors.ts';

export const MESH_ENV = 'WIREWEAVE_MESH';

export interface MeshDaemonOptions {
  hubs: string[];
  relay: MeshRelayPolicy;
}

/** The environment value `up` hands the daemon. */
export function meshEnvValue(mesh: WgQuickMesh): string {
  return JSON.stringify({ hubs: mesh.hubs, relay: mesh.relay });
}

export function parseMeshEnv(text: string): MeshDaemonOptions {
  const bad = (why: string) => new WireweaveError('ERR_MESH_OPTIONS', `${MESH_ENV}: ${why}`);
  let v: unknown;
  try { v = JSON.parse(text); } catch { throw bad('not JSON'); }
  const o = v as { hubs?: unknown; relay?: unknown };
  if (!Array.isArray(o.hubs) || o.hubs.length === 0 || o.hubs.length > 8) throw bad('hubs must be a list of 1 to 8 URLs');
  const hubs = o.hubs.map((h) => {
    const url = typeof h === 'string' ? parseHubUrl(h) : { problem: 'is not a string' };
    if (typeof url !== 'string') throw bad(`a hub URL ${url.problem}`);
    return url;
  });
  if (o.relay !== 'auto' && o.relay !== 'always' && o.relay !== 'never') throw bad('relay must be auto, always or never');
  return { hubs, relay: o.relay };
}

/** The host's addresses a peer might reach us on: not loopback, not the tunnel itself. */
export function hostAddresses(tunnel: string): string[] {
  const out: string[] = [];
  for (const [name, list] of Object.entries(os.networkInterfaces())) {
    if (name === tunnel || !list) continue;
    for (const a of list) if (!a.internal && !a.address.toLowerCase().startsWith('fe80:')) out.push(a.address);
  }
  return out.slice(0, 12);
}

export interface RunMeshOptions {
  device: MeshDevice;
  bind: MeshBind;
  options: MeshDaemonOptions;
  /** The TUN interface (its addresses are no candidates); '' for a rootless tunnel. */
  tunnel: string;
  logger: MeshLog;
  /** Where `show` finds the status (null: no status socket). */
  statusPath: string | null;
}

/** Runs the mesh beside a device whose bind is `bind`: the TUN daemon and the rootless tunnels alike. */
export async function runMesh(o: RunMeshOptions): Promise<{ node: MeshNode; close(): Promise<void> }> {
  const node = new MeshNode({
    device: o.device,
    bind: o.bind,
    hubs: o.options.hubs,
    relay: o.options.relay,
    crypto: nodeCrypto,
    rng: systemRng,
    connect: nodeWebSocket,
    timers: nodeTimers,
    now: () => performance.now(),
    wallNow: () => Date.now(),
    hostAddresses: () => hostAddresses(o.tunnel),
    log: o.logger,
  });
  node.start();
  o.logger.verbose(`mesh: hubs ${o.options.hubs.join(', ')}, relay ${o.options.relay}`);
  let status: StatusSocket | null = null;
  try {
    if (o.statusPath) status = await startStatusSocket(o.statusPath, () => node.status());
  } catch (err) {
    node.stop();
    throw err;
  }
  return {
    node,
    close: async () => {
      node.stop();
      await status?.close();
    },
  };
}

export function meshDaemonExtension(options: MeshDaemonOptions, socketDir = DEFAULT_SOCKET_DIR): DaemonExtension {
  let bind: MeshBind | null = null;
  return {
    wrapBind(inner) {
      bind = new MeshBind(inner);
      return bind;
    },
    async attach(device, ifname, logger) {
      if (!bind) throw new WireweaveError('ERR_MESH_NO_BIND', 'the mesh bind was not installed (wrapBind was not called)');
      return runMesh({ device, bind, options, tunnel: ifname, logger, statusPath: meshStatusPath(ifname, socketDir) });
    },
  };
}
