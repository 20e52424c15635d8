/** Sequence-number arithmetic modulo 2^32 (RFC 9293 §3.4; RFC 1982 comparison). */

export function seqAdd(a: number, n: number): number {
  return (a + n) >>> 0;
}

/** a − b as a signed 32-bit distance. */
export function seqDiff(a: number, b: number): number {
  return (a - b) | 0;
}

export function seqLt(a: number, b: number): boolean { return ((a - b) | 0) < 0; }
export function seqLe(a: number, b: number): boolean { return ((a - b) | 0) <= 0; }
export function seqGt(a: number, b: number): boolean { return ((a - b) | 0) > 0; }
export function seqGe(a: number, b: number): boolean { return ((a - b) | 0) >= 0; }

/** seq in [start, start + size). */
function inWindow(seq: number, start: number, size: number): boolean {
  const d = ((seq - start) | 0);
  return d >= 0 && d < size;
}

/**
 * RFC 9293 §3.10.7.4's acceptability table: does a segment of `segLen` sequence numbers at `seq`
 * overlap the receive window? With a zero window only a segment exactly at RCV.NXT is taken (its
 * ACK, RST or FIN counts; data beyond the window is trimmed by the caller).
 */
export function segmentAcceptable(seq: number, segLen: number, rcvNxt: number, rcvWnd: number): boolean {
  if (segLen === 0) return rcvWnd === 0 ? seq === rcvNxt : inWindow(seq, rcvNxt, rcvWnd);
  if (rcvWnd === 0) return seq === rcvNxt;
  return inWindow(seq, rcvNxt, rcvWnd) || inWindow(((seq + segLen - 1) >>> 0), rcvNxt, rcvWnd);
}
