/**
 * From a config's [Mesh] Network/NetworkSecret to what the mesh node runs discovery with, and
 * the interface's addresses when the config has no `Address` (derived from the public key,
 * docs/mesh.md §4). Shared by `up` (which assigns them to the TUN and hands them to the daemon),
 * `proxy`/`forward` and `meshNetstack()` (which give them to the userspace stack).
 */
import type { CryptoProvider } from '../../core/crypto.ts';
import { formatPrefix, parsePrefix } from '../../device/allowedips.ts';
import { formatIp } from '../../core/ip-address.ts';
import type { Prefix } from '../../device/config.ts';
import type { WgQuickConfig, WgQuickMesh } from '../../device/wgquick.ts';
import { DEFAULT_PREFIX4, defaultPrefix6, derivedAddresses } from '../protocol/discovery.ts';
import { networkKeys } from '../protocol/keys.ts';

/** What the daemon needs for discovery; `secret` is the only secret and is never logged. */
export interface MeshDiscoveryOptions {
  network: string;
  secret: string;
  /** This member's name ('' = the host name, looked up where the node runs). */
  name: string;
  prefix4: string;
  prefix6: string;
  /** The interface's addresses (CIDR text), configured or derived: what this member announces. */
  addresses: string[];
}

/** The network's ranges, with Prefix6's default from the network id. */
function networkRanges(crypto: CryptoProvider, mesh: WgQuickMesh): { prefix4: string; prefix6: string } {
  const prefix4 = mesh.prefix4 ?? DEFAULT_PREFIX4;
  if (mesh.prefix6) return { prefix4, prefix6: mesh.prefix6 };
  const id = networkKeys(crypto, mesh.network!, new TextEncoder().encode(mesh.networkSecret!)).networkId;
  return { prefix4, prefix6: formatPrefix(defaultPrefix6(id)) };
}

/**
 * The interface's addresses: the config's own, or — for a discovery member without `Address` —
 * one IPv4 and one IPv6 address derived from the public key, with the network's prefix lengths
 * (so the interface routes the whole network). Empty when neither applies.
 */
export function meshAddresses(crypto: CryptoProvider, cfg: WgQuickConfig): Prefix[] {
  if (cfg.interface.addresses.length > 0 || !cfg.mesh?.network || !cfg.interface.privateKey) return cfg.interface.addresses;
  const r = networkRanges(crypto, cfg.mesh);
  const publicKey = crypto.x25519PrivateKey(cfg.interface.privateKey).publicKey;
  return derivedAddresses(crypto, publicKey, parsePrefix(r.prefix4), parsePrefix(r.prefix6));
}

/** `cfg` with its addresses filled in as `meshAddresses` says (the same object when nothing changes). */
export function withMeshAddresses(crypto: CryptoProvider, cfg: WgQuickConfig): WgQuickConfig {
  const addresses = meshAddresses(crypto, cfg);
  if (addresses === cfg.interface.addresses) return cfg;
  return { ...cfg, interface: { ...cfg.interface, addresses } };
}

/** Discovery options for a [Mesh] with Network, or undefined. */
export function discoveryOptions(crypto: CryptoProvider, mesh: WgQuickMesh, addresses: readonly Prefix[]): MeshDiscoveryOptions | undefined {
  if (!mesh.network || mesh.networkSecret === undefined) return undefined;
  const r = networkRanges(crypto, mesh);
  return {
    network: mesh.network, secret: mesh.networkSecret, name: mesh.name ?? '', prefix4: r.prefix4, prefix6: r.prefix6,
    addresses: addresses.map((a) => `${formatIp(a.bytes)}/${a.bits}`),
  };
}

