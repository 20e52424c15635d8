/**
 * The Linux UDP bind on raw sockets through koffi: batched receive (recvmmsg on a worker
 * thread) and sticky source addresses (IP_PKTINFO / IPV6_PKTINFO), which node:dgram cannot do.
 *
 *   const bind = new LinuxUdpBind();
 *   const port = await bind.open(0, (datagram, from) => ...);   // from.localAddress: where it arrived
 *   bind.send(reply, from);                                       // leaves from from.localAddress
 *
 * Sockets: one AF_INET and one AF_INET6 socket with IPV6_V6ONLY (dual stack like wireguard-go
 * and NodeUdpBind), both bound to the wildcard address on the same port (with port 0 the IPv6
 * socket takes the port the IPv4 one got, retrying on EADDRINUSE), nonblocking, 7 MiB buffers
 * (SO_RCVBUFFORCE/SO_SNDBUFFORCE as root, else capped by net.core.rmem_max/wmem_max),
 * IP_PKTINFO and IPV6_RECVPKTINFO on (each datagram tells the local address it arrived on) and
 * SO_RXQ_OVFL on (each datagram carries the socket's cumulative count of datagrams the kernel
 * dropped for want of buffer space).
 *
 * Receiving: a worker thread loops recvmmsg() (up to 64 datagrams a call) on both sockets
 * until both say EAGAIN, then poll()s them and an eventfd (close() wakes it with that). The
 * thread and the ring outlive re-opens (listen-port changes): a re-open hands the thread the new
 * sockets once it has let go of the old ones.
 * Datagrams go straight from the kernel into slots of a SharedArrayBuffer ring (no copy): each
 * slot has a 128-byte header (the source sockaddr and the control messages the kernel fills in,
 * then the length, local address and interface index the worker parses out of them) and a
 * 64 KiB data area. recvmmsg's mmsghdr/iovec vector is built once, one entry per slot, pointing
 * into the ring, so a batch is one call on a run of consecutive entries. The worker publishes
 * `head`, the main thread `tail` (ring.ts, udp-ring.ts; the thread is udp-receiver.ts): the
 * main thread drains in order and hands the receiver a view of the slot, valid only during the
 * call, with the canonical BindEndpoint for (source address, port, local address)
 * (received-endpoints.ts). When the ring is full the worker stops reading until the main thread frees slots;
 * meanwhile the socket buffer holds the burst and, when it overflows, the kernel drops (counted
 * by SO_RXQ_OVFL, reported as `stats.rxKernelDropped`).
 *
 * Sending (udp-sender.ts): sendmsg() on the calling thread, nonblocking: EAGAIN/ENOBUFS count a drop
 * (`txDropped`), never block. Each datagram is copied into a fixed send area (the msghdr must
 * point at memory that does not move). Datagrams sent to the same endpoint in one task (a burst
 * the device encrypted from one TUN drain) gather there and leave in a microtask as one sendmsg
 * with UDP_SEGMENT (UDP GSO, Linux ≥ 4.18): the kernel's UDP/IP path runs once per batch
 * instead of once per datagram (gso.ts). A single datagram goes without it; the option
 * `gso: false` turns batching off, and it turns itself off if the kernel refuses it
 * (`gsoRefused`). An endpoint with `localAddress` is sent with an IP_PKTINFO (ipi_spec_dst) / IPV6_PKTINFO (ipi6_addr) control message carrying that
 * address as the source. If the kernel refuses it (EINVAL, EADDRNOTAVAIL, ENETUNREACH: the
 * address went away), the datagram is sent again without a source, `stats.sourceCleared` counts
 * it, `onSourceCleared` (option) is told, and further sends to that endpoint go without a
 * source until a datagram arrives on it again; `clearSource()` gives the same remote without a
 * local address, which the device uses when a handshake is retried (as wireguard-go does).
 * IPv6 link-local local addresses carry their interface index ("fe80::1%3"): it is sent as
 * ipi6_ifindex and, for a link-local remote, as sin6_scope_id. A link-local remote configured
 * with a zone (`endpoint = [fe80::2%eth0]:51820`, or %3) is sent with that interface's index as
 * sin6_scope_id while no source is known, as wireguard-go does.
 *
 * Native surface (libc). Layouts and constants are identical on x86_64 and arm64 Linux (LP64,
 * little-endian; both use asm-generic socket.h numbers and the generic struct layouts):
 *   socket(AF_INET = 2 | AF_INET6 = 10, SOCK_DGRAM = 2 | SOCK_NONBLOCK = 0x800 | SOCK_CLOEXEC = 0x80000, 0)
 *   setsockopt(fd, level, name, const int *value, 4)
 *       SOL_SOCKET = 1:   SO_SNDBUF 7, SO_RCVBUF 8, SO_SNDBUFFORCE 32, SO_RCVBUFFORCE 33,
 *                         SO_MARK 36, SO_RXQ_OVFL 40
 *       IPPROTO_IP = 0:   IP_PKTINFO 8
 *       IPPROTO_IPV6 = 41: IPV6_V6ONLY 26, IPV6_RECVPKTINFO 49, IPV6_PKTINFO 50 (the cmsg type)
 *   getsockopt(fd, level, name, int *value, socklen_t *len)
 *   bind(fd, const struct sockaddr *, socklen_t)   getsockname(fd, struct sockaddr *, socklen_t *)
 *   recvmmsg(fd, struct mmsghdr *vec, unsigned vlen, int flags = 0, struct timespec *timeout = NULL)
 *   sendmsg(fd, const struct msghdr *, int flags = 0)
 *   poll(struct pollfd *, nfds, -1)  struct pollfd { int fd; short events; short revents } (8 bytes)
 *   eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)   write(fd, u64 1, 8)   close(fd)
 *   structs: socket-abi.ts (sockaddr, msghdr, mmsghdr, cmsghdr), pktinfo.ts (in_pktinfo, in6_pktinfo);
 *   SO_RXQ_OVFL cmsg data: u32 dropped count (CMSG_SPACE 24)
 *   errno values (from koffi.os.errno at run time): EINTR, EAGAIN, EINVAL, EADDRINUSE,
 *   EADDRNOTAVAIL, EAFNOSUPPORT, ENETUNREACH, ENOBUFS, EPERM, EBADF.
 * Pointers inside the structs are addresses in a SharedArrayBuffer (libc.ts: addressOf).
 */
