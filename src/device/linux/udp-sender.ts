/**
 * The Linux UDP bind's send path (see bind.ts). sendmsg() on the calling thread, nonblocking:
 * EAGAIN/ENOBUFS count a drop, never block. Each datagram is copied into a fixed send area (the
 * msghdr must point at memory that does not move); datagrams to one endpoint in one task gather
 * there and leave in a microtask as one UDP_SEGMENT sendmsg (gso.ts). An endpoint with a local
 * address is sent from it (pktinfo.ts) until the kernel refuses it; then without, until a
 * datagram arrives on it again (`arrived`).
 */
import type { TransportReservation } from '../../core/endpoint.ts';
import { ViewCache } from '../../core/view-cache.ts';
import type { BindEndpoint } from '../bind.ts';
import type { EndpointCache } from '../endpoint-address.ts';
import { errno, errnoName } from '../errno.ts';
import { GSO_MAX_BYTES, GSO_MAX_SEGMENTS, writeSegmentSize } from './gso.ts';
import { libc } from './libc.ts';
import type { Libc } from './libc.ts';
import { sourceInfo, writePktinfo } from './pktinfo.ts';
import type { SourceInfo } from './pktinfo.ts';
import type { SealPipeline } from './seal-pipeline.ts';
import type { SendCounters } from './seal-ring.ts';
import { AF_INET, AF_INET6, MSG_CONTROL, MSG_CONTROLLEN, MSG_IOV, MSG_IOVLEN, MSG_NAME, MSG_NAMELEN, SOCKADDR_IN, SOCKADDR_IN6 } from './socket-abi.ts';
import { UDP_SLOT_SIZE } from './udp-ring.ts';

/** Bounds the set of endpoints whose source failed. */
const MAX_STALE = 65536;

// The send area (bytes), in its own SharedArrayBuffer so its address is fixed: a msghdr, its
// iovec, the destination sockaddr, the control messages (PKTINFO, UDP_SEGMENT), the data.
const S_MSG = 0;
const S_IOV = 64;
const S_NAME = 80;
const S_CONTROL = 112;
const S_DATA = 192;

export interface UdpSenderOptions {
  /** Batch with UDP_SEGMENT (off by itself once the kernel refuses it). */
  gso: boolean;
  /** Told when a sticky source address was refused by the kernel and the datagram went without it. */
  onSourceCleared?: ((endpoint: BindEndpoint, cleared: BindEndpoint, errno: string) => void) | undefined;
}

export class UdpSender {
  readonly counters: SendCounters = { txPackets: 0, txDropped: 0, txErrors: 0, sourceCleared: 0, gsoBatches: 0, gsoRefused: 0 };
  private readonly endpoints: EndpointCache;
  private readonly onSourceCleared: UdpSenderOptions['onSourceCleared'];
  /** UDP GSO (UDP_SEGMENT) in use: as the options say, off once the kernel refuses it. */
  private gso: boolean;
  /** The open's sockets (IPv4, IPv6); null while closed. */
  private fds: readonly number[] | null = null;
  private lib: Libc | null = null;
  private send8: Uint8Array = new Uint8Array(0);
  private send32: Int32Array = new Int32Array(0);
  private sendAddr = 0;
  /** Datagrams gathered in the send area for one sendmsg (see send/flush). */
  private readonly pending = { to: null as BindEndpoint | null, count: 0, bytes: 0, segmentSize: 0, sealed: false };
  private flushQueued = false;
  private sealers: SealPipeline | null = null;
  private readonly sources = new WeakMap<BindEndpoint, SourceInfo | null>();
  /** sin6_scope_id of link-local remotes configured with a zone (fe80::1%eth0, fe80::1%3), and until when (performance.now()) a looked-up name holds. */
  private readonly zoneScopes = new WeakMap<BindEndpoint, { scope: number; until: number }>();
  /** Endpoints whose local address the kernel refused; sent without a source until one arrives on it. */
  private readonly staleSources = new Set<BindEndpoint>();
  /** sendBuffer's views: a batch's segments lie at the same places batch after batch. */
  private readonly views = new ViewCache(128);
  private readonly E = {
    EAGAIN: errno('EAGAIN'), ENOBUFS: errno('ENOBUFS'), EINVAL: errno('EINVAL'), EADDRNOTAVAIL: errno('EADDRNOTAVAIL'), ENETUNREACH: errno('ENETUNREACH'),
  };

