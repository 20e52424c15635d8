/**
 * The UDP receiver thread (started by bind.ts through worker.ts; workerData: UdpReceiverData).
 * It builds one mmsghdr + iovec per ring slot (pointing at that slot's header and data) once,
 * then serves one open after another: it waits for GEN to change, reads that open's sockets and
 * eventfd from the control words, posts { type: 'ready', gen }, then loops: recvmmsg() on each
 * socket into the free run of slots after `head`, parses the control messages into the slot
 * header, publishes; poll()s when every socket read says EAGAIN (or came back short), then reads
 * the ones it reports, after a 50 µs wait when wake-ups come faster than 20,000 a second;
 * waits on TAIL while the ring is full (the socket buffers hold the burst meanwhile). When STOP
 * is set it stores GEN in STOPPED, posts { type: 'stopped', gen } and waits for the next open.
 * It exits on QUIT.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { errno } from '../errno.ts';
import { SOL_UDP, UDP_GRO } from './gso.ts';
import { libc, POLLFD_SIZE, POLLIN } from './libc.ts';
import { IP_PKTINFO, IPV6_PKTINFO } from './pktinfo.ts';
import { controlBlock, HEAD, publish, STOP, TAIL, waitForRoom } from './ring.ts';
import {
  IPPROTO_IP, IPPROTO_IPV6, MMSG_LEN, MMSGHDR, IOVEC, MSG_CONTROL, MSG_CONTROLLEN, MSG_FLAGS, MSG_IOV, MSG_IOVLEN, MSG_NAME, MSG_NAMELEN,
  SOCKADDR_IN6, SOL_SOCKET, SO_RXQ_OVFL,
} from './socket-abi.ts';
import {
  CONTROL_SIZE, FD0, GEN, H_CONTROL, H_GSO, H_IFINDEX, H_LEN, H_LOCAL, H_LOCAL_FAMILY, H_NAME, HDR_SIZE, NFDS, OVFL, QUIT, RX_ERRORS, STOPPED,
  UDP_SLOT_SIZE, udpRingLayout, WAKE_FD,
} from './udp-ring.ts';
import type { UdpReceiverData, UdpReceiverMessage } from './udp-ring.ts';

/** Between opens, how often QUIT is looked at even without a notify. */
const QUIT_CHECK_MS = 100;
const d = workerData as UdpReceiverData;
const lib = libc();
const EAGAIN = errno('EAGAIN');
const EINTR = errno('EINTR');
const EBADF = errno('EBADF');
const ENOTSOCK = errno('ENOTSOCK');
const { slots, batch } = d;
const { hdrOffset, vecOffset, dataOffset } = udpRingLayout(slots);
const ctrl = controlBlock(d.sab);
const u8 = new Uint8Array(d.sab);
const i32 = new Int32Array(d.sab);
const base = lib.addressOf(u8);
const mmsgAt = vecOffset;
const iovAt = vecOffset + slots * MMSGHDR;
{
  const view = new DataView(d.sab);
  for (let i = 0; i < slots; i++) {
    const m = mmsgAt + i * MMSGHDR, v = iovAt + i * IOVEC, h = hdrOffset + i * HDR_SIZE;
    view.setBigUint64(m + MSG_NAME, BigInt(base + h + H_NAME), true);
    view.setBigUint64(m + MSG_IOV, BigInt(base + v), true);
    view.setBigUint64(m + MSG_IOVLEN, 1n, true);
    view.setBigUint64(m + MSG_CONTROL, BigInt(base + h + H_CONTROL), true);
    view.setBigUint64(v, BigInt(base + dataOffset + i * UDP_SLOT_SIZE), true); // iov_base
    view.setBigUint64(v + 8, BigInt(UDP_SLOT_SIZE), true); // iov_len
  }
}
// One open's sockets (at most two) and its eventfd, set by begin(): struct pollfd each.
const fds = [-1, -1];
/**
 * Socket k may hold datagrams: set for every socket poll() reports (readable or in error), and
 * cleared when a read says EAGAIN (or fails). At a few datagrams per wake-up this spares the
 * reads of the socket poll did not report, which only said EAGAIN.
 */