import type { Worker } from 'node:worker_threads';
import { ConfigError, WireweaveError } from '../../core/errors.ts';
import { errno, sysError } from '../errno.ts';
import type { Bind, BindEndpoint, BindReceiver } from '../bind.ts';
import { EndpointCache } from '../endpoint-address.ts';
import { tryParseIp } from '../../core/ip-address.ts';
import { SOL_UDP, UDP_GRO } from './gso.ts';
import { EFD_CLOEXEC, EFD_NONBLOCK, libc, wake } from './libc.ts';
import type { Libc } from './libc.ts';
import { IP_PKTINFO, IPV6_RECVPKTINFO } from './pktinfo.ts';
import { checkSlots, controlBlock, HEAD, MIN_ITEM_BYTES, pumpRing, release, stop, throwLater } from './ring.ts';
import {
  AF_INET, AF_INET6, IPPROTO_IP, IPPROTO_IPV6, IPV6_V6ONLY, SO_MARK, SO_RCVBUF, SO_RCVBUFFORCE, SO_RXQ_OVFL, SO_SNDBUF, SO_SNDBUFFORCE,
  SOCK_CLOEXEC, SOCK_DGRAM, SOCK_NONBLOCK, SOCKADDR_IN, SOCKADDR_IN6, SOL_SOCKET,
} from './socket-abi.ts';
import { ReceivedEndpoints } from './received-endpoints.ts';
import { FD0, GEN, H_GSO, H_LEN, HDR_SIZE, NFDS, OVFL, QUIT, RX_ERRORS, STOPPED, UDP_SLOT_SIZE, udpRingLayout, WAKE_FD } from './udp-ring.ts';
import type { UdpReceiverData, UdpReceiverMessage } from './udp-ring.ts';
import { UdpSender } from './udp-sender.ts';
import type { SendCounters } from './seal-ring.ts';
import { DEFAULT_SEAL_SLOTS, SealPipeline } from './seal-pipeline.ts';
import { sodiumCrypto } from '../../crypto/index.ts';
import type { TransportReservation } from '../../core/endpoint.ts';
import { startWorker } from '../worker.ts';

