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
import { runMesh } from './daemon.ts';

const nodes = new WeakMap<Netstack, MeshNode>();
const quiet = { error: () => {}, verbose: () => {} };

export async function meshNetstack(config: WgQuickConfig | string, options: NetstackOptions = {}): Promise<Netstack> {
  const cfg = loadConfig(config);
  if (!cfg.mesh) return netstack(cfg, options);
  const bind = new MeshBind(options.bind ?? await chooseBind());
  const net = await netstack(cfg, { ...options, bind });
  const mesh = await runMesh({ device: net.device, bind, options: cfg.mesh, tunnel: '', logger: options.logger ?? quiet, statusPath: null });
  net.device.onClose(() => void mesh.close());
  nodes.set(net, mesh.node);
  return net;
}

/** The mesh's status (hub connection, each mesh peer's path), or null for a tunnel without [Mesh]. */
export function meshStatus(net: Netstack): MeshStatus | null {
  return nodes.get(net)?.status() ?? null;
}