const readable = [true, true];
let nfds = 0;
const pfdBuf = new ArrayBuffer(POLLFD_SIZE * 3);
const pfd32 = new Int32Array(pfdBuf);
const pfd16 = new Int16Array(pfdBuf);
const pfd = new Uint8Array(pfdBuf);
const mask = slots - 1;
let head = 0;
/**
 * Wake-up moderation (see serve). A flood of small datagrams woke this thread and the main
 * thread for one or two datagrams at a time: ~22 µs of CPU a datagram at 20,000/s. Waiting
 * MODERATION_MS when wake-ups come closer than MODERATE_BELOW_MS (> 20,000/s) lets one wake-up
 * serve several (bench/flood-cost.ts). A TCP stream's wake-ups are further apart (its data comes
 * as GRO batches), so it is not delayed (bench: no change in TCP throughput or CPU per GB).
 */
const MODERATE_BELOW_MS = 0.05;
const MODERATION_MS = 0.05;
/** A word nobody notifies: Atomics.wait on it is a sleep. */
const nap = new Int32Array(new SharedArrayBuffer(4));
let lastWake = -Infinity;

function post(m: UdpReceiverMessage): void {
  parentPort!.postMessage(m);
}

function begin(): void {
  nfds = Atomics.load(ctrl, NFDS);
  for (let k = 0; k < nfds; k++) {
    fds[k] = Atomics.load(ctrl, FD0 + k);
    pfd32[2 * k] = fds[k]!;
    pfd16[4 * k + 2] = POLLIN;
  }
  pfd32[2 * nfds] = Atomics.load(ctrl, WAKE_FD);
  pfd16[4 * nfds + 2] = POLLIN;
  readable[0] = nfds > 0;
  readable[1] = nfds > 1;
  head = Atomics.load(ctrl, HEAD);
}

/** Fills the slot header from what recvmmsg wrote: length, local address and interface (PKTINFO), GRO size; socket k's drop count. */
function parse(slot: number, k: number): void {
  const m = (mmsgAt + slot * MMSGHDR) >> 2;
  const h = hdrOffset + slot * HDR_SIZE;
  i32[(h + H_LEN) >> 2] = i32[m + (MMSG_LEN >> 2)]!;
  const clen = i32[m + (MSG_CONTROLLEN >> 2)]!; // low word
  let lf = 0, ifindex = 0, off = 0, gso = 0;
  while (off + 16 <= clen) {
    const c = h + H_CONTROL + off;
    const len = i32[c >> 2]!, level = i32[(c + 8) >> 2]!, type = i32[(c + 12) >> 2]!;
    if (len < 16 || off + len > CONTROL_SIZE) break;
    if (level === IPPROTO_IP && type === IP_PKTINFO && len >= 28) { // ipi_ifindex, ipi_spec_dst
      ifindex = i32[(c + 16) >> 2]!;
      i32[(h + H_LOCAL) >> 2] = i32[(c + 20) >> 2]!;
      lf = 4;
    } else if (level === IPPROTO_IPV6 && type === IPV6_PKTINFO && len >= 36) { // ipi6_addr, ipi6_ifindex
      u8.copyWithin(h + H_LOCAL, c + 16, c + 32);
      ifindex = i32[(c + 32) >> 2]!;
      lf = 6;
    } else if (level === SOL_SOCKET && type === SO_RXQ_OVFL && len >= 20) {
      Atomics.store(ctrl, OVFL + k, i32[(c + 16) >> 2]!);
    } else if (level === SOL_UDP && type === UDP_GRO && len >= 18) { // int (or u16) segment size
      gso = (len >= 20 ? i32[(c + 16) >> 2]! : u8[c + 16]! | (u8[c + 17]! << 8)) & 0xffff;
    }
    off += (len + 7) & ~7;
  }
  const l = (h + H_LOCAL) >> 2;
  if (lf === 0) i32[l] = 0;
  if (lf !== 6) { i32[l + 1] = 0; i32[l + 2] = 0; i32[l + 3] = 0; }
  i32[(h + H_LOCAL_FAMILY) >> 2] = lf;
  i32[(h + H_IFINDEX) >> 2] = ifindex;
  i32[(h + H_GSO) >> 2] = gso;
}

