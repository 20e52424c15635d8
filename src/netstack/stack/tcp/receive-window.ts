/**
 * The receive window we announce (RFC 9293 §3.8.6, RFC 7323 §2.3): the buffer not held by
 * delivered-but-unreleased bytes — the application's backpressure — opened only in steps of
 * min(buffer/2, MSS) (receiver SWS avoidance, §3.8.6.2.2), scaled, and never moving the right
 * edge left (the field is rounded up for that).
 */
import { seqAdd, seqDiff, seqGt } from './seq.ts';

export interface ReceiveSide {
  readonly rcvBufSize: number;
  readonly unreleased: number;
  readonly rcvNxt: number;
  /** Right edge announced so far. */
  readonly rcvAdv: number;
  readonly rcvMss: number;
  readonly rcvWscale: number;
}

/** The window field to send and the right edge it announces. */
export function announceWindow(r: ReceiveSide): { field: number; rcvAdv: number } {
  const free = Math.max(0, r.rcvBufSize - r.unreleased);
  const cur = Math.max(0, seqDiff(r.rcvAdv, r.rcvNxt));
  const wnd = free - cur >= Math.min(Math.floor(r.rcvBufSize / 2), r.rcvMss) ? free : cur;
  const scale = 2 ** r.rcvWscale;
  const field = Math.min(65535, Math.ceil(wnd / scale));
  const right = seqAdd(r.rcvNxt, field * scale);
  return { field, rcvAdv: seqGt(right, r.rcvAdv) ? right : r.rcvAdv };
}

/**
 * After the application released bytes: is a window update worth a segment of its own? Only
 * when the window at least doubles by a segment or more (as Linux does); smaller openings ride
 * on the next ACK.
 */
export function windowUpdateDue(r: ReceiveSide): boolean {
  const free = r.rcvBufSize - r.unreleased;
  const cur = Math.max(0, seqDiff(r.rcvAdv, r.rcvNxt));
  return free >= 2 * cur && free - cur >= r.rcvMss;
}
