/**
 * The TUN reader's ring (see ring.ts), shared by tun.ts and its reader thread (tun-reader.ts):
 * the control block, one int32 length per slot, then the page-aligned slots, each holding the
 * largest possible packet so a read is never truncated whatever the MTU becomes later.
 * Untouched pages of a SharedArrayBuffer are never made resident: a 1420-byte packet costs one
 * page a slot.
 */
import { CTRL_BYTES, FIRST_USER_WORD, PAGE } from './ring.ts';

/** The largest packet plus a virtio_net_hdr, page-aligned. */
export const TUN_SLOT_SIZE = 65536 + 4096;
/** Control word: packets the reader dropped because the ring stayed full. */
export const DROPPED = FIRST_USER_WORD;

/** What the reader thread is started with (its workerData). */
export interface TunReaderData {
  fd: number;
  /** The eventfd close() writes to, to wake the reader out of poll(). */
  wakeFd: number;
  sab: SharedArrayBuffer;
  slots: number;
  /** How long the reader waits for room in a full ring before it reads on and drops. */
  fullWaitMs: number;
}

/** Messages from the reader: the TUN was deleted, or a read or poll failed. */
export type TunReaderMessage = { type: 'error'; errno: number } | { type: 'deleted' };

export function tunRingBytes(slots: number): number {
  return tunDataOffset(slots) + slots * TUN_SLOT_SIZE;
}

export function tunDataOffset(slots: number): number {
  return Math.ceil((CTRL_BYTES + 4 * slots) / PAGE) * PAGE;
}

/** The packet lengths, one a slot. */
export function tunLengths(sab: SharedArrayBuffer, slots: number): Int32Array {
  return new Int32Array(sab, CTRL_BYTES, slots);
}