export interface LinuxBindOptions {
  /** Ring slots between the receiving thread and the main thread; a power of two (default 256). */
  ringSlots?: number;
  /** Datagrams per recvmmsg() call (default 64). */
  batch?: number;
  /** Socket buffer size asked for (default 7 MiB, as wireguard-go). */
  socketBuffer?: number;
  /** Told when a sticky source address was refused by the kernel and the datagram went without it. */
  onSourceCleared?: (endpoint: BindEndpoint, cleared: BindEndpoint, errno: string) => void;
  /** Told about receive failures (default: process.emitWarning). */
  onError?: (err: Error) => void;
  /** Send bursts to one endpoint as one UDP_SEGMENT sendmsg (default true; off by itself if the kernel refuses). */
  gso?: boolean;
  /** Let the kernel coalesce received datagrams of a flow (UDP_GRO; default true). */
  gro?: boolean;
  /**
   * Threads that seal transport messages and send them (seal-pipeline.ts; default 0: the
   * caller's thread seals). They need sodium-native; without it the bind seals nothing itself.
   */
  sealWorkers?: number;
}

export interface LinuxBindStats extends SendCounters {
  /** Datagrams handed to the receiver. */
  rxPackets: number;
  /** Datagrams the kernel dropped because a socket buffer was full (SO_RXQ_OVFL), this open. */
  rxKernelDropped: number;
  /** Receive calls that failed for a reason other than EAGAIN/EINTR. */
  rxErrors: number;
}

const DEFAULT_SOCKET_BUFFER = 7 << 20;
/** Each slot can hold a 64 KiB GRO batch (about 45 packets), and its pages stay resident once
 * used: 256 slots bound that memory to 16 MiB and still queue thousands of packets. */
const DEFAULT_SLOTS = 256;
const DEFAULT_BATCH = 64;


/** The receiving thread and what the main thread waits for from it. */
interface ReceiverThread {
  worker: Worker;
  /** Exited, crashed or told to quit: the next open starts a new one. */
  dead: boolean;
  /** The open waiting for the thread's 'ready'. */
  pending: { gen: number; session: Session; resolve: () => void; reject: (err: Error) => void } | undefined;
  /** The open being shut down (opens and closes run one at a time): resolved by the thread's 'stopped' for it, or its death. */
  stopping: { gen: number; resolve: () => void } | undefined;
  exited: Promise<void>;
}

/** One open(): the sockets, the ring and the receiving thread. */
class Session {
  readonly fds: number[];
  readonly wakeFd: number;
  readonly sab: SharedArrayBuffer;
  readonly ctrl: Int32Array;
  readonly hdr8: Uint8Array;
  readonly hdr16: Uint16Array;
  readonly hdr32: Int32Array;
  readonly dataOffset: number;
  readonly mask: number;
  receiver: BindReceiver | undefined;
  /** Which open this is for the receiver thread (GEN), once it serves it. */
  gen = 0;
  tail = 0;

