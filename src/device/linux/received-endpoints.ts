/**
 * The endpoint a received datagram came from, found from the raw words the receiver thread wrote
 * into its slot header (udp-ring.ts) so that the receive path formats no text: an index of raw
 * (address, port, local address) words to the canonical BindEndpoint of an EndpointCache, and
 * the last IPv4 and IPv6 ones, since a tunnel's datagrams mostly come from one peer in a row.
 */
import type { BindEndpoint } from '../bind.ts';
import type { EndpointCache } from '../endpoint-address.ts';
import { formatIp } from '../../core/ip-address.ts';
import { AF_INET, AF_INET6 } from './socket-abi.ts';
import { H_IFINDEX, H_LOCAL, H_LOCAL_FAMILY, H_NAME } from './udp-ring.ts';

/** Bounds the index (a flood of sources cannot grow it). */
const MAX_INDEX = 65536;

export class ReceivedEndpoints {
  private readonly endpoints: EndpointCache;
  private readonly index = new Map<string, BindEndpoint>();
  private indexGeneration = 0;
  private last4: BindEndpoint | null = null;
  private readonly last4Key = new Int32Array(4);
  private last6: BindEndpoint | null = null;
  private readonly last6Key = new Int32Array(11);

  constructor(endpoints: EndpointCache) {
    this.endpoints = endpoints;
  }

  /** The canonical endpoint for the source and local address in the slot header at byte `h`. */
  at(hdr8: Uint8Array, hdr16: Uint16Array, hdr32: Int32Array, h: number): BindEndpoint | null {
    if (this.indexGeneration !== this.endpoints.generation) {
      this.index.clear();
      this.last4 = this.last6 = null;
      this.indexGeneration = this.endpoints.generation;
    }
    const family = hdr16[(h + H_NAME) >> 1];
    const w = h >> 2;
    const lw = (h + H_LOCAL) >> 2;
    const lf = hdr32[(h + H_LOCAL_FAMILY) >> 2]!;
    if (family === AF_INET) {
      const k = this.last4Key;
      const portWord = hdr32[w]!;
      const addr = hdr32[w + 1]!;
      const local = hdr32[lw]!;
      if (this.last4 && k[0] === portWord && k[1] === addr && k[2] === lf && k[3] === local) return this.last4;
      k[0] = portWord; k[1] = addr; k[2] = lf; k[3] = local;
      const key = `4|${portWord}|${addr}|${lf}|${local}`;
      let e = this.index.get(key);
      if (!e) {
        const b = hdr8;
        const address = `${b[h + 4]}.${b[h + 5]}.${b[h + 6]}.${b[h + 7]}`;
        const port = (b[h + 2]! << 8) | b[h + 3]!;
        const localAddress = lf === 4 ? `${b[h + H_LOCAL]}.${b[h + H_LOCAL + 1]}.${b[h + H_LOCAL + 2]}.${b[h + H_LOCAL + 3]}` : undefined;
        e = this.remember(key, address, port, localAddress);
      }
      this.last4 = e;
      return e;
    }
    if (family === AF_INET6) {
      const k = this.last6Key;
      const aw = (h + H_NAME + 8) >> 2;
      const ifindex = hdr32[(h + H_IFINDEX) >> 2]!;
      if (
        this.last6 && k[0] === hdr32[w] && k[1] === hdr32[aw] && k[2] === hdr32[aw + 1] && k[3] === hdr32[aw + 2] && k[4] === hdr32[aw + 3] &&
        k[5] === lf && k[6] === hdr32[lw] && k[7] === hdr32[lw + 1] && k[8] === hdr32[lw + 2] && k[9] === hdr32[lw + 3] && k[10] === ifindex
      ) return this.last6;
      k[0] = hdr32[w]!; k[1] = hdr32[aw]!; k[2] = hdr32[aw + 1]!; k[3] = hdr32[aw + 2]!; k[4] = hdr32[aw + 3]!;
      k[5] = lf; k[6] = hdr32[lw]!; k[7] = hdr32[lw + 1]!; k[8] = hdr32[lw + 2]!; k[9] = hdr32[lw + 3]!; k[10] = ifindex;
      const key = `6|${k.join('|')}`;
      let e = this.index.get(key);
      if (!e) {
        const b = hdr8;
        const address = formatIp(b.subarray(h + H_NAME + 8, h + H_NAME + 24));
        const port = (b[h + 2]! << 8) | b[h + 3]!;
        let localAddress: string | undefined;
        if (lf === 6) {
          localAddress = formatIp(b.subarray(h + H_LOCAL, h + H_LOCAL + 16));
          // Link-local: the address means nothing without its interface.
          if (b[h + H_LOCAL] === 0xfe && (b[h + H_LOCAL + 1]! & 0xc0) === 0x80) localAddress += `%${ifindex >>> 0}`;
        }
        e = this.remember(key, address, port, localAddress);
      }
      this.last6 = e;
      return e;
    }
    return null; // cannot happen on these sockets
  }

  private remember(key: string, address: string, port: number, localAddress: string | undefined): BindEndpoint {
    const e = this.endpoints.get(address, port, localAddress);
    if (this.indexGeneration !== this.endpoints.generation) {
      // The cache was emptied while making e: everything indexed is stale.
      this.index.clear();
      this.last4 = this.last6 = null;
      this.indexGeneration = this.endpoints.generation;
    }
    if (this.index.size >= MAX_INDEX) this.index.clear();
    this.index.set(key, e);
    return e;
  }
}
