/**
 * Linux TUN device for the device layer, through koffi (prebuilt FFI; Node has no ioctl and
 * cannot poll a TUN fd: `net.Socket({fd})` refuses it and `fs.read` manages only ~60k pps).
 *
 *   const tun = await openLinuxTun('wg%d', { mtu: 1420 });   // tun.name is e.g. "wg0"
 *   tun.start((packet) => ...);  tun.write(packet);  tun.onClose((reason) => ...);  await tun.close();
 *
 * Like wireguard-go's CreateTUN (tun/tun_linux.go), this creates a non-persistent layer-3 device
 * (IFF_TUN | IFF_NO_PI: every read and write is exactly one bare IP packet), sets its MTU through
 * SIOCSIFMTU on an AF_INET datagram socket and does NOT bring the link up or add addresses:
 * that is `ip` / wg-quick's job. Closing the fd makes the kernel remove the device.
 *
 * Reading happens on a worker thread (tun-reader.ts) that puts each packet straight into a slot
 * of the shared ring (ring.ts, tun-ring.ts); the main thread drains the ring in order and hands
 * the handler a view of the slot, valid only during the call. When the main thread falls behind
 * the reader waits `ringFullWaitMs` (25 ms) for room, then drops, counting `rxDropped`.
 * Writing is one write() per packet on the calling thread, or one per run of a TCP flow's
 * segments with offloads (offload.ts).
 *
 * Deletion: when the interface is deleted (`ip link del`, or its network namespace goes away)
 * the kernel detaches the fd: poll() reports POLLERR and read()/write() fail with EBADFD. Either
 * one fires onClose('deleted') once, stops the reader and closes our fds. Moving the link to
 * another namespace (`ip link set <if> netns <ns>`) keeps the fd attached and working; the
 * kernel sets the link down on the move, so it must be brought up again in the new namespace
 * (the name and MTU travel with it).
 *
 * Native surface (libc; identical on x86_64 and arm64 Linux: both use the asm-generic ioctl
 * encoding, open flags and errno values, and an LP64 `struct ifreq`):
 *   open("/dev/net/tun", O_RDWR|O_NONBLOCK|O_CLOEXEC = 0x2|0x800|0x80000, 0)
 *   ioctl(fd, TUNSETIFF = _IOW('T', 202, int) = 0x400454ca, struct ifreq *)
 *       struct ifreq is 40 bytes: char ifr_name[16] (IFNAMSIZ, NUL-terminated) and a union at
 *       offset 16: short ifr_flags = IFF_TUN 0x0001 | IFF_NO_PI 0x1000 here, int ifr_mtu below.
 *       The kernel writes the actual name back (a "%d" in the name is replaced by a number).
 *   socket(AF_INET = 2, SOCK_DGRAM = 2 | SOCK_CLOEXEC, 0), then
 *   ioctl(sock, SIOCSIFMTU = 0x8922, struct ifreq *)   (ifr_mtu: int32 at offset 16)
 *   eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK = 0x80000 | 0x800)       close() wakes the reader
 *   poll(struct pollfd *, nfds, timeout)   struct pollfd { int fd; short events; short revents }
 *       = 8 bytes; POLLIN 0x1, POLLERR 0x8, POLLHUP 0x10, POLLNVAL 0x20
 *   read(fd, buf, len) / write(fd, buf, len)   one packet per call
 *   close(fd)
 *   errno values used: EINTR 4, EAGAIN 11, EBADFD 77 (taken from koffi.os.errno at run time).
 */
import type { Worker } from 'node:worker_threads';
import { WireweaveError } from '../../core/errors.ts';
import { ViewCache } from '../../core/view-cache.ts';
import { errnoName, errno, sysError } from '../errno.ts';
import type { Tun } from '../tun.ts';
import { libc, O_CLOEXEC, EFD_CLOEXEC, EFD_NONBLOCK, wake } from './libc.ts';
import type { Libc } from './libc.ts';
import { TcpCoalescer, VNET_F_NEEDS_CSUM, VNET_GSO_NONE, VNET_GSO_TCPV4, VNET_GSO_TCPV6, VNET_GSO_ECN, VNET_HDR_LEN, completeChecksum, readVnetHeader, segmentTcp, segmentTcpInPlace } from './offload.ts';
import type { VnetHeader } from './offload.ts';
import { checkSlots, controlBlock, HEAD, MIN_ITEM_BYTES, pumpRing, release, stop, throwLater } from './ring.ts';
import { handOutSparse, HANDED_OUT, SCAN_ITEMS } from './sparse-ahead.ts';
import type { SparseRing } from './sparse-ahead.ts';
import { DROPPED, TUN_SLOT_SIZE, tunDataOffset, tunLengths, tunRingBytes } from './tun-ring.ts';
import type { TunReaderData, TunReaderMessage } from './tun-ring.ts';
import { AF_INET, SOCK_DGRAM } from './socket-abi.ts';
import { startWorker } from '../worker.ts';