  constructor(endpoints: EndpointCache, opts: UdpSenderOptions) {
    this.endpoints = endpoints;
    this.gso = opts.gso;
    this.onSourceCleared = opts.onSourceCleared;
  }

  /** The sockets of an open (IPv4, then IPv6 if any); the send area is made on the first. */
  open(lib: Libc, fds: readonly number[]): void {
    this.fds = fds;
    if (this.lib) return;
    this.lib = lib;
    const sab = new SharedArrayBuffer(S_DATA + UDP_SLOT_SIZE);
    this.send8 = new Uint8Array(sab);
    this.send32 = new Int32Array(sab);
    const base = lib.addressOf(this.send8);
    this.sendAddr = base;
    const v = new DataView(sab);
    v.setBigUint64(S_MSG + MSG_NAME, BigInt(base + S_NAME), true);
    v.setBigUint64(S_MSG + MSG_IOV, BigInt(base + S_IOV), true);
    v.setBigUint64(S_MSG + MSG_IOVLEN, 1n, true);
    v.setBigUint64(S_MSG + MSG_CONTROL, BigInt(base + S_CONTROL), true);
    v.setBigUint64(S_IOV + 0, BigInt(base + S_DATA), true); // iov_base
  }

  /** Sends what this task gathered, then refuses sends until the next open. */
  close(): void {
    this.flush();
    this.sealers?.publish();
    this.fds = null;
  }

  /** A datagram arrived from `from`: its local address works again. */
  arrived(from: BindEndpoint): void {
    if (this.staleSources.size !== 0) this.staleSources.delete(from);
  }

  /** Sealing threads for transport messages (seal-pipeline.ts); null seals on the caller's thread. */
  attachSealers(sealers: SealPipeline | null): void {
    this.sealers = sealers;
  }

  /** Whether sendTransport can be used now. */
  get sealsTransport(): boolean {
    return this.sealers !== null && this.sealers.usable && this.fds !== null;
  }

  /** A transport message for the sealing threads: `packet` padded to `padded` bytes, sealed as `r` says. */
  sendTransport(packet: Uint8Array, padded: number, r: Readonly<TransportReservation>, to: BindEndpoint): void {
    const fd = this.fdFor(to);
    if (fd === undefined || this.sealers === null) { this.counters.txErrors++; return; }
    if (this.pending.count > 0) this.flush(); // what was gathered here goes first
    this.sealers.sendTransport(fd, to, packet, padded, r);
  }

  /** Waits until the sealing threads have sent what they hold (before the sockets close). */
  async drained(): Promise<void> {
    if (this.sealers) await this.sealers.drained();
  }

  send(datagram: Uint8Array, to: BindEndpoint): void {
    const len = datagram.length;
    if (this.fds === null || len > UDP_SLOT_SIZE) { this.counters.txErrors++; return; }
    const sealers = this.sealers;
    if (sealers !== null && sealers.usable && sealers.busy) {
      // Transport messages are queued on the sealing threads: this one goes behind them.
      const fd = this.fdFor(to);
      if (fd === undefined) { this.counters.txErrors++; return; }
      sealers.sendSealed(fd, to, datagram);
      return;
    }
    const p = this.pending;
    if (p.count > 0) {
      if (this.joins(len, to)) {
        this.place(datagram, S_DATA + p.bytes);
        p.bytes += len;
        p.count++;
        if (len < p.segmentSize) p.sealed = true; // only the last segment may be shorter
        return;
      }
      this.flush();
    }
    this.place(datagram, S_DATA);
    p.to = to; p.count = 1; p.bytes = len; p.segmentSize = len; p.sealed = false;
    if (!this.gso) { this.flush(); return; }
    // Whatever else this task sends to the same place joins the batch; the batch leaves before
    // any timer or I/O callback runs, so nothing waits longer than the current burst.
    if (!this.flushQueued) { this.flushQueued = true; queueMicrotask(this.flushTask); }
  }

  /**
   * Where send(datagram, to) would put a `length`-byte datagram: after the batch gathered so
   * far if it joins it, else at the start (what was gathered is sent now, as send would).
   * Null while the sealing threads hold transport messages (send queues behind them then).
   */
  sendBuffer(length: number, to: BindEndpoint): Uint8Array | null {
    if (this.fds === null || length > UDP_SLOT_SIZE) return null;
    const sealers = this.sealers;
    if (sealers !== null && sealers.usable && sealers.busy) return null;
    const p = this.pending;
    if (p.count > 0 && this.joins(length, to)) return this.views.view(this.send8, S_DATA + p.bytes, S_DATA + p.bytes + length);
    this.flush();
    return this.views.view(this.send8, S_DATA, S_DATA + length);
  }

