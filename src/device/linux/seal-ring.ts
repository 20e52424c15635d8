/**
 * The shared memory between the main thread and the sealing threads (seal-pipeline.ts,
 * sealer.ts). Each sealer has a ring of job slots; a job is a run of transport messages for one
 * endpoint with consecutive counters of one session (or one datagram already sealed), laid out
 * as the sendmsg that will carry it. All sealers share one control block whose TURN word is the
 * sequence number of the next job allowed to reach the socket: jobs are sealed in parallel and
 * sent in the order the main thread made them, so a peer's packets keep their order.
 */
import { GSO_MAX_BYTES } from './gso.ts';

// Shared control words (Int32Array over a small SharedArrayBuffer).
/** Sequence number of the next job to send. */
export const TURN = 0;
/** Set to stop every sealer. */
export const SEAL_STOP = 1;
/** Set once the kernel refused UDP_SEGMENT and one-by-one sends worked. */
export const GSO_OFF = 2;
export const SHARED_BYTES = 64;

// A sealer's ring: control words, then the slots.
export const R_HEAD = 0;
export const R_WAITING = 1;
export const R_TX_PACKETS = 2;
export const R_TX_DROPPED = 3;
export const R_TX_ERRORS = 4;
export const R_GSO_BATCHES = 5;
export const R_SOURCE_CLEARED = 6;
export const R_GSO_REFUSED = 7;
/** On its own cache line: the sealer's count of finished jobs. */
export const R_TAIL = 16;
export const RING_CTRL_BYTES = 128;

// A job slot (byte offsets). Multi-byte fields are little-endian words.
export const J_SEQ = 0;
export const J_FD = 4;
export const J_COUNT = 8;
/** Bytes of every datagram but the last, which may be shorter. */
export const J_SEGMENT = 12;
export const J_BYTES = 16;
export const J_FLAGS = 20;
export const J_INDEX = 24;
export const J_COUNTER_LO = 28;
export const J_COUNTER_HI = 32;
export const J_NAMELEN = 36;
export const J_CONTROLLEN = 40;
export const J_KEY = 48;
export const J_NAME = 80;
export const J_CONTROL = 112;
export const J_MSG = 192;
export const J_IOV = 248;
export const J_DATA = 272;
export const SLOT_BYTES = 65280;
/** Room for datagrams in a slot. */
export const JOB_DATA_BYTES = Math.min(GSO_MAX_BYTES, SLOT_BYTES - J_DATA);

/** J_FLAGS: the datagram is sealed already (a handshake message, a keepalive): only send it. */
export const SEALED = 1;

/** What a sender counts (the main thread's UdpSender, the sealing threads, the bind's sum). */
export interface SendCounters {
  /** Datagrams sendmsg() accepted. */
  txPackets: number;
  /** Datagrams dropped because the socket buffer was full (EAGAIN/ENOBUFS), or every sealer's ring was. */
  txDropped: number;
  /** Datagrams the kernel refused otherwise (no route, closed bind, ...). */
  txErrors: number;
  /** Sends whose sticky source the kernel refused, so they were retried without one. */
  sourceCleared: number;
  /** sendmsg calls that carried several datagrams (UDP_SEGMENT). */
  gsoBatches: number;
  /** 1 once the kernel refused a UDP_SEGMENT send and one-by-one sends worked: GSO is then off. */
  gsoRefused: number;
}

export interface SealerData {
  ring: SharedArrayBuffer;
  shared: SharedArrayBuffer;
  slots: number;
}

export type SealerMessage =
  | { type: 'ready' }
  | { type: 'failed'; message: string }
  | { type: 'sourceRefused'; seq: number; errno: number };

export function ringBytes(slots: number): number {
  return RING_CTRL_BYTES + slots * SLOT_BYTES;
}