export interface LinuxTunOptions {
  /** MTU to set on the new interface (default 1420, as wg-quick). */
  mtu?: number;
  /** Ring slots between the reader thread and the main thread; a power of two (default 256). */
  ringSlots?: number;
  /**
   * How long the reader waits for the main thread when the ring is full before it reads on and
   * drops (default 25 ms). While it waits the kernel's queue (txqueuelen) buffers the burst.
   */
  ringFullWaitMs?: number;
  /**
   * TCP segmentation and checksum offloads (IFF_VNET_HDR + TUNSETOFFLOAD): the kernel sends us
   * 64 KiB TCP super-packets that we cut up, and we write runs of one flow's segments back as one
   * super-packet. Default on (the daemon turns it off for WIREWEAVE_TUN_OFFLOAD=0).
   */
  offload?: boolean;
  /** Largest super-packet our GRO writes (bytes, 1500..65535; default 65535): tuning and diagnosis. */
  groMaxBytes?: number;
}

export interface LinuxTunStats {
  /** Packets handed to the handler. */
  rxPackets: number;
  /**
   * Packets read from the kernel and dropped because the ring stayed full for ringFullWaitMs
   * (packets the kernel drops meanwhile, its queue full, show as TX drops in `ip -s link`).
   */
  rxDropped: number;
  /** Packets accepted by write(). */
  txPackets: number;
  /** Packets write() dropped because the kernel said EAGAIN. */
  txDropped: number;
  /** Packets write() refused for another reason (link down: EIO; malformed: EINVAL; deleted). */
  txErrors: number;
  /** Super-packets read from the kernel and cut into segments (TSO), and the segments they gave. */
  tsoPackets: number;
  tsoSegments: number;
  /** Writes that carried several coalesced segments (GRO), and the segments they carried. */
  groWrites: number;
  groSegments: number;
  /** Reads dropped because their offload header or packet was malformed. */
  rxMalformed: number;
}

const IFNAMSIZ = 16;
const IFREQ_SIZE = 40;
const O_RDWR = 0x2;
const O_NONBLOCK = 0x800;
const TUNSETIFF = 0x400454ca;
const SIOCSIFMTU = 0x8922;
const IFF_TUN = 0x0001;
const IFF_NO_PI = 0x1000;
const IFF_VNET_HDR = 0x4000;
const TUNSETOFFLOAD = 0x400454d0;
const TUN_F_CSUM = 0x01;
const TUN_F_TSO4 = 0x02;
const TUN_F_TSO6 = 0x04;

/** Each slot can hold a 64 KiB TSO/GRO batch (about 45 packets), and its pages stay resident once
 * used: 256 slots bound that memory to 16 MiB and still queue thousands of packets. */
const DEFAULT_SLOTS = 256;
const DEFAULT_FULL_WAIT_MS = 25;

function ifreq(name: string): Uint8Array {
  const bytes = Buffer.from(name, 'utf8');
  if (bytes.length >= IFNAMSIZ) throw new RangeError(`interface name too long (max ${IFNAMSIZ - 1} bytes): ${name}`);
  // The kernel's dev_valid_name(): no '/', ':' or whitespace, not "." or "..".
  if (/[\0/:\s]/.test(name) || name === '.' || name === '..') throw new RangeError(`invalid interface name: ${JSON.stringify(name)}`);
  const ifr = new Uint8Array(IFREQ_SIZE);
  ifr.set(bytes, 0);
  return ifr;
}

function setMtu(lib: Libc, name: string, mtu: number): void {
  const sock = lib.socket(AF_INET, SOCK_DGRAM | O_CLOEXEC, 0);
  if (sock < 0) throw sysError('socket(AF_INET, SOCK_DGRAM)', lib.errno());
  try {
    const ifr = ifreq(name);
    new DataView(ifr.buffer).setInt32(IFNAMSIZ, mtu, true);
    if (lib.ioctl(sock, SIOCSIFMTU, ifr) < 0) throw sysError(`SIOCSIFMTU ${name} ${mtu}`, lib.errno());
  } finally {
    lib.close(sock);
  }
}

/**
 * Creates a TUN interface (`name` may contain "%d"; "" lets the kernel pick "tun%d") with the
 * given MTU, not up and without addresses. Needs CAP_NET_ADMIN and /dev/net/tun.
 */
