/**
 * The UDP receiver's ring (see ring.ts), shared by bind.ts and its receiver thread
 * (udp-receiver.ts). After the control block come the slot headers, then recvmmsg's
 * mmsghdr/iovec vector (one entry per slot, pointing into the ring, built once by the thread),
 * then the page-aligned 64 KiB data slots. Each slot header holds what recvmmsg fills in (the
 * source sockaddr, the control messages) and what the thread parses out of them.
 *
 * The thread and the ring outlive re-opens (listen-port changes; a thread per open leaked
 * koffi's per-thread call memory, ~3 MiB of address space and ~85 KiB resident per change):
 * control words 4-7 and TAIL belong to one open, 8-15 to the thread.
 */
import { CTRL_BYTES, FIRST_USER_WORD, PAGE } from './ring.ts';
import { IOVEC, MMSGHDR } from './socket-abi.ts';

/** Failed recvmmsg calls, this open. */
export const RX_ERRORS = FIRST_USER_WORD;
/** OVFL + k: the SO_RXQ_OVFL count last seen on socket k (0: IPv4, 1: IPv6). */
export const OVFL = FIRST_USER_WORD + 1;
/** First word the thread keeps across opens: everything before it is cleared by an open. */
export const GEN = 8; // written by the main thread: the open the thread is to serve (1, 2, ...)
export const STOPPED = 9; // written by the thread: the last open it has finished with
export const QUIT = 10; // set by close(): the thread exits
export const NFDS = 11; // the open's sockets: how many, then their fds
export const FD0 = 12; // FD0 + k
export const WAKE_FD = 14; // the open's eventfd (close() and re-open wake a poll() with it)

/** Every slot takes the largest UDP payload, so a datagram is never truncated. */
export const UDP_SLOT_SIZE = 65536;

// Slot header (bytes): what recvmmsg fills in, then what the thread parses out of it.
export const HDR_SIZE = 160;
export const H_NAME = 0; // sockaddr_in / sockaddr_in6 (32 bytes reserved)
export const H_CONTROL = 32; // control messages
export const CONTROL_SIZE = 96; // CMSG_SPACE(in6_pktinfo) 40 + CMSG_SPACE(u32) 24 (SO_RXQ_OVFL) + 24 (UDP_GRO)
export const H_LEN = 128; // int32 datagram length (of all segments together when UDP_GRO coalesced them)
export const H_LOCAL_FAMILY = 132; // int32 4, 6 or 0 (no PKTINFO)
export const H_LOCAL = 136; // local address, 4 or 16 bytes
export const H_IFINDEX = 152; // int32 interface it arrived on
export const H_GSO = 156; // int32 segment size when UDP_GRO coalesced several datagrams, else 0

/** Where things are in a ring of `slots` slots (bytes from its start). */
export interface UdpRingLayout {
  slots: number;
  hdrOffset: number;
  /** The mmsghdr vector, then the iovec vector. */
  vecOffset: number;
  dataOffset: number;
  bytes: number;
}

export function udpRingLayout(slots: number): UdpRingLayout {
  const hdrOffset = CTRL_BYTES;
  const vecOffset = hdrOffset + slots * HDR_SIZE;
  const dataOffset = Math.ceil((vecOffset + slots * (MMSGHDR + IOVEC)) / PAGE) * PAGE;
  return { slots, hdrOffset, vecOffset, dataOffset, bytes: dataOffset + slots * UDP_SLOT_SIZE };
}

/** What the receiver thread is started with (its workerData). */
export interface UdpReceiverData {
  sab: SharedArrayBuffer;
  /** GEN when it starts: it waits for the next open. */
  gen: number;
  slots: number;
  /** Datagrams per recvmmsg() call. */
  batch: number;
}

/** Messages from the receiver thread. */
export type UdpReceiverMessage = { type: 'ready'; gen: number } | { type: 'stopped'; gen: number } | { type: 'error'; errno: number; fatal: boolean };
