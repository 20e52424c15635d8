/**
 * UDP segmentation offloads (Linux ≥ 4.18 / 5.0): one sendmsg with a UDP_SEGMENT control
 * message carries a batch of equal-sized datagrams (the last may be shorter) that the kernel
 * cuts up, so its UDP/IP path runs once per batch (GSO); with UDP_GRO on, one received slot may
 * hold several datagrams of a flow, with their size in a control message (GRO).
 */
import { CMSG_HDR, cmsgSpace } from './socket-abi.ts';

export const SOL_UDP = 17;
/** cmsg type (u16 segment size) and socket option. */
const UDP_SEGMENT = 103;
/** Socket option, and the cmsg type that gives the segment size of a coalesced datagram. */
export const UDP_GRO = 104;
/** The kernel's UDP_MAX_SEGMENTS. */
export const GSO_MAX_SEGMENTS = 64;
/** Largest UDP payload of one GSO send (65535 − IPv6 header − UDP header, rounded down). */
export const GSO_MAX_BYTES = 65000;

/** Writes a UDP_SEGMENT control message at byte `at` of `w`'s buffer; returns its CMSG_SPACE. */
export function writeSegmentSize(w: Int32Array, at: number, segmentSize: number): number {
  const i = at >> 2;
  w[i] = CMSG_HDR + 2; w[i + 1] = 0;
  w[i + 2] = SOL_UDP; w[i + 3] = UDP_SEGMENT;
  w[i + 4] = segmentSize; // u16 gso_size, little-endian
  return cmsgSpace(2);
}