  /** Same destination, no longer than the first segment, room left: one more GSO segment. */
  private joins(length: number, to: BindEndpoint): boolean {
    const p = this.pending;
    return p.to === to && !p.sealed && length <= p.segmentSize && p.count < GSO_MAX_SEGMENTS && p.bytes + length <= GSO_MAX_BYTES;
  }

  /** Copies `datagram` to `at` unless it was written there already (a sendBuffer view). */
  private place(datagram: Uint8Array, at: number): void {
    const b = this.send8;
    if (datagram.buffer === b.buffer && datagram.byteOffset === b.byteOffset + at) return;
    b.set(datagram, at);
  }

  private readonly flushTask = (): void => {
    this.flushQueued = false;
    this.flush();
  };

  /** Sends what `send` has gathered: one sendmsg, with UDP_SEGMENT when it is more than one datagram. */
  flush(): void {
    const p = this.pending;
    const count = p.count;
    if (count === 0) return;
    p.count = 0;
    const to = p.to!;
    p.to = null;
    const fd = this.fdFor(to);
    if (fd === undefined) { this.counters.txErrors += count; return; }
    if (count === 1) { this.sendOne(fd, to, 0, p.bytes); return; }
    const w = this.send32;
    const control = this.writeHeader(to);
    // UDP_SEGMENT: the kernel cuts the payload into segmentSize-byte datagrams (the last may be
    // shorter), so the whole batch crosses the socket layer once.
    w[(S_MSG + MSG_CONTROLLEN) >> 2] = control + writeSegmentSize(w, S_CONTROL + control, p.segmentSize);
    w[(S_IOV + 8) >> 2] = p.bytes;
    const lib = this.lib!;
    if (lib.sendmsg(fd, this.sendAddr + S_MSG, 0) >= 0) {
      this.counters.txPackets += count;
      this.counters.gsoBatches++;
      return;
    }
    const e = lib.errno();
    if (e === this.E.EAGAIN || e === this.E.ENOBUFS) { this.counters.txDropped += count; return; }
    // Refused (a device without checksum offload says EIO, old kernels EINVAL/ENOPROTOOPT, or
    // the source went away): send the datagrams one by one. If that works, GSO was the problem.
    const txBefore = this.counters.txPackets;
    for (let off = 0, i = 0; i < count; i++, off += p.segmentSize) {
      this.sendOne(fd, to, off, Math.min(p.segmentSize, p.bytes - off));
    }
    if (this.counters.txPackets - txBefore === count) { this.gso = false; this.counters.gsoRefused++; }
  }

  /** The open's socket for `to`'s family; undefined while closed or without IPv6. */
  private fdFor(to: BindEndpoint): number | undefined {
    const fds = this.fds;
    return fds === null ? undefined : to.family === 4 ? fds[0] : fds[1];
  }

  /** Writes msg_name and the source control message for `to`; returns the control length used. */
  private writeHeader(to: BindEndpoint): number {
    this.send32[(S_MSG + MSG_NAMELEN) >> 2] = to.family === 4 ? SOCKADDR_IN : SOCKADDR_IN6;
    return this.writeHeaderAt(to, this.send8, this.send32, S_NAME, S_CONTROL);
  }

  /**
   * Writes `to` as a sockaddr at byte `nameAt` and its source control message (sticky source)
   * at `controlAt` of `b` (`w` over the same bytes); returns the control length. The sealing
   * threads' jobs are written with it too.
   */
  readonly writeHeaderAt = (to: BindEndpoint, b: Uint8Array, w: Int32Array, nameAt: number, controlAt: number): number => {
    const t = to.tag;
    let source: SourceInfo | null | undefined;
    if (to.localAddress !== undefined && (this.staleSources.size === 0 || !this.staleSources.has(to))) {
      source = this.sources.get(to);
      if (source === undefined) { source = sourceInfo(to); this.sources.set(to, source); }
    }
    if (to.family === 4) {
      b[nameAt] = AF_INET; b[nameAt + 1] = 0;
      b[nameAt + 2] = t[4]!; b[nameAt + 3] = t[5]!;
      b[nameAt + 4] = t[0]!; b[nameAt + 5] = t[1]!; b[nameAt + 6] = t[2]!; b[nameAt + 7] = t[3]!;
      return source ? writePktinfo(b, w, controlAt, 4, source) : 0;
    }
    b[nameAt] = AF_INET6 & 0xff; b[nameAt + 1] = 0;
    b[nameAt + 2] = t[16]!; b[nameAt + 3] = t[17]!;
    w[(nameAt + 4) >> 2] = 0; // flowinfo
    for (let i = 0; i < 16; i++) b[nameAt + 8 + i] = t[i]!;
    // A link-local remote needs a scope: the interface our link-local source lives on, else the
    // zone it was configured with.
    w[(nameAt + 24) >> 2] = t[0] === 0xfe && (t[1]! & 0xc0) === 0x80 ? (source?.ifindex || this.zoneScope(to)) : 0;
    return source ? writePktinfo(b, w, controlAt, 6, source) : 0;
  };