/** Serves one open until STOP (or a fatal error), then reports it stopped. */
function serve(gen: number): void {
  begin();
  post({ type: 'ready', gen });
  for (;;) {
    if (Atomics.load(ctrl, STOP) !== 0) break;
    let got = 0, full = false, fatal = false;
    for (let k = 0; k < nfds; k++) {
      if (!readable[k]) continue;
      const tail = Atomics.load(ctrl, TAIL);
      const free = slots - ((head - tail) | 0);
      if (free <= 0) { full = true; break; }
      const start = head & mask;
      const count = Math.min(batch, free, slots - start);
      for (let i = 0; i < count; i++) {
        const m = (mmsgAt + (start + i) * MMSGHDR) >> 2;
        i32[m + (MSG_NAMELEN >> 2)] = SOCKADDR_IN6;
        i32[m + (MSG_CONTROLLEN >> 2)] = CONTROL_SIZE;
        i32[m + (MSG_FLAGS >> 2)] = 0;
      }
      const n = lib.recvmmsg(fds[k]!, base + mmsgAt + start * MMSGHDR, count, 0, 0);
      if (n > 0) {
        for (let i = 0; i < n; i++) parse(start + i, k);
        head = (head + n) | 0;
        publish(ctrl, head);
        got += n;
        // Fewer than asked for: the queue was empty. poll() (level-triggered) says when the
        // next one comes, which spares a recvmmsg that would only say EAGAIN.
        if (n < count) readable[k] = false;
        continue;
      }
      const e = lib.errno();
      if (e === EINTR) continue;
      readable[k] = false; // after an error too: poll() says whether another one waits
      if (n === 0 || e === EAGAIN) continue;
      const errors = Atomics.add(ctrl, RX_ERRORS, 1) + 1;
      if (e === EBADF || e === ENOTSOCK) { fatal = true; post({ type: 'error', errno: e, fatal: true }); break; }
      if ((errors & (errors - 1)) === 0) post({ type: 'error', errno: e, fatal: false }); // 1st, 2nd, 4th, ...: no storm
    }
    if (fatal) break;
    if (full) {
      // Ring full: stop reading (the socket buffers hold the burst) until the main thread frees slots.
      const tail = Atomics.load(ctrl, TAIL);
      if (slots - ((head - tail) | 0) > 0) continue;
      waitForRoom(ctrl, tail, 100);
      continue;
    }
    if (got > 0) continue;
    if (readable[0] || readable[1]) continue;
    for (let k = 0; k <= nfds; k++) pfd16[4 * k + 3] = 0;
    if (lib.poll(pfd, nfds + 1, -1) < 0) {
      const pe = lib.errno();
      if (pe === EINTR) continue;
      post({ type: 'error', errno: pe, fatal: true });
      break;
    }
    for (let k = 0; k < nfds; k++) readable[k] = pfd16[4 * k + 3] !== 0;
    // Wake-ups closer together than MODERATE_BELOW_MS (small datagrams at a high rate, a flood):
    // wait MODERATION_MS before reading, so one wake-up here and in the main thread serves several.
    const now = performance.now();
    if (now - lastWake < MODERATE_BELOW_MS) Atomics.wait(nap, 0, 0, MODERATION_MS);
    lastWake = now;
  }
  Atomics.store(ctrl, STOPPED, gen);
  post({ type: 'stopped', gen });
}

let gen = d.gen;
for (;;) {
  if (Atomics.load(ctrl, QUIT) !== 0) break;
  const next = Atomics.load(ctrl, GEN);
  // QUIT is not the word waited on: its notify, coming between the check above and this wait,
  // would be lost and close() would wait for this thread for ever. The timeout bounds that.
  if (next === gen) { Atomics.wait(ctrl, GEN, gen, QUIT_CHECK_MS); continue; }
  gen = next;
  serve(gen);
}