export async function openLinuxTun(name: string, opts: LinuxTunOptions = {}): Promise<LinuxTun> {
  const mtu = opts.mtu ?? 1420;
  if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) throw new RangeError(`invalid MTU ${mtu}`);
  const slots = opts.ringSlots ?? DEFAULT_SLOTS;
  const fullWaitMs = opts.ringFullWaitMs ?? DEFAULT_FULL_WAIT_MS;
  if (!(fullWaitMs >= 0 && fullWaitMs <= 60_000)) throw new RangeError(`invalid ringFullWaitMs ${fullWaitMs}`);
  checkSlots(slots);
  const ifr = ifreq(name);
  const lib = libc();
  const fd = lib.open('/dev/net/tun', O_RDWR | O_NONBLOCK | O_CLOEXEC, 0);
  if (fd < 0) throw sysError('open /dev/net/tun', lib.errno());
  let wakeFd = -1;
  try {
    const vnet = opts.offload ?? true;
    new DataView(ifr.buffer).setUint16(IFNAMSIZ, IFF_TUN | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0), true);
    if (lib.ioctl(fd, TUNSETIFF, ifr) < 0) throw sysError(`TUNSETIFF ${name}`, lib.errno());
    // Checksum + TSO offloads; if the kernel refuses them we still speak the header (all-zero).
    const tso = vnet && lib.ioctlValue(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) === 0;
    const end = ifr.indexOf(0);
    const actual = Buffer.from(ifr.subarray(0, end < 0 ? IFNAMSIZ : end)).toString('utf8');
    setMtu(lib, actual, mtu);
    wakeFd = lib.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wakeFd < 0) throw sysError('eventfd', lib.errno());
    return new LinuxTun(lib, fd, wakeFd, actual, mtu, slots, fullWaitMs, vnet, tso, opts.groMaxBytes);
  } catch (e) {
    if (wakeFd >= 0) lib.close(wakeFd);
    lib.close(fd);
    throw e;
  }
}

export class LinuxTun implements Tun {
  readonly name: string;
  readonly mtu: number;
  /** Ring slots between the reader thread and the main thread. */
  readonly ringSlots: number;
  private readonly fullWaitMs: number;

  private readonly lib: Libc;
  private fd: number;
  private wakeFd: number;
  private readonly sab: SharedArrayBuffer;
  private readonly ctrl: Int32Array;
  private readonly lens: Int32Array;
  private readonly dataOffset: number;
  private readonly mask: number;
  private tail = 0;
  private draining = false;
  private handler: ((packet: Uint8Array) => void) | undefined;
  private worker: Worker | undefined;
  private workerExited: Promise<void> = Promise.resolve();
  private closeListeners: ((reason: string) => void)[] = [];
  private closedReason: string | undefined;
  private closing: Promise<void> | undefined;
  private rxPackets = 0;
  private txPackets = 0;
  private txDropped = 0;
  private txErrors = 0;
  private readonly EAGAIN = errno('EAGAIN');
  private readonly EBADFD = errno('EBADFD');
  /** Every read and write carries a virtio_net_hdr. */
  readonly vnetHeader: boolean;
  /** The kernel took TUNSETOFFLOAD: reads may be TSO super-packets, writes may be GSO packets. */
  readonly offloads: boolean;
  private readonly vnet: VnetHeader = { flags: 0, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0 };
  private readonly segmentBuffer = new Uint8Array(65536);
  /** Views of the coalescer's buffer for single packets (ACKs, mostly): the same few lengths. */
  private readonly writeViews = new ViewCache(16);
  /** The super-packet's headers while its segments are cut in place (IP + TCP with options). */
  private readonly segmentHeaders = new Uint8Array(128);
  private readonly coalescer: TcpCoalescer;
  private readonly sparseRing: SparseRing;
  private readonly sparseSeen = new Int32Array(SCAN_ITEMS);
  private sparseBytes = 0;
  private flushQueued = false;
  private offloadStats = { tsoPackets: 0, tsoSegments: 0, groWrites: 0, groSegments: 0, rxMalformed: 0 };