  /** A sealing thread's send with `to`'s sticky source was refused: as sendOne does, stop using it. */
  sourceRefused(to: BindEndpoint, e: number): void {
    if (this.staleSources.size >= MAX_STALE) this.staleSources.clear();
    this.staleSources.add(to);
    this.onSourceCleared?.(to, this.endpoints.withoutSource(to), errnoName(e));
  }

  /** One datagram: the `len` bytes at S_DATA + `off` of the send area. */
  private sendOne(fd: number, to: BindEndpoint, off: number, len: number): void {
    const w = this.send32;
    w[(S_MSG + MSG_CONTROLLEN) >> 2] = this.writeHeader(to);
    w[(S_IOV + 8) >> 2] = len; // iov_len (high word stays 0)
    if (off !== 0) this.setIovBase(S_DATA + off);
    try {
      const lib = this.lib!;
      if (lib.sendmsg(fd, this.sendAddr + S_MSG, 0) >= 0) { this.counters.txPackets++; return; }
      const e = lib.errno();
      if (w[(S_MSG + MSG_CONTROLLEN) >> 2] !== 0 && (e === this.E.EINVAL || e === this.E.EADDRNOTAVAIL || e === this.E.ENETUNREACH)) {
        // The local address went away (or is not routable any more): send from whatever the
        // kernel picks, and stop asking for it until a datagram arrives on it again.
        w[(S_MSG + MSG_CONTROLLEN) >> 2] = 0;
        if (to.family === 6) w[(S_NAME + 24) >> 2] = this.zoneScope(to);
        this.counters.sourceCleared++;
        if (this.staleSources.size >= MAX_STALE) this.staleSources.clear();
        this.staleSources.add(to);
        const refused = errnoName(e);
        if (lib.sendmsg(fd, this.sendAddr + S_MSG, 0) >= 0) this.counters.txPackets++;
        else this.countSendError(lib.errno());
        // Last: the listener may send (and so reuse the send area).
        if (off !== 0) this.setIovBase(S_DATA);
        off = 0;
        this.onSourceCleared?.(to, this.endpoints.withoutSource(to), refused);
        return;
      }
      this.countSendError(e);
    } finally {
      if (off !== 0) this.setIovBase(S_DATA);
    }
  }

  /**
   * The interface index of `to`'s zone: a number as it is; an interface name looked up in the
   * namespace the daemon runs in (as Go's runtime does for wireguard-go), again after a minute
   * (an interface may come, go or be re-created), or after a second while the name is unknown
   * (the kernel refuses a link-local remote without a scope: counted as a send error). 0 without
   * a zone.
   */
  private zoneScope(to: BindEndpoint): number {
    const now = performance.now();
    const cached = this.zoneScopes.get(to);
    if (cached !== undefined && now < cached.until) return cached.scope;
    const pct = to.address.indexOf('%');
    const zone = pct < 0 ? '' : to.address.slice(pct + 1);
    let scope = 0, until = Infinity;
    if (/^\d+$/.test(zone)) scope = Number(zone) >>> 0;
    else if (zone !== '' && !zone.includes('\0')) {
      scope = (this.lib ?? libc()).if_nametoindex(zone) >>> 0;
      until = now + (scope === 0 ? 1000 : 60_000);
    }
    this.zoneScopes.set(to, { scope, until });
    return scope;
  }

  private setIovBase(offset: number): void {
    const addr = this.sendAddr + offset;
    this.send32[(S_IOV + 0) >> 2] = addr % 0x100000000 | 0;
    this.send32[(S_IOV + 4) >> 2] = Math.floor(addr / 0x100000000) | 0;
  }

  private countSendError(e: number): void {
    if (e === this.E.EAGAIN || e === this.E.ENOBUFS) this.counters.txDropped++;
    else this.counters.txErrors++;
  }
}