  /** `ring`: the previous open's ring (its receiver thread has finished with it), reused so a re-open allocates nothing. */
  constructor(fds: number[], wakeFd: number, slots: number, receiver: BindReceiver, ring?: SharedArrayBuffer) {
    this.fds = fds;
    this.wakeFd = wakeFd;
    this.receiver = receiver;
    this.mask = slots - 1;
    const { hdrOffset, dataOffset, bytes } = udpRingLayout(slots);
    this.dataOffset = dataOffset;
    // A fresh 16 MiB ring per open left the old one resident until V8 collected it (a +15 MiB
    // RSS step at each listen-port change in the soak test). Its size is the bind's (`slots`
    // is fixed), and the receiving thread holds on to it.
    this.sab = ring ?? new SharedArrayBuffer(bytes);
    this.ctrl = controlBlock(this.sab);
    // The thread's words (GEN..) persist across opens: it may be checking them right now.
    this.ctrl.fill(0, 0, GEN);
    release(this.ctrl, 0);
    this.hdr8 = new Uint8Array(this.sab, hdrOffset, slots * HDR_SIZE);
    this.hdr16 = new Uint16Array(this.sab, hdrOffset, (slots * HDR_SIZE) / 2);
    this.hdr32 = new Int32Array(this.sab, hdrOffset, (slots * HDR_SIZE) / 4);
  }
}

export class LinuxUdpBind implements Bind {
  port = 0;
  private readonly slots: number;
  private readonly batch: number;
  private readonly socketBuffer: number;
  private readonly onError: (err: Error) => void;
  private readonly endpoints = new EndpointCache();
  /** Where received datagrams come from, without formatting text per datagram. */
  private readonly received = new ReceivedEndpoints(this.endpoints);
  /** The receive ring, kept across re-opens (listen-port changes). */
  private ring: SharedArrayBuffer | undefined;
  /** The receiving thread, kept across re-opens (it serves the open numbered GEN). */
  private receiverThread: ReceiverThread | undefined;
  private generation = 0;
  private session: Session | null = null;
  private opening: Promise<unknown> = Promise.resolve();
  private mark = 0;
  private lib: Libc | null = null;
  private readonly sender: UdpSender;
  private counters = { rxPackets: 0, rxErrors: 0 };
  private readonly gro: boolean;
  private readonly sealWorkers: number;
  /** The sealing threads: undefined until the first open, null when there are none. */
  private sealers: SealPipeline | null | undefined;
  private kernelDroppedBefore = 0;
  private readonly E = {
    EADDRNOTAVAIL: errno('EADDRNOTAVAIL'), EADDRINUSE: errno('EADDRINUSE'), EAFNOSUPPORT: errno('EAFNOSUPPORT'),
  };

  constructor(opts: LinuxBindOptions = {}) {
    const slots = opts.ringSlots ?? DEFAULT_SLOTS;
    checkSlots(slots);
    const batch = opts.batch ?? DEFAULT_BATCH;
    if (!Number.isInteger(batch) || batch < 1 || batch > 1024) throw new RangeError(`batch must be in 1..1024, not ${batch}`);
    this.slots = slots;
    this.batch = batch;
    this.socketBuffer = opts.socketBuffer ?? DEFAULT_SOCKET_BUFFER;
    this.onError = opts.onError ?? ((err) => process.emitWarning(err));
    this.sender = new UdpSender(this.endpoints, { gso: opts.gso ?? true, onSourceCleared: opts.onSourceCleared });
    this.gro = opts.gro ?? true;
    const sealWorkers = opts.sealWorkers ?? 0;
    if (!Number.isInteger(sealWorkers) || sealWorkers < 0 || sealWorkers > 64) throw new ConfigError('ERR_SEAL_WORKERS', `sealWorkers must be a number of threads in 0..64, not ${sealWorkers}`);
    this.sealWorkers = sealWorkers;
  }

  /** Whether sendTransport can be used now (sealing threads running, sockets open). */
  get sealsTransport(): boolean {
    return this.sender.sealsTransport;
  }

