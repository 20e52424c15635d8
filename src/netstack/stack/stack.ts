/**
 * TcpIpStack: the sans-I/O TCP/IP stack. IP packets in (`input`), IP packets out (`io.output`),
 * time as a parameter, timers as one deadline. This file is the IP layer: it checks headers,
 * reassembles fragments, dispatches to ICMP, UDP and TCP, and builds every outgoing datagram.
 */
import { formatIp, parseIp } from '../../core/ip-address.ts';
import { ConfigError } from '../../core/errors.ts';
import { randomUint32 } from '../../core/rng.ts';
import { finish, pseudoHeaderSum, sum16 } from '../../core/checksum.ts';
import { ViewCache } from '../../core/view-cache.ts';
import { resolveConfig } from './config.ts';
import type { ResolvedConfig } from './config.ts';
import { newCounters } from './counters.ts';
import type { Counters } from './counters.ts';
import { fragmentSizes, Reassembler } from './fragments.ts';
import { Icmp } from './icmp.ts';
import { PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP } from './ip.ts';
import type { Family, Fill, IpInput, StackHost } from './ip.ts';
import { IPV4_DF, IPV4_HEADER, IPV4_MF, parseIpv4, writeIpv4Header } from './ipv4.ts';
import { FRAGMENT_NEXT_HEADER, IPV6_FRAGMENT_HEADER, IPV6_HEADER, NO_NEXT_HEADER, parseIpv6, writeIpv6Header } from './ipv6.ts';
import { Tcp } from './tcp/tcp.ts';
import type {
  EchoReply, Endpoint4or6, IpAddress, TcpIpStackApi, StackConfig, StackIO, TcpConnection, TcpListener, UdpSocket,
} from './types.ts';
import { Udp } from './udp.ts';

/** Bytes after the IP header cleared before a transport header is written (TCP's largest is 60). */
const CLEARED_TRANSPORT_BYTES = 64;

export class TcpIpStack implements TcpIpStackApi, StackHost {
  readonly counters: Counters = newCounters();
  readonly config: ResolvedConfig;
  private readonly io: StackIO;
  private readonly local = new Set<string>();
  private readonly reassembler: Reassembler;
  private readonly icmp: Icmp;
  private readonly udp: Udp;
  private readonly tcp: Tcp;
  private ipv4Id: number;
  private ipv6FragmentId: number;
  private outputBuffer = new Uint8Array(0);
  /** Views of outputBuffer's first bytes by length: a bulk stream sends its data and ACKs at two sizes again and again. */
  private readonly outputViews = new ViewCache(8);
  private outputBusy = false;

  constructor(config: StackConfig, io: StackIO) {
    this.config = resolveConfig(config);
    this.io = io;
    for (const a of [...this.config.addresses4, ...this.config.addresses6]) this.local.add(formatIp(a));
    this.reassembler = new Reassembler({
      timeout: this.config.reassemblyTimeout,
      maxBytes: this.config.reassemblyMaxBytes,
      maxDatagrams: this.config.reassemblyMaxDatagrams,
    }, this.counters);
    this.icmp = new Icmp(this);
    this.udp = new Udp(this, this.icmp);
    this.tcp = new Tcp(this);
    this.icmp.onUnreachable = (family, quoted, reason) => this.tcp.unreachable(family, quoted, reason);
    this.ipv4Id = randomUint32(this.config.rng) & 0xffff;
    this.ipv6FragmentId = randomUint32(this.config.rng);
  }

  get onEchoReply(): ((reply: EchoReply) => void) | undefined { return this.icmp.onEchoReply; }
  set onEchoReply(f: ((reply: EchoReply) => void) | undefined) { this.icmp.onEchoReply = f; }

  input(packet: Uint8Array, now: number): void {
    this.counters.ipReceived++;
    try {
      const version = packet.length > 0 ? packet[0]! >> 4 : 0;
      if (version === 4) this.input4(packet, now);
      else if (version === 6) this.input6(packet, now);
      else this.counters.ipMalformed++;
    } catch (e) {
      // A bug, not a bad packet: counted so tests can insist on zero, never thrown at the caller.
      this.counters.internalErrors++;
      this.lastInternalError = e;
    }
  }

  beginInputBurst(): void {
    this.tcp.beginInputBurst();
  }

  endInputBurst(now: number): void {
    try {
      this.tcp.endInputBurst(now);
    } catch (e) {
      this.counters.internalErrors++;
      this.lastInternalError = e;
    }
  }

  /** The last exception caught inside packet or timer processing, for debugging. */
  lastInternalError: unknown;

  tick(now: number): void {
    try {
      this.reassembler.expire(now);
      this.tcp.tick(now);
    } catch (e) {
      this.counters.internalErrors++;
      this.lastInternalError = e;
    }
  }

