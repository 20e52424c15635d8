/**
 * BindEndpoint values: a remote UDP address with its `wg`-style text and the bytes cookies bind
 * to, optionally with the local address it talks to (sticky source). A small cache makes the
 * object for (address, port, local address) unique, so the device can compare endpoints by
 * identity and reuse them without allocating per packet.
 */
import { isIP } from 'node:net';
import { ConfigError } from '../core/errors.ts';
import { parseIp } from './../core/ip-address.ts';
import type { BindEndpoint } from './bind.ts';

const MAX_CACHED = 65536;

export class EndpointCache {
  private readonly cache = new Map<string, BindEndpoint>();
  /**
   * Bumped whenever the cache is emptied (objects handed out before are no longer canonical),
   * so callers that keep their own index of these objects know to drop it.
   */
  generation = 0;

  /** The canonical endpoint for (address, port, localAddress); no local address when omitted. */
  get(address: string, port: number, localAddress?: string): BindEndpoint {
    const key = localAddress === undefined ? `${address}|${port}` : `${address}|${port}|${localAddress}`;
    let e = this.cache.get(key);
    if (e) return e;
    e = makeEndpoint(address, port, localAddress);
    if (this.cache.size >= MAX_CACHED) { this.cache.clear(); this.generation++; } // bounded: a flood of sources cannot grow it
    this.cache.set(key, e);
    return e;
  }

  /** The same remote without a local address. */
  withoutSource(e: BindEndpoint): BindEndpoint {
    return e.localAddress === undefined ? e : this.get(e.address, e.port);
  }
}

function makeEndpoint(address: string, port: number, localAddress?: string): BindEndpoint {
  // An IPv6 zone may be any interface name (br-lan, wlan0.1) — any bytes at all, as Go's netip
  // takes it; node:net's isIP refuses zones other than [0-9A-Za-z]+, so it judges the address
  // without it. (Refusing here threw out of a UAPI set that its parser had accepted: found by
  // fuzz/targets/uapi-set.ts, first with '@', then with a '\r' that /%.*$/ did not reach.)
  let family = isIP(withoutZone(address));
  if (family === 0) throw new ConfigError('ERR_ADDRESS', `not an IP address: ${address}`);
  // Fold IPv4-mapped IPv6 (::ffff:1.2.3.4) to IPv4, as wireguard-go does.
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) { address = mapped[1]!; family = 4; }
  // Cookies bind to the address bytes; a zone (fe80::1%3) is not part of them.
  const bytes = parseIp(withoutZone(address));
  const tag = new Uint8Array(bytes.length + 2);
  tag.set(bytes);
  tag[bytes.length] = port >> 8;
  tag[bytes.length + 1] = port & 0xff;
  const text = family === 4 ? `${address}:${port}` : `[${address}]:${port}`;
  if (localAddress === undefined) return { address, port, family: family as 4 | 6, tag, text };
  const localMapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(localAddress);
  if (localMapped) localAddress = localMapped[1]!;
  if (isIP(localAddress) !== family) throw new ConfigError('ERR_ADDRESS', `local address ${localAddress} is not of the family of ${address}`);
  return { address, port, family: family as 4 | 6, tag, text, localAddress };
}

/** An IPv6 address without its `%zone` (whatever characters the zone has); others unchanged. */
function withoutZone(address: string): string {
  const pct = address.indexOf('%');
  return pct >= 0 && address.includes(':') ? address.slice(0, pct) : address;
}