  /** A transport message the sealing threads seal and send (see Bind.sendTransport). */
  sendTransport(packet: Uint8Array, padded: number, r: Readonly<TransportReservation>, to: BindEndpoint): void {
    this.sender.sendTransport(packet, padded, r, to);
  }

  /** Starts the sealing threads at the first open; without sodium-native the bind goes on without. */
  private async startSealers(): Promise<void> {
    if (this.sealWorkers === 0 || this.sealers !== undefined) return;
    this.sealers = null;
    if (!sodiumCrypto) { this.onError(new WireweaveError('ERR_SEAL_THREADS', 'sealing threads need sodium-native; sealing on the main thread')); return; }
    const p = new SealPipeline(this.sealWorkers, DEFAULT_SEAL_SLOTS, this.sender.writeHeaderAt, (to, e) => this.sender.sourceRefused(to, e));
    try {
      await p.ready();
    } catch (err) {
      this.onError(new WireweaveError('ERR_SEAL_THREADS', `sealing threads failed to start (${(err as Error).message}); sealing on the main thread`));
      return;
    }
    this.sealers = p;
    this.sender.attachSealers(p);
  }

  get stats(): LinuxBindStats {
    const s = this.session;
    const ovfl = s ? (Atomics.load(s.ctrl, OVFL) >>> 0) + (Atomics.load(s.ctrl, OVFL + 1) >>> 0) : 0;
    const rxErrors = this.counters.rxErrors + (s ? Atomics.load(s.ctrl, RX_ERRORS) : 0);
    const stats = { ...this.counters, ...this.sender.counters, rxErrors, rxKernelDropped: this.kernelDroppedBefore + ovfl };
    this.sealers?.addCountersTo(stats);
    return stats;
  }

  /** The socket file descriptors of the current open ({ v4, v6 }; -1 when absent), for diagnostics. */
  get fds(): { v4: number; v6: number } {
    const s = this.session;
    return { v4: s?.fds[0] ?? -1, v6: s?.fds[1] ?? -1 };
  }

  async open(port: number, receiver: BindReceiver): Promise<number> {
    const run = this.opening.then(() => this.openNow(port, receiver));
    this.opening = run.catch(() => undefined);
    return run;
  }