  nextDeadline(): number {
    return Math.min(this.reassembler.nextDeadline(), this.tcp.nextDeadline());
  }

  tcpConnect(remote: Endpoint4or6, now: number, local?: Partial<Endpoint4or6>): TcpConnection {
    return this.tcp.connect(remote, now, local);
  }

  tcpListen(port: number, address?: IpAddress, backlog?: number): TcpListener {
    return this.tcp.listen(port, address === undefined ? undefined : this.localAddress(address), backlog);
  }

  udpBind(port?: number, address?: IpAddress): UdpSocket {
    return this.udp.bind(port, address);
  }

  ping(to: IpAddress, id: number, sequence: number, payload: Uint8Array, now: number): boolean {
    void now;
    let dst: Uint8Array;
    try { dst = parseIp(to); } catch { return false; }
    const family: Family = dst.length === 4 ? 4 : 6;
    const src = this.sourceFor(family);
    if (!src) return false;
    return this.icmp.ping(family, src, dst, id & 0xffff, sequence & 0xffff, payload);
  }

  /** The TCP memory budget: bytes reserved now, whether under pressure, and the thresholds. */
  get tcpMemory(): { inUse: number; underPressure: boolean; low: number; pressure: number; high: number } {
    const m = this.tcp.memory;
    return { inUse: m.inUse, underPressure: m.underPressure, ...m.limits };
  }

  /** Live TCP connections (every state but LISTEN), for tests and diagnostics. */
  get tcpConnectionCount(): number { return this.tcp.connectionCount; }

  // --- StackHost ------------------------------------------------------------------------------

  sourceFor(family: Family): Uint8Array | null {
    return (family === 4 ? this.config.addresses4[0] : this.config.addresses6[0]) ?? null;
  }

  isLocal(text: string): boolean {
    return this.local.has(text);
  }

  sendIp(family: Family, src: Uint8Array, dst: Uint8Array, protocol: number, length: number, fill: Fill,
    checksumAt: number, fragment = false): boolean {
    const header = family === 4 ? IPV4_HEADER : IPV6_HEADER;
    const mtu = this.config.mtu;
    if (header + length > mtu && !fragment) { this.counters.ipTooBig++; return false; }
    const total = header + length;
    let packet: Uint8Array;
    if (total <= mtu && !this.outputBusy) {
      // io.output borrows the packet for the call only, so one buffer serves every packet. The
      // writers leave some bytes to be zero (checksum fields, ICMP's unused word): the headers
      // are cleared first, and the payload is always written in full.
      // At least 64 KiB, so that checksums read it through one cached word view (core/checksum.ts).
      if (this.outputBuffer.length < total) this.outputBuffer = new Uint8Array(Math.max(total, mtu, 65536));
      packet = this.outputViews.view(this.outputBuffer, 0, total);
      packet.fill(0, 0, Math.min(total, header + CLEARED_TRANSPORT_BYTES));
    } else {
      packet = new Uint8Array(total);
    }
    fill(packet, header);
    if (checksumAt >= 0) {
      const initial = family === 4 && protocol === PROTO_ICMP ? 0 : pseudoHeaderSum(src, dst, protocol, length);
      let c = finish(sum16(packet, header, total, initial));
      // A computed UDP checksum of zero is sent as all ones, zero meaning "none" (RFC 768).
      if (c === 0 && protocol === PROTO_UDP) c = 0xffff;
      packet[header + checksumAt] = c >> 8;
      packet[header + checksumAt + 1] = c & 0xff;
    }
    if (header + length <= mtu) {
      if (family === 4) writeIpv4Header(packet, src, dst, protocol, header + length, this.nextIpv4Id(), protocol === PROTO_TCP ? IPV4_DF : 0);
      else writeIpv6Header(packet, src, dst, protocol, length);
      this.counters.ipSent++;
      // An output that sends again from inside the call gets a buffer of its own.
      this.outputBusy = true;
      try {
        this.io.output(packet);
      } finally {
        this.outputBusy = false;
      }
      return true;
    }
    return this.sendFragments(family, src, dst, protocol, packet.subarray(header));
  }

  // --- receive path ---------------------------------------------------------------------------

  private input4(packet: Uint8Array, now: number): void {
    const h = parseIpv4(packet);
    if (h === 'malformed') { this.counters.ipMalformed++; return; }
    if (h === 'checksum') { this.counters.ipBadChecksum++; return; }
    const dstText = formatIp(h.dst);
    if (!this.local.has(dstText)) { this.counters.ipNotForUs++; return; }
    let payload = packet.subarray(h.headerLength, h.totalLength);
    if (h.moreFragments || h.fragmentOffset !== 0) {
      const key = `4|${formatIp(h.src)}|${dstText}|${h.protocol}|${h.id}`;
      const whole = this.reassembler.add(key, h.fragmentOffset, payload, h.moreFragments, now);
      if (!whole) return;
      payload = whole;
    }
    this.dispatch({
      family: 4, src: h.src, dst: h.dst, srcText: formatIp(h.src), dstText, protocol: h.protocol, payload,
      packet: packet.subarray(0, h.totalLength),
    }, now);
  }

