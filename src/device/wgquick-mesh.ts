/**
 * The `[Mesh]` section of a wireweave configuration file (docs/mesh.md): which hubs to reach
 * peers through and when to relay. Parsed here, generically, into plain options; the device
 * knows nothing of the mesh, which reads these options (layering: mesh imports device).
 *
 *   [Mesh]
 *   Hub = ws://hub1.example:8443, ws://hub2.example:8443    # tried in order
 *   Relay = auto                                           # auto | always | never
 *   Network = lab                                          # discovery (docs/mesh.md §4)
 *   NetworkSecret = …                                      # shared by the members; never logged
 *   Name = bob                                             # default: the host name
 *   Prefix4 = 100.96.0.0/16                                # derived addresses (no Address)
 *   Prefix6 = fd12:3456:789a::/64                          # default: from the network id
 *
 * wg and wg-quick reject the section: a file with one is for wireweave only.
 */
import { formatPrefix, parsePrefix } from './allowedips.ts';

/** `Relay =` of [Mesh]: through the hub while no direct path works (auto), always, or never. */
export type MeshRelayPolicy = 'auto' | 'always' | 'never';

export interface WgQuickMesh {
  /** WebSocket URLs, in the order they are tried; a bare `ws://host:port` gets the path /mesh. */
  hubs: string[];
  relay: MeshRelayPolicy;
  /** Discovery: the network's name and secret (both or neither). */
  network?: string;
  networkSecret?: string;
  /** This member's name in the network (a DNS label); default the host name. */
  name?: string;
  /** The network's ranges (canonical text): derived addresses and what members may claim. */
  prefix4?: string;
  prefix6?: string;
  /** Line of the `[Mesh]` header, when parsed from a file. */
  line?: number;
}

/** At most this many hubs: a failover list, not a directory. */
const MAX_MESH_HUBS = 8;
const MESH_KEYS = new Map([
  ['hub', 'Hub'], ['relay', 'Relay'], ['network', 'Network'], ['networksecret', 'NetworkSecret'], ['name', 'Name'], ['prefix4', 'Prefix4'], ['prefix6', 'Prefix6'],
] as const);
export type MeshKey = 'Hub' | 'Relay' | 'Network' | 'NetworkSecret' | 'Name' | 'Prefix4' | 'Prefix6';
export const MESH_KEY_NAMES = 'Hub, Relay, Network, NetworkSecret, Name, Prefix4 or Prefix6';
/** A secret shorter than this is refused: the hub sees a hash of it and could test guesses. */
export const MIN_NETWORK_SECRET = 16;
export const MAX_NETWORK_SECRET = 1024;

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

/** A network or member name: a DNS label (letters, digits, '-'), at most 63 characters. */
function isLabel(s: string): boolean {
  return /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i.test(s);
}

/** `Prefix4`/`Prefix6` checked and canonical (host bits zeroed), or the problem in words. */
export function parseMeshPrefix(key: 'Prefix4' | 'Prefix6', value: string): string | { problem: string } {
  const m = /^([0-9A-Fa-f:.]+)\/(\d{1,3})$/.exec(value);
  let prefix;
  try { prefix = m ? parsePrefix(value) : null; } catch { prefix = null; }
  const v4 = key === 'Prefix4';
  if (!prefix || (prefix.family === 4) !== v4) return { problem: `${key} must be an ${v4 ? 'IPv4' : 'IPv6'} prefix such as ${v4 ? '100.96.0.0/16' : 'fd12:3456:789a::/64'}` };
  const [lo, hi] = v4 ? [8, 24] : [48, 112];
  if (prefix.bits < lo || prefix.bits > hi) return { problem: `${key} must be a /${lo} to /${hi} (room for one address per member)` };
  return formatPrefix(prefix);
}

/** Applies one `Key = Value` of [Mesh] to `mesh`; the problem in words, or null (never the secret). */
export function applyMeshKey(mesh: WgQuickMesh, key: MeshKey, value: string): string | null {
  if (key === 'Network') {
    if (!isLabel(value)) return 'Network must be a name of letters, digits and \'-\', at most 63 characters';
    mesh.network = value;
    return null;
  }
  if (key === 'NetworkSecret') {
    const n = new TextEncoder().encode(value).length;
    if (n < MIN_NETWORK_SECRET) return `NetworkSecret is too short (${n} bytes; at least ${MIN_NETWORK_SECRET}: use 'wireweave genkey')`;
    if (n > MAX_NETWORK_SECRET) return `NetworkSecret is longer than ${MAX_NETWORK_SECRET} bytes`;
    mesh.networkSecret = value;
    return null;
  }
  if (key === 'Name') {
    if (!isLabel(value)) return 'Name must be a DNS label: letters, digits and \'-\', at most 63 characters';
    mesh.name = value;
    return null;
  }
  if (key === 'Prefix4' || key === 'Prefix6') {
    const p = parseMeshPrefix(key, value);
    if (typeof p !== 'string') return p.problem;
    if (key === 'Prefix4') mesh.prefix4 = p; else mesh.prefix6 = p;
    return null;
  }
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

/** The whole section's problem once every key is read (Network and NetworkSecret go together), or null. */
export function checkMeshSection(mesh: WgQuickMesh): string | null {
  if (mesh.hubs.length === 0) return '[Mesh] section has no Hub';
  if (mesh.network !== undefined && mesh.networkSecret === undefined) return '[Mesh] has Network but no NetworkSecret';
  if (mesh.networkSecret !== undefined && mesh.network === undefined) return '[Mesh] has NetworkSecret but no Network';
  if (mesh.network === undefined && (mesh.name ?? mesh.prefix4 ?? mesh.prefix6) !== undefined) return '[Mesh] Name, Prefix4 and Prefix6 need Network and NetworkSecret';
  return null;
}

/** The [Mesh] lines for `formatWgQuickConfig` (reads back to equal options). */
export function formatMeshSection(mesh: WgQuickMesh): string[] {
  const out = ['[Mesh]', ...mesh.hubs.map((h) => `Hub = ${h}`), `Relay = ${mesh.relay}`];
  if (mesh.network !== undefined) out.push(`Network = ${mesh.network}`);
  if (mesh.networkSecret !== undefined) out.push(`NetworkSecret = ${mesh.networkSecret}`);
  if (mesh.name !== undefined) out.push(`Name = ${mesh.name}`);
  if (mesh.prefix4 !== undefined) out.push(`Prefix4 = ${mesh.prefix4}`);
  if (mesh.prefix6 !== undefined) out.push(`Prefix6 = ${mesh.prefix6}`);
  return out;
}