  /** Use openLinuxTun(). */
  constructor(lib: Libc, fd: number, wakeFd: number, name: string, mtu: number, slots: number, fullWaitMs: number, vnetHeader = false, offloads = false, groMaxBytes?: number) {
    this.coalescer = new TcpCoalescer(groMaxBytes);
    this.vnetHeader = vnetHeader;
    this.offloads = offloads;
    this.lib = lib;
    this.fd = fd;
    this.wakeFd = wakeFd;
    this.name = name;
    this.mtu = mtu;
    this.ringSlots = slots;
    this.fullWaitMs = fullWaitMs;
    this.mask = slots - 1;
    this.dataOffset = tunDataOffset(slots);
    this.sab = new SharedArrayBuffer(tunRingBytes(slots));
    this.ctrl = controlBlock(this.sab);
    this.lens = tunLengths(this.sab, slots);
    this.sparseRing = { lens: this.lens, bytes: new Uint8Array(this.sab), dataOffset: this.dataOffset, slotSize: TUN_SLOT_SIZE, mask: this.mask, headerLength: vnetHeader ? VNET_HDR_LEN : 0 };
  }

  get stats(): LinuxTunStats {
    return { rxPackets: this.rxPackets, rxDropped: Atomics.load(this.ctrl, DROPPED) >>> 0, txPackets: this.txPackets, txDropped: this.txDropped, txErrors: this.txErrors, ...this.offloadStats };
  }

  start(onPacket: (packet: Uint8Array) => void): void {
    if (this.handler) throw new WireweaveError('ERR_STARTED', `${this.name}: already started`);
    if (this.closing || this.closedReason !== undefined) throw new WireweaveError('ERR_CLOSED', `${this.name}: closed`);
    this.handler = onPacket;
    const workerData: TunReaderData = { fd: this.fd, wakeFd: this.wakeFd, sab: this.sab, slots: this.ringSlots, fullWaitMs: this.fullWaitMs };
    const worker = startWorker('tun-reader', { name: `tun-reader ${this.name}`, workerData });
    this.worker = worker;
    this.workerExited = new Promise((resolve) => worker.once('exit', () => resolve()));
    worker.on('message', (m: TunReaderMessage) => {
      // The reader published everything it read before it posted: hand that out first.
      if (!this.draining) this.drain(Infinity);
      if (m.type === 'deleted' || m.errno === this.EBADFD) this.lost('deleted');
      else this.lost(`read failed: ${errnoName(m.errno)}`);
    });
    worker.on('error', (e) => this.lost(`reader failed: ${e instanceof Error ? e.message : String(e)}`));
    pumpRing(this.ctrl, { drain: (budget) => this.drain(budget), isOpen: () => this.handler !== undefined, tail: () => this.tail });
  }

  write(packet: Uint8Array): boolean {
    if (this.fd < 0) {
      this.txErrors++;
      return false;
    }
    if (!this.vnetHeader) return this.writeRaw(packet, 1);
    const c = this.coalescer;
    if (this.offloads) {
      // Segments of one TCP flow written in one task leave as one GSO write (in a microtask).
      if (c.count > 0 && c.append(packet)) return true;
      this.flush();
      if (c.start(packet)) {
        if (!this.flushQueued) { this.flushQueued = true; queueMicrotask(this.flushTask); }
        return true;
      }
    }
    if (packet.length > 65535) { this.txErrors++; return false; }
    const b = c.buffer; // idle now (flushed above): borrow it to put the empty header in front
    b.fill(0, 0, VNET_HDR_LEN);
    b.set(packet, VNET_HDR_LEN);
    return this.writeRaw(this.writeViews.view(b, 0, VNET_HDR_LEN + packet.length), 1);
  }

  private readonly flushTask = (): void => {
    this.flushQueued = false;
    this.flush();
  };

  private flush(): void {
    const c = this.coalescer;
    if (c.count === 0) return;
    const segments = c.count;
    const out = c.finish();
    if (this.fd < 0) { this.txErrors += segments; return; }
    if (this.writeRaw(out, segments) && segments > 1) {
      this.offloadStats.groWrites++;
      this.offloadStats.groSegments += segments;
    }
  }

  /** One write() of `bytes` carrying `packets` packets; counts the outcome. */
  private writeRaw(bytes: Uint8Array, packets: number): boolean {
    const n = this.lib.write(this.fd, bytes, bytes.length);
    if (n === bytes.length) {
      this.txPackets += packets;
      return true;
    }
    const e = n < 0 ? this.lib.errno() : 0;
    if (e === this.EAGAIN) this.txDropped += packets;
    else this.txErrors += packets;
    if (e === this.EBADFD) this.lost('deleted');
    return false;
  }

  onClose(listener: (reason: string) => void): void {
    if (this.closedReason !== undefined) {
      const reason = this.closedReason;
      queueMicrotask(() => listener(reason));
    } else this.closeListeners.push(listener);
  }

  /** Stops the reader thread and closes the TUN file descriptor. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  /** The interface went away (or the reader failed): tell the listeners once and release everything. */
  private lost(reason: string): void {
    if (this.closedReason !== undefined || this.closing) return;
    this.closedReason = reason;
    const listeners = this.closeListeners;
    this.closeListeners = [];
    void this.close();
    for (const l of listeners) l(reason);
  }

