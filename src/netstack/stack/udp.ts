/**
 * UDP (RFC 768; RFC 8200 §8.1 for IPv6): sockets bound to a port on one of our addresses or on
 * all of them, ephemeral ports, checksums checked on the way in and always sent.
 */
import { ConfigError } from '../../core/errors.ts';
import { randomUint32 } from '../../core/rng.ts';
import { fold, pseudoHeaderSum, sum16 } from '../../core/checksum.ts';
import { PROTO_UDP } from './ip.ts';
import type { Family, IpInput, StackHost } from './ip.ts';
import type { Icmp } from './icmp.ts';
import type { Endpoint4or6, UdpSocket } from './types.ts';
import { parseIp, formatIp } from '../../core/ip-address.ts';

const UDP_HEADER = 8;
/** Largest payload one IP datagram can carry (65535 − IP header − UDP header). */
const MAX_PAYLOAD = { 4: 65535 - 20 - 8, 6: 65535 - 8 } as const;

class UdpSocketImpl implements UdpSocket {
  readonly local: Endpoint4or6;
  onMessage?: (data: Uint8Array, from: Endpoint4or6) => void;
  closed = false;
  readonly key: string;
  private readonly layer: Udp;

  readonly specific: boolean;

  constructor(layer: Udp, local: Endpoint4or6, key: string, specific: boolean) {
    this.layer = layer;
    this.local = local;
    this.key = key;
    this.specific = specific;
  }

  send(data: Uint8Array, to: Endpoint4or6, _now: number): boolean {
    if (this.closed) return false;
    return this.layer.send(this, data, to);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.layer.unbind(this);
  }
}

export class Udp {
  private readonly host: StackHost;
  private readonly icmp: Icmp;
  /** `address|port`, with `*` for all our addresses. */
  private readonly sockets = new Map<string, UdpSocketImpl>();
  private readonly ports = new Map<number, number>();

  constructor(host: StackHost, icmp: Icmp) {
    this.host = host;
    this.icmp = icmp;
  }

  bind(port = 0, address?: string): UdpSocket {
    let addr = '*';
    if (address !== undefined) {
      let bytes: Uint8Array;
      try { bytes = parseIp(address); } catch { throw new ConfigError('ERR_ADDRESS', `not an IP address: ${address}`); }
      addr = formatIp(bytes);
      if (!this.host.isLocal(addr)) throw new ConfigError('ERR_ADDRESS', `${address} is not one of the stack's addresses`);
    }
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError('ERR_PORT', `bad port ${port}`);
    if (port === 0) port = this.ephemeral();
    if (this.taken(addr, port)) throw new ConfigError('ERR_ADDRESS_IN_USE', `UDP port ${port} is taken`);
    const key = `${addr}|${port}`;
    // A socket on all our addresses reports the unspecified address, as a dual-stack Node socket does.
    const s = new UdpSocketImpl(this, { address: addr === '*' ? '::' : addr, port }, key, addr !== '*');
    this.sockets.set(key, s);
    this.ports.set(port, (this.ports.get(port) ?? 0) + 1);
    return s;
  }

  unbind(s: UdpSocketImpl): void {
    if (this.sockets.get(s.key) !== s) return;
    this.sockets.delete(s.key);
    const n = (this.ports.get(s.local.port) ?? 1) - 1;
    if (n === 0) this.ports.delete(s.local.port); else this.ports.set(s.local.port, n);
  }

  input(ip: IpInput, now: number): void {
    const c = this.host.counters;
    c.udpReceived++;
    const d = ip.payload;
    if (d.length < UDP_HEADER) { c.udpMalformed++; return; }
    const length = (d[4]! << 8) | d[5]!;
    if (length < UDP_HEADER || length > d.length) { c.udpMalformed++; return; }
    const checksum = (d[6]! << 8) | d[7]!;
    // IPv4 may omit the checksum (zero); IPv6 may not (RFC 8200 §8.1).
    if (checksum !== 0 || ip.family === 6) {
      const acc = sum16(d, 0, length, pseudoHeaderSum(ip.src, ip.dst, PROTO_UDP, length));
      if (checksum === 0 || fold(acc) !== 0xffff) { c.udpBadChecksum++; return; }
    }
    const dstPort = (d[2]! << 8) | d[3]!;
    const s = this.sockets.get(`${ip.dstText}|${dstPort}`) ?? this.sockets.get(`*|${dstPort}`);
    if (!s) {
      c.udpNoSocket++;
      this.icmp.portUnreachable(ip, now);
      return;
    }
    s.onMessage?.(d.slice(UDP_HEADER, length), { address: ip.srcText, port: (d[0]! << 8) | d[1]! });
  }

  send(s: UdpSocketImpl, data: Uint8Array, to: Endpoint4or6): boolean {
    const c = this.host.counters;
    let dst: Uint8Array;
    try { dst = parseIp(to.address); } catch { c.udpSendDropped++; return false; }
    const family: Family = dst.length === 4 ? 4 : 6;
    const src = s.specific ? parseIp(s.local.address) : this.host.sourceFor(family);
    if (!src || src.length !== dst.length || data.length > MAX_PAYLOAD[family] ||
      !Number.isInteger(to.port) || to.port < 1 || to.port > 65535) { c.udpSendDropped++; return false; }
    const length = UDP_HEADER + data.length;
    const ok = this.host.sendIp(family, src, dst, PROTO_UDP, length, (b, o) => {
      b[o] = s.local.port >> 8; b[o + 1] = s.local.port & 0xff;
      b[o + 2] = to.port >> 8; b[o + 3] = to.port & 0xff;
      b[o + 4] = length >> 8; b[o + 5] = length & 0xff;
      b.set(data, o + UDP_HEADER);
    }, 6, true);
    if (ok) c.udpSent++; else c.udpSendDropped++;
    return ok;
  }

  private taken(addr: string, port: number): boolean {
    if (addr === '*') return this.ports.has(port);
    return this.sockets.has(`${addr}|${port}`) || this.sockets.has(`*|${port}`);
  }

  private ephemeral(): number {
    const { ephemeralPortMin: min, ephemeralPortMax: max } = this.host.config;
    const span = max - min + 1;
    const start = randomUint32(this.host.config.rng) % span;
    for (let i = 0; i < span; i++) {
      const p = min + ((start + i) % span);
      if (!this.ports.has(p)) return p;
    }
    throw new ConfigError('ERR_NO_PORTS', 'no free ephemeral UDP port');
  }
}
