/**
 * The mesh in the interface process (`wireweave up` with a [Mesh] section): the options come in
 * the environment as WIREWEAVE_MESH (hub URLs, the relay policy and, for discovery, the network,
 * its secret and the interface's addresses; the private key reaches the daemon over the UAPI as
 * always). The environment of a root daemon is readable by root only, as its config file is.
 * The UDP bind is wrapped by the mesh bind, and the mesh node runs beside the device with its
 * status socket for `wireweave show`.
 */
import os from 'node:os';
import { systemRng } from '../../core/rng.ts';
import { nodeCrypto } from '../../crypto/node.ts';
import type { DaemonExtension } from '../../device/daemon.ts';
import { DEFAULT_SOCKET_DIR } from '../../device/uapi-server.ts';
import { parseIp } from '../../core/ip-address.ts';
import type { Prefix } from '../../device/config.ts';
import { MAX_NETWORK_SECRET, MIN_NETWORK_SECRET, parseHubUrl, parseMeshPrefix } from '../../device/wgquick-mesh.ts';
import type { MeshRelayPolicy, WgQuickMesh } from '../../device/wgquick-mesh.ts';
import { nodeTimers, nodeWebSocket } from '../client/node.ts';
import { MeshBind } from './mesh-bind.ts';
import { MeshNode } from './mesh-node.ts';
import type { MeshDevice, MeshLog } from './mesh-node.ts';
import { meshStatusPath, startStatusSocket } from './status-socket.ts';
import type { StatusSocket } from './status-socket.ts';
import { WireweaveError } from '../../core/errors.ts';
import { nameFromHostname } from '../protocol/discovery.ts';
import { networkKeys } from '../protocol/keys.ts';
import { discoveryOptions } from './discovery-config.ts';
import type { MeshDiscoveryOptions } from './discovery-config.ts';
import type { MeshDiscovery } from './mesh-node.ts';

export const MESH_ENV = 'WIREWEAVE_MESH';

export interface MeshDaemonOptions {
  hubs: string[];
  relay: MeshRelayPolicy;
  discovery?: MeshDiscoveryOptions;
}

/** The options the mesh runs with, from the config's [Mesh] and the interface's addresses. */
export function meshDaemonOptions(mesh: WgQuickMesh, addresses: readonly Prefix[] = []): MeshDaemonOptions {
  const discovery = discoveryOptions(nodeCrypto, mesh, addresses);
  return discovery ? { hubs: mesh.hubs, relay: mesh.relay, discovery } : { hubs: mesh.hubs, relay: mesh.relay };
}

/** The environment value `up` hands the daemon. */
export function meshEnvValue(mesh: WgQuickMesh, addresses: readonly Prefix[] = []): string {
  return JSON.stringify(meshDaemonOptions(mesh, addresses));
}

/** An interface address as `ip/bits` with its host bits kept, or null. */
function parseAddress(text: unknown): Prefix | null {
  if (typeof text !== 'string') return null;
  const m = /^([0-9A-Fa-f:.]+)\/(\d{1,3})$/.exec(text);
  if (!m) return null;
  let bytes: Uint8Array;
  try { bytes = parseIp(m[1]!); } catch { return null; }
  const bits = Number(m[2]);
  return bits <= bytes.length * 8 ? { family: bytes.length === 4 ? 4 : 6, bytes, bits } : null;
}

function parseDiscovery(v: unknown, bad: (why: string) => Error): MeshDiscoveryOptions {
  const d = v as Partial<Record<keyof MeshDiscoveryOptions, unknown>> | null;
  if (typeof d !== 'object' || d === null) throw bad('discovery must be an object');
  if (typeof d.network !== 'string' || !/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i.test(d.network)) throw bad('discovery.network must be a name');
  const n = typeof d.secret === 'string' ? new TextEncoder().encode(d.secret).length : 0;
  // Never the secret itself in the message.
  if (n < MIN_NETWORK_SECRET || n > MAX_NETWORK_SECRET) throw bad(`discovery.secret must be ${MIN_NETWORK_SECRET} to ${MAX_NETWORK_SECRET} bytes`);
  if (typeof d.name !== 'string' || (d.name !== '' && !/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i.test(d.name))) throw bad('discovery.name must be a DNS label or empty');
  const p4 = typeof d.prefix4 === 'string' ? parseMeshPrefix('Prefix4', d.prefix4) : { problem: 'discovery.prefix4 is missing' };
  const p6 = typeof d.prefix6 === 'string' ? parseMeshPrefix('Prefix6', d.prefix6) : { problem: 'discovery.prefix6 is missing' };
  if (typeof p4 !== 'string') throw bad(p4.problem);
  if (typeof p6 !== 'string') throw bad(p6.problem);
  if (!Array.isArray(d.addresses) || d.addresses.length > 16 || d.addresses.some((a) => !parseAddress(a))) throw bad('discovery.addresses must be up to 16 ADDRESS/BITS');
  return { network: d.network, secret: d.secret as string, name: d.name, prefix4: p4, prefix6: p6, addresses: d.addresses as string[] };
}

/** What the mesh node runs discovery with (keys derived here; the secret goes no further). */
export function meshDiscovery(d: MeshDiscoveryOptions, hostname = os.hostname()): MeshDiscovery {
  const keys = networkKeys(nodeCrypto, d.network, new TextEncoder().encode(d.secret));
  const prefix = (t: string) => parseAddress(t)!;
  return {
    network: d.network, networkId: keys.networkId, announceKey: keys.announceKey,
    name: d.name || nameFromHostname(hostname), prefix4: prefix(d.prefix4), prefix6: prefix(d.prefix6),
    addresses: d.addresses.map(prefix),
  };
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
  const d = (v as { discovery?: unknown }).discovery;
  return d === undefined ? { hubs, relay: o.relay } : { hubs, relay: o.relay, discovery: parseDiscovery(d, bad) };
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
    ...(o.options.discovery ? { discovery: meshDiscovery(o.options.discovery) } : {}),
  });
  node.start();
  o.logger.verbose(`mesh: hubs ${o.options.hubs.join(', ')}, relay ${o.options.relay}${o.options.discovery ? `, network ${o.options.discovery.network}` : ''}`);
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