  private async shutdown(): Promise<void> {
    this.handler = undefined;
    if (this.fd >= 0) this.flush();
    if (this.worker) {
      stop(this.ctrl);
      wake(this.lib, this.wakeFd); // out of poll()
      await this.workerExited;
      this.worker = undefined;
    }
    Atomics.notify(this.ctrl, HEAD); // settles a pending waitAsync so the pump can finish
    const { fd, wakeFd } = this;
    this.fd = -1;
    this.wakeFd = -1;
    if (wakeFd >= 0) this.lib.close(wakeFd);
    if (fd >= 0) this.lib.close(fd);
  }

  /**
   * Hands out packets from the ring until their bytes reach `budget` (see RingConsumer.drain),
   * in order, except that each time more of the ring becomes visible the small packets of other
   * flows waiting behind a backlog go first (sparse-ahead.ts). A slot is released as soon as the
   * in-order pass reaches it.
   */
  private drain(budget: number): number {
    const { ctrl, lens, mask } = this;
    let done = 0;
    let head = this.tail;
    this.draining = true;
    try {
      while (this.handler && done < budget) {
        if (this.tail === head) {
          head = Atomics.load(ctrl, HEAD);
          if (this.tail === head) break;
          if (((head - this.tail) | 0) > 2) done += this.handOutSparse(head);
        }
        const slot = this.tail & mask;
        const len = lens[slot]!;
        try {
          if (len !== HANDED_OUT) {
            done += Math.max(len, MIN_ITEM_BYTES);
            this.deliverSlot(slot, len);
          }
        } finally {
          this.tail = (this.tail + 1) | 0;
          release(ctrl, this.tail);
        }
      }
    } finally {
      this.draining = false;
    }
    return done;
  }

  /** Hands out the sparse flows' packets among [tail, head); returns their bytes as drain counts them. */
  private handOutSparse(head: number): number {
    this.sparseBytes = 0;
    handOutSparse(this.sparseRing, this.tail, head, this.sparseSeen, this.handOutSparseSlot);
    return this.sparseBytes;
  }

  /** handOutSparse's callback, made once: the drain makes no closure per scan. */
  private readonly handOutSparseSlot = (slot: number): void => {
    const len = this.lens[slot]!;
    this.sparseBytes += Math.max(len, MIN_ITEM_BYTES);
    if (this.handler) this.deliverSlot(slot, len);
  };

  /** Hands one slot's packet (or, with offloads, its segments) to the handler. */
  private deliverSlot(slot: number, len: number): void {
    const view = new Uint8Array(this.sab, this.dataOffset + slot * TUN_SLOT_SIZE, len);
    try {
      if (this.vnetHeader) this.deliverOffloaded(view);
      else {
        this.rxPackets++;
        this.handler!(view);
      }
    } catch (e) {
      throwLater(e);
    }
  }

  /** A read with a virtio_net_hdr: finish its checksum, or cut a TSO super-packet into segments. */
  private deliverOffloaded(read: Uint8Array): void {
    const h = this.vnet;
    if (read.length <= VNET_HDR_LEN) { this.offloadStats.rxMalformed++; return; }
    readVnetHeader(read, h);
    const packet = read.subarray(VNET_HDR_LEN);
    const gso = h.gsoType & ~VNET_GSO_ECN;
    if (gso === VNET_GSO_NONE) {
      if ((h.flags & VNET_F_NEEDS_CSUM) !== 0 && !completeChecksum(packet, h.csumStart, h.csumOffset)) { this.offloadStats.rxMalformed++; return; }
      this.rxPackets++;
      this.handler!(packet);
      return;
    }
    if (gso !== VNET_GSO_TCPV4 && gso !== VNET_GSO_TCPV6) { this.offloadStats.rxMalformed++; return; }
    // Segments are cut in the ring slot itself (their payload never moves); headers too long
    // for the template (IPv6 extension headers) take the copying path.
    let n = segmentTcpInPlace(packet, h.csumStart, h.gsoSize, this.segmentHeaders, this.deliverSegment);
    if (n === -2) n = segmentTcp(packet, h.csumStart, h.gsoSize, this.segmentBuffer, this.deliverSegment);
    if (n < 0) { this.offloadStats.rxMalformed++; return; }
    this.offloadStats.tsoPackets++;
    this.offloadStats.tsoSegments += n;
  }

  private readonly deliverSegment = (segment: Uint8Array): void => {
    this.rxPackets++;
    this.handler?.(segment);
  };
}