  private async openNow(port: number, receiver: BindReceiver): Promise<number> {
    await this.shutdown();
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`invalid port ${port}`);
    const lib = (this.lib ??= libc());
    let fd4 = -1;
    let fd6 = -1;
    let wakeFd = -1;
    try {
      let actual = port;
      for (let attempt = 0; ; attempt++) {
        fd4 = this.newSocket(lib, AF_INET);
        this.bindTo(lib, fd4, AF_INET, port);
        actual = this.boundPort(lib, fd4);
        try {
          fd6 = this.newSocket(lib, AF_INET6);
        } catch (err) {
          if ((err as { errno?: number }).errno !== this.E.EAFNOSUPPORT) throw err;
          break; // no IPv6 in this kernel
        }
        try {
          this.bindTo(lib, fd6, AF_INET6, actual);
          break;
        } catch (err) {
          const e = (err as { errno?: number }).errno;
          lib.close(fd6);
          fd6 = -1;
          if (e === this.E.EADDRINUSE && port === 0 && attempt < 10) { lib.close(fd4); fd4 = -1; continue; }
          if (e !== this.E.EADDRNOTAVAIL && e !== this.E.EAFNOSUPPORT) throw err;
          break; // IPv6 disabled: IPv4 only, like NodeUdpBind
        }
      }
      wakeFd = lib.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
      if (wakeFd < 0) throw sysError('eventfd', lib.errno());
      const fds = fd6 >= 0 ? [fd4, fd6] : [fd4];
      if (this.mark !== 0) for (const fd of fds) this.setMarkOn(lib, fd, this.mark);
      const session = new Session(fds, wakeFd, this.slots, receiver, this.ring);
      this.ring = session.sab;
      this.session = session;
      await this.startSealers();
      this.sender.open(lib, fds);
      this.port = actual;
      fd4 = fd6 = wakeFd = -1; // owned by the session now
      await this.startWorker(session);
      return actual;
    } catch (err) {
      for (const fd of [fd4, fd6, wakeFd]) if (fd >= 0) lib.close(fd);
      await this.shutdown();
      throw err;
    }
  }

  private newSocket(lib: Libc, family: number): number {
    const fd = lib.socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw sysError(`socket(${family === AF_INET ? 'AF_INET' : 'AF_INET6'})`, lib.errno());
    try {
      const opt = (level: number, name: number, value: number, what: string) => {
        if (lib.setsockopt(fd, level, name, Int32Array.of(value), 4) !== 0) throw sysError(`setsockopt(${what})`, lib.errno());
      };
      if (family === AF_INET6) opt(IPPROTO_IPV6, IPV6_V6ONLY, 1, 'IPV6_V6ONLY');
      // Buffers: forced past rmem_max/wmem_max when we may (root), else as large as allowed.
      if (lib.setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, Int32Array.of(this.socketBuffer), 4) !== 0) lib.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, Int32Array.of(this.socketBuffer), 4);
      if (lib.setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, Int32Array.of(this.socketBuffer), 4) !== 0) lib.setsockopt(fd, SOL_SOCKET, SO_SNDBUF, Int32Array.of(this.socketBuffer), 4);
      if (family === AF_INET) opt(IPPROTO_IP, IP_PKTINFO, 1, 'IP_PKTINFO');
      else opt(IPPROTO_IPV6, IPV6_RECVPKTINFO, 1, 'IPV6_RECVPKTINFO');
      lib.setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, Int32Array.of(1), 4); // drop counts: nice to have
      // UDP GRO: the kernel may hand us a batch of one flow's datagrams in one slot (with their
      // segment size in a control message), and a GSO batch from a peer arrives unsplit. Optional.
      if (this.gro) lib.setsockopt(fd, SOL_UDP, UDP_GRO, Int32Array.of(1), 4);
      return fd;
    } catch (err) {
      lib.close(fd);
      throw err;
    }
  }

  private bindTo(lib: Libc, fd: number, family: number, port: number): void {
    const sa = new Uint8Array(family === AF_INET ? SOCKADDR_IN : SOCKADDR_IN6);
    new DataView(sa.buffer).setUint16(0, family, true);
    sa[2] = port >> 8;
    sa[3] = port & 0xff;
    if (lib.bind(fd, sa, sa.length) !== 0) {
      const e = lib.errno();
      throw sysError(`bind ${family === AF_INET ? '0.0.0.0' : '[::]'}:${port}`, e);
    }
  }

  private boundPort(lib: Libc, fd: number): number {
    const sa = new Uint8Array(SOCKADDR_IN6);
    if (lib.getsockname(fd, sa, Uint32Array.of(sa.length)) !== 0) throw sysError('getsockname', lib.errno());
    return (sa[2]! << 8) | sa[3]!;
  }

  /** Hands the session to the receiving thread (started on first use) and waits until it reads. */
  private startWorker(session: Session): Promise<void> {
    let t = this.receiverThread;
    if (!t || t.dead) t = this.receiverThread = this.newReceiverThread(session);
    const ctrl = session.ctrl;
    session.gen = ++this.generation;
    Atomics.store(ctrl, NFDS, session.fds.length);
    session.fds.forEach((fd, k) => Atomics.store(ctrl, FD0 + k, fd));
    Atomics.store(ctrl, WAKE_FD, session.wakeFd);
    const thread = t;
    const ready = new Promise<void>((resolve, reject) => { thread.pending = { gen: session.gen, session, resolve, reject }; });
    Atomics.store(ctrl, GEN, session.gen);
    Atomics.notify(ctrl, GEN);
    return ready;
  }

  private newReceiverThread(session: Session): ReceiverThread {
    // A thread after close() (or a crash) starts from the ring's current GEN, so it waits for
    // the open about to be published, and QUIT is cleared for it.
    Atomics.store(session.ctrl, QUIT, 0);
    const workerData: UdpReceiverData = { sab: session.sab, gen: Atomics.load(session.ctrl, GEN), slots: this.slots, batch: this.batch };
    const worker = startWorker('udp-receiver', { name: 'udp-receiver', workerData });
    const t: ReceiverThread = { worker, dead: false, pending: undefined, stopping: undefined, exited: new Promise((resolve) => worker.once('exit', () => resolve())) };
    const fail = (err: Error) => {
      t.dead = true;
      const p = t.pending;
      t.pending = undefined;
      if (p) p.reject(err);
      else this.onError(err);
      t.stopping?.resolve();
      t.stopping = undefined;
    };
    worker.on('message', (m: UdpReceiverMessage) => {
      if (m.type === 'ready') {
        const p = t.pending;
        if (!p || p.gen !== m.gen) return;
        t.pending = undefined;
        p.resolve();
        const session = p.session;
        pumpRing(session.ctrl, { drain: (budget) => this.drain(session, budget), isOpen: () => session.receiver !== undefined, tail: () => session.tail });
        return;
      }
      if (m.type === 'stopped') {
        if (t.stopping?.gen === m.gen) t.stopping.resolve();
        return;
      }
      const err = sysError('recvmmsg', m.errno);
      if (m.fatal) this.onError(new WireweaveError('ERR_BIND_RECEIVER', `UDP receiver on port ${this.port} stopped: ${err.message}`));
      else this.onError(new WireweaveError('ERR_BIND_RECEIVER', `UDP receive on port ${this.port} failed: ${err.message}`));
    });
    worker.on('error', (e) => fail(new WireweaveError('ERR_BIND_RECEIVER', `UDP receiver thread failed: ${e instanceof Error ? e.message : String(e)}`)));
    worker.once('exit', () => { if (!t.dead) fail(new WireweaveError('ERR_BIND_RECEIVER', 'UDP receiver thread exited')); });
    return t;
  }

  // ---------------------------------------------------------------- receive

  private drain(session: Session, budget: number): number {
    const { ctrl, mask, sab, dataOffset, hdr32 } = session;
    let done = 0;
    let head = Atomics.load(ctrl, HEAD);
    while (session.receiver && done < budget) {
      if (session.tail === head) {
        head = Atomics.load(ctrl, HEAD);
        if (session.tail === head) break;
      }
      const slot = session.tail & mask;
      const h = slot * HDR_SIZE;
      const len = hdr32[(h + H_LEN) >> 2]!;
      done += Math.max(len, MIN_ITEM_BYTES);
      try {
        const from = this.received.at(session.hdr8, session.hdr16, hdr32, h);
        if (from) {
          this.sender.arrived(from);
          const at = dataOffset + slot * UDP_SLOT_SIZE;
          const gso = hdr32[(h + H_GSO) >> 2]!;
          if (gso > 0 && len > gso) {
            // UDP_GRO coalesced datagrams of one flow: segments of `gso` bytes, the last may be shorter.
            for (let off = 0; off < len && session.receiver; off += gso) {
              this.counters.rxPackets++;
              session.receiver(new Uint8Array(sab, at + off, Math.min(gso, len - off)), from);
            }
          } else {
            this.counters.rxPackets++;
            session.receiver(new Uint8Array(sab, at, len), from);
          }
        }
      } catch (e) {
        throwLater(e);
      } finally {
        session.tail = (session.tail + 1) | 0;
        release(ctrl, session.tail);
      }
    }
    return done;
  }

  // ---------------------------------------------------------------- send

  send(datagram: Uint8Array, to: BindEndpoint): void {
    this.sender.send(datagram, to);
  }

  sendBuffer(length: number, to: BindEndpoint): Uint8Array | null {
    return this.sender.sendBuffer(length, to);
  }

  endpointFor(address: string, port: number): BindEndpoint {
    return this.endpoints.get(address, port);
  }

  /** The canonical endpoint for a remote with a local (source) address. */
  endpointWithSource(address: string, port: number, localAddress: string): BindEndpoint {
    const pct = localAddress.indexOf('%');
    if (tryParseIp(pct < 0 ? localAddress : localAddress.slice(0, pct)) === null) throw new ConfigError('ERR_ADDRESS', `not an IP address: ${localAddress}`);
    return this.endpoints.get(address, port, localAddress);
  }

  clearSource(endpoint: BindEndpoint): BindEndpoint {
    return this.endpoints.withoutSource(endpoint);
  }

  /** SO_MARK on both sockets; kept and re-applied when the port changes. Throws on failure. */
  setMark(mark: number): void {
    this.mark = mark >>> 0;
    const s = this.session;
    if (s && this.lib) for (const fd of s.fds) this.setMarkOn(this.lib, fd, this.mark);
  }

  private setMarkOn(lib: Libc, fd: number, mark: number): void {
    if (lib.setsockopt(fd, SOL_SOCKET, SO_MARK, Int32Array.of(mark | 0), 4) !== 0) throw sysError('setsockopt(SO_MARK)', lib.errno());
  }

  /** SO_MARK as the kernel has it on each socket ({ v4, v6 }; -1 when absent), for diagnostics. */
  readMarks(): { v4: number; v6: number } {
    const read = (fd: number) => {
      if (fd < 0 || !this.lib) return -1;
      const v = new Int32Array(1);
      if (this.lib.getsockopt(fd, SOL_SOCKET, SO_MARK, v, Uint32Array.of(4)) !== 0) throw sysError('getsockopt(SO_MARK)', this.lib.errno());
      return v[0]! >>> 0;
    };
    const { v4, v6 } = this.fds;
    return { v4: read(v4), v6: read(v6) };
  }

  async close(): Promise<void> {
    const run = this.opening.then(async () => {
      await this.shutdown();
      // The receiving thread goes with the bind (a re-open keeps it).
      const sealers = this.sealers;
      this.sealers = undefined;
      this.sender.attachSealers(null);
      await sealers?.stop();
      const t = this.receiverThread;
      this.receiverThread = undefined;
      if (t && !t.dead && this.ring) {
        t.dead = true; // its exit is expected now
        const ctrl = controlBlock(this.ring);
        Atomics.store(ctrl, QUIT, 1);
        Atomics.notify(ctrl, GEN);
        await t.exited;
      }
    });
    this.opening = run.catch(() => undefined);
    return run;
  }

  private async shutdown(): Promise<void> {
    const s = this.session;
    if (!s) return;
    this.sender.close(); // what this task already sent leaves before the sockets close
    this.session = null;
    await this.sender.drained(); // and what the sealing threads hold
    s.receiver = undefined;
    const lib = this.lib!;
    const t = this.receiverThread;
    if (t && !t.dead && s.gen !== 0) {
      // The thread finishes with this open (and says so) before its sockets close: an fd
      // closed under its poll() could be reused by the next open's socket.
      const stopped = new Promise<void>((resolve) => { t.stopping = { gen: s.gen, resolve }; });
      stop(s.ctrl);
      wake(lib, s.wakeFd);
      if (Atomics.load(s.ctrl, STOPPED) !== s.gen) await stopped;
      t.stopping = undefined;
    }
    Atomics.notify(s.ctrl, HEAD); // settles a pending waitAsync so the pump finishes
    this.kernelDroppedBefore += (Atomics.load(s.ctrl, OVFL) >>> 0) + (Atomics.load(s.ctrl, OVFL + 1) >>> 0);
    this.counters.rxErrors += Atomics.load(s.ctrl, RX_ERRORS);
    for (const fd of [...s.fds, s.wakeFd]) lib.close(fd);
    this.port = 0;
  }
}