  private input6(packet: Uint8Array, now: number): void {
    const h = parseIpv6(packet);
    if (h === 'malformed') { this.counters.ipMalformed++; return; }
    if (h === 'unsupportedExtension') { this.counters.ipUnsupportedExtension++; return; }
    const dstText = formatIp(h.dst);
    if (!this.local.has(dstText)) { this.counters.ipNotForUs++; return; }
    let payload = packet.subarray(h.payloadOffset, h.end);
    let protocol = h.protocol;
    if (h.fragment) {
      const f = h.fragment;
      // An atomic fragment (offset 0, no more) is just the datagram (RFC 6946).
      if (f.offset !== 0 || f.moreFragments) {
        const key = `6|${formatIp(h.src)}|${dstText}|${f.id}`;
        const whole = this.reassembler.add(key, f.offset, payload, f.moreFragments, now);
        if (!whole) return;
        payload = whole;
        // Extension headers inside the fragmentable part are not expected from a tunnel peer.
      }
    }
    if (protocol === NO_NEXT_HEADER) { this.counters.ipNoNextHeader++; return; }
    if (protocol === 0 || protocol === 43 || protocol === 60 || protocol === FRAGMENT_NEXT_HEADER) {
      this.counters.ipUnsupportedExtension++;
      return;
    }
    protocol = h.protocol;
    this.dispatch({
      family: 6, src: h.src, dst: h.dst, srcText: formatIp(h.src), dstText, protocol, payload,
      packet: packet.subarray(0, h.end),
    }, now);
  }

  private dispatch(ip: IpInput, now: number): void {
    switch (ip.protocol) {
      case PROTO_TCP: this.tcp.input(ip, now); break;
      case PROTO_UDP: this.udp.input(ip, now); break;
      case PROTO_ICMP: if (ip.family === 4) this.icmp.input(ip); else this.counters.ipUnknownProtocol++; break;
      case PROTO_ICMPV6: if (ip.family === 6) this.icmp.input(ip); else this.counters.ipUnknownProtocol++; break;
      default: this.counters.ipUnknownProtocol++;
    }
  }

  // --- send path ------------------------------------------------------------------------------

  private sendFragments(family: Family, src: Uint8Array, dst: Uint8Array, protocol: number, body: Uint8Array): boolean {
    const mtu = this.config.mtu;
    if (family === 4) {
      const id = this.nextIpv4Id();
      let off = 0;
      for (const size of fragmentSizes(body.length, mtu - IPV4_HEADER)) {
        const p = new Uint8Array(IPV4_HEADER + size);
        p.set(body.subarray(off, off + size), IPV4_HEADER);
        const more = off + size < body.length ? IPV4_MF : 0;
        writeIpv4Header(p, src, dst, protocol, p.length, id, more | (off / 8));
        off += size;
        this.emitFragment(p);
      }
      return true;
    }
    const id = this.ipv6FragmentId = (this.ipv6FragmentId + 1) >>> 0;
    let off = 0;
    for (const size of fragmentSizes(body.length, mtu - IPV6_HEADER - IPV6_FRAGMENT_HEADER)) {
      const p = new Uint8Array(IPV6_HEADER + IPV6_FRAGMENT_HEADER + size);
      writeIpv6Header(p, src, dst, FRAGMENT_NEXT_HEADER, IPV6_FRAGMENT_HEADER + size);
      const f = IPV6_HEADER;
      p[f] = protocol;
      const field = off | (off + size < body.length ? 1 : 0);
      p[f + 2] = field >> 8; p[f + 3] = field & 0xff;
      p[f + 4] = id >>> 24; p[f + 5] = (id >>> 16) & 0xff; p[f + 6] = (id >>> 8) & 0xff; p[f + 7] = id & 0xff;
      p.set(body.subarray(off, off + size), IPV6_HEADER + IPV6_FRAGMENT_HEADER);
      off += size;
      this.emitFragment(p);
    }
    return true;
  }

  private emitFragment(p: Uint8Array): void {
    this.counters.fragmentsSent++;
    this.counters.ipSent++;
    this.io.output(p);
  }

  private nextIpv4Id(): number {
    return this.ipv4Id = (this.ipv4Id + 1) & 0xffff;
  }

  private localAddress(address: string): string {
    let text: string;
    try { text = formatIp(parseIp(address)); } catch { throw new ConfigError('ERR_ADDRESS', `not an IP address: ${address}`); }
    if (!this.local.has(text)) throw new ConfigError('ERR_ADDRESS', `${address} is not one of the stack's addresses`);
    return text;
  }
}
