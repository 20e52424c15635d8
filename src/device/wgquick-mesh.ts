/**
 * The `[Mesh]` section of a wireweave configuration file (docs/mesh.md): which hubs to reach
 * peers through and when to relay. Parsed here, generically, into plain options; the device
 * knows nothing of the mesh, which reads these options (layering: mesh imports device).
 *
 *   [Mesh]
 *   Hub = ws://hub1.example:8443, ws://hub2.example:8443    # tried in order
 *   Relay = auto                                           # auto | always | never
 *
 * wg and wg-quick reject the section: a file with one is for wireweave only.
 */

export type MeshRelayPolicy = 'auto' | 'always' | 'never';

export interface WgQuickMesh {
  /** WebSocket URLs, in the order they are tried; a bare `ws://host:port` gets the path /mesh. */
  hubs: string[];
  relay: MeshRelayPolicy;
  /** Line of the `[Mesh]` header, when parsed from a file. */
  line?: number;
}

/** At most this many hubs: a failover list, not a directory. */
export const MAX_MESH_HUBS = 8;
const MESH_KEYS = new Map([['hub', 'Hub'], ['relay', 'Relay']] as const);
export type MeshKey = 'Hub' | 'Relay';

/** The canonical spelling of a [Mesh] key, or undefined when it is not one. */
export function meshKey(name: string): MeshKey | undefined {
  return MESH_KEYS.get(name.toLowerCase() as 'hub');
}

/** One hub URL checked and normalised, or the problem in words (never echoing credentials). */
export function parseHubUrl(text: string): string | { problem: string } {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return { problem: 'is not a URL (expected ws://HOST:PORT or wss://HOST:PORT)' };
  }
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') return { problem: `has the scheme ${url.protocol.slice(0, 10)} (expected ws:// or wss://)` };
  if (url.hostname === '') return { problem: 'has no host' };
  // Credentials would be printed by `show` and logged; a hub admits by key or network token.
  if (url.username !== '' || url.password !== '') return { problem: 'has a user name or password, which hubs do not use' };
  if (url.search !== '' || url.hash !== '') return { problem: 'has a query or fragment' };
  if (url.pathname === '/' || url.pathname === '') url.pathname = '/mesh';
  return url.href;
}

/** Applies one `Key = Value` of [Mesh] to `mesh`; the problem in words, or null. */
export function applyMeshKey(mesh: WgQuickMesh, key: MeshKey, value: string): string | null {
  if (key === 'Relay') {
    if (value !== 'auto' && value !== 'always' && value !== 'never') return 'Relay must be auto, always or never';
    mesh.relay = value;
    return null;
  }
  for (const item of value.split(/[\t\n\v\f\r ,]+/)) {
    if (item === '') continue;
    const url = parseHubUrl(item);
    if (typeof url !== 'string') return `Hub URL ${url.problem}`;
    if (mesh.hubs.includes(url)) return `Hub ${url} is listed twice`;
    if (mesh.hubs.length >= MAX_MESH_HUBS) return `more than ${MAX_MESH_HUBS} Hub URLs`;
    mesh.hubs.push(url);
  }
  return null;
}

/** The [Mesh] lines for `formatWgQuickConfig` (reads back to equal options). */
export function formatMeshSection(mesh: WgQuickMesh): string[] {
  return ['[Mesh]', ...mesh.hubs.map((h) => `Hub = ${h}`), `Relay = ${mesh.relay}`];
}
