/**
 * `meshNetstack(config)`: the library's rootless tunnel (`netstack()`) with the config's [Mesh]
 * section honoured: its UDP goes through the mesh bind and the mesh node runs beside the device
 * until the tunnel closes. Without [Mesh] it is `netstack()` itself. (The netstack layer cannot
 * import the mesh, which sits above it, so this lives here.)
 */
import type { WgQuickConfig } from '../../device/wgquick.ts';
import { chooseBind } from '../../device/bind-choose.ts';
import { loadConfig, netstack } from '../../netstack/api.ts';
import type { Netstack, NetstackOptions } from '../../netstack/api.ts';
import { MeshBind } from './mesh-bind.ts';
import type { MeshNode, MeshStatus } from './mesh-node.ts';
import { meshDaemonOptions, runMesh } from './daemon.ts';
import { withMeshAddresses } from './discovery-config.ts';
import { nodeCrypto } from '../../crypto/node.ts';

const nodes = new WeakMap<Netstack, MeshNode>();
const quiet = { error: () => {}, verbose: () => {} };

export async function meshNetstack(config: WgQuickConfig | string, options: NetstackOptions = {}): Promise<Netstack> {
  const loaded = loadConfig(config);
  if (!loaded.mesh) return netstack(loaded, options);
  // A discovery member without Address: addresses derived from its key (docs/mesh.md §4).
  const cfg = withMeshAddresses(nodeCrypto, loaded);
  const bind = new MeshBind(options.bind ?? await chooseBind());
  const net = await netstack(cfg, { ...options, bind });
  const mesh = await runMesh({
    device: net.device, bind, options: meshDaemonOptions(cfg.mesh!, cfg.interface.addresses), tunnel: '', logger: options.logger ?? quiet, statusPath: null,
  });
  net.device.onClose(() => void mesh.close());
  // Discovered members' names resolve before DNS: connect({ host: 'bob' }).
  net.setLocalNames((name) => mesh.node.lookupName(name));
  nodes.set(net, mesh.node);
  return net;
}

/** The mesh's status (hub connection, each mesh peer's path), or null for a tunnel without [Mesh]. */
export function meshStatus(net: Netstack): MeshStatus | null {
  return nodes.get(net)?.status() ?? null;
}
