/**
 * A sealing thread (started by seal-pipeline.ts through worker.ts; workerData: SealerData).
 * It takes jobs from its ring in order, writes each transport message's header and seals it in
 * place with libsodium, then waits until the shared TURN word names the job, sends it with one
 * sendmsg (UDP_SEGMENT when it holds several datagrams), and passes the turn on. The key is wiped
 * from the slot once the job is sealed. Exits when SEAL_STOP is set.
 */
import { createRequire } from 'node:module';
import { parentPort, workerData } from 'node:worker_threads';
import { errno } from '../errno.ts';
import { writeSegmentSize } from './gso.ts';
import { libc } from './libc.ts';
import {
  GSO_OFF, J_BYTES, J_CONTROL, J_CONTROLLEN, J_COUNT, J_COUNTER_HI, J_COUNTER_LO, J_DATA, J_FD, J_FLAGS, J_INDEX, J_IOV, J_KEY, J_MSG, J_NAME,
  J_NAMELEN, J_SEGMENT, J_SEQ, R_GSO_BATCHES, R_GSO_REFUSED, R_HEAD, R_SOURCE_CLEARED, R_TAIL, R_TX_DROPPED, R_TX_ERRORS, R_TX_PACKETS,
  R_WAITING, RING_CTRL_BYTES, SEAL_STOP, SEALED, SLOT_BYTES, TURN,
} from './seal-ring.ts';
import type { SealerData, SealerMessage } from './seal-ring.ts';
import { MSG_CONTROL, MSG_CONTROLLEN, MSG_IOV, MSG_IOVLEN, MSG_NAME, MSG_NAMELEN } from './socket-abi.ts';

interface Sodium {
  crypto_aead_chacha20poly1305_ietf_encrypt_detached(
    c: Uint8Array, mac: Uint8Array, m: Uint8Array, ad: null, nsec: null, npub: Uint8Array, k: Uint8Array,
  ): number;
}

const d = workerData as SealerData;
const post = (m: SealerMessage): void => parentPort!.postMessage(m);
let sodium: Sodium;
try {
  sodium = createRequire(import.meta.url)('sodium-native') as Sodium;
} catch (e) {
  post({ type: 'failed', message: `sodium-native: ${(e as Error).message}` });
  process.exit(1);
}
const lib = libc();
const E = { EAGAIN: errno('EAGAIN'), ENOBUFS: errno('ENOBUFS'), EINVAL: errno('EINVAL'), EADDRNOTAVAIL: errno('EADDRNOTAVAIL'), ENETUNREACH: errno('ENETUNREACH') };
const u8 = new Uint8Array(d.ring);
const i32 = new Int32Array(d.ring);
const ctrl = new Int32Array(d.ring, 0, RING_CTRL_BYTES / 4);
const shared = new Int32Array(d.shared);
const base = lib.addressOf(u8);
const mask = d.slots - 1;
const nonce = new Uint8Array(12);
const nonceView = new DataView(nonce.buffer);
const keys: Uint8Array[] = [];

const slotAt = (s: number): number => RING_CTRL_BYTES + s * SLOT_BYTES;
const setPointer = (at: number, address: number): void => {
  i32[at >> 2] = address % 0x100000000 | 0;
  i32[(at >> 2) + 1] = Math.floor(address / 0x100000000) | 0;
};

// Each slot's msghdr points at that slot's name, iovec and control area once and for all.
for (let s = 0; s < d.slots; s++) {
  const o = slotAt(s);
  setPointer(o + J_MSG + MSG_NAME, base + o + J_NAME);
  setPointer(o + J_MSG + MSG_IOV, base + o + J_IOV);
  setPointer(o + J_MSG + MSG_IOVLEN, 1);
  setPointer(o + J_MSG + MSG_CONTROL, base + o + J_CONTROL);
  setPointer(o + J_IOV, base + o + J_DATA);
  keys.push(u8.subarray(o + J_KEY, o + J_KEY + 32));
}
post({ type: 'ready' });

/**
 * Views of a slot's datagrams (plaintext, tag) for one segment size, kept while the size stays
 * the same (it is the path MTU's nearly always), so sealing allocates nothing per packet; only
 * a job's shorter last datagram gets views of its own.
 */
interface SlotViews { segment: number; texts: Uint8Array[]; tags: Uint8Array[] }
const views: SlotViews[] = [];

function viewsFor(o: number, segment: number, i: number): SlotViews {
  const s = (o - RING_CTRL_BYTES) / SLOT_BYTES;
  let v = views[s];
  if (v === undefined || v.segment !== segment) views[s] = v = { segment, texts: [], tags: [] };
  for (let k = v.texts.length; k <= i; k++) {
    const at = o + J_DATA + k * segment;
    v.texts.push(u8.subarray(at + 16, at + segment - 16));
    v.tags.push(u8.subarray(at + segment - 16, at + segment));
  }
  return v;
}

/** Writes the transport header of every datagram in the job and seals each in place. */
function seal(o: number, count: number, segment: number, bytes: number): void {
  const index = i32[(o + J_INDEX) >> 2]!;
  const lo0 = i32[(o + J_COUNTER_LO) >> 2]! >>> 0;
  const hi0 = i32[(o + J_COUNTER_HI) >> 2]! >>> 0;
  const key = keys[(o - RING_CTRL_BYTES) / SLOT_BYTES]!;
  for (let i = 0, at = o + J_DATA; i < count; i++, at += segment) {
    const len = Math.min(segment, bytes - i * segment);
    const sum = lo0 + i;
    const lo = sum >>> 0;
    const hi = (hi0 + (sum > 0xffffffff ? 1 : 0)) >>> 0;
    const w = at >> 2;
    i32[w] = 4; // MESSAGE_TRANSPORT and three reserved zero bytes
    i32[w + 1] = index;
    i32[w + 2] = lo | 0;
    i32[w + 3] = hi | 0;
    nonceView.setUint32(4, lo, true);
    nonceView.setUint32(8, hi, true);
    const v = len === segment ? viewsFor(o, segment, i) : null;
    const text = v ? v.texts[i]! : u8.subarray(at + 16, at + len - 16);
    sodium.crypto_aead_chacha20poly1305_ietf_encrypt_detached(text, v ? v.tags[i]! : u8.subarray(at + len - 16, at + len), text, null, null, nonce, key);
  }
  key.fill(0);
}

/** One sendmsg of the job's datagrams from `off` (`len` bytes), with `control` bytes of control messages. */
function sendmsg(o: number, fd: number, off: number, len: number, control: number): number {
  setPointer(o + J_IOV, base + o + J_DATA + off);
  i32[(o + J_IOV + 8) >> 2] = len;
  i32[(o + J_MSG + MSG_CONTROLLEN) >> 2] = control;
  i32[(o + J_MSG + MSG_CONTROLLEN + 4) >> 2] = 0;
  return lib.sendmsg(fd, base + o + J_MSG, 0);
}

function send(o: number, seq: number): void {
  const fd = i32[(o + J_FD) >> 2]!;
  const count = i32[(o + J_COUNT) >> 2]!;
  const segment = i32[(o + J_SEGMENT) >> 2]!;
  const bytes = i32[(o + J_BYTES) >> 2]!;
  let control = i32[(o + J_CONTROLLEN) >> 2]!;
  i32[(o + J_MSG + MSG_NAMELEN) >> 2] = i32[(o + J_NAMELEN) >> 2]!;
  const gso = count > 1 && Atomics.load(shared, GSO_OFF) === 0;
  const total = gso ? control + writeSegmentSize(i32, o + J_CONTROL + control, segment) : control;
  if (count === 1 || gso) {
    if (sendmsg(o, fd, 0, bytes, total) >= 0) {
      Atomics.add(ctrl, R_TX_PACKETS, count);
      if (gso) Atomics.add(ctrl, R_GSO_BATCHES, 1);
      return;
    }
    let e = lib.errno();
    if (e === E.EAGAIN || e === E.ENOBUFS) { Atomics.add(ctrl, R_TX_DROPPED, count); return; }
    if (control !== 0 && (e === E.EINVAL || e === E.EADDRNOTAVAIL || e === E.ENETUNREACH)) {
      // The sticky source went away: send from the kernel's choice, and tell the main thread.
      Atomics.add(ctrl, R_SOURCE_CLEARED, 1);
      post({ type: 'sourceRefused', seq, errno: e });
      control = 0;
      const again = gso ? writeSegmentSize(i32, o + J_CONTROL, segment) : 0;
      if (sendmsg(o, fd, 0, bytes, again) >= 0) {
        Atomics.add(ctrl, R_TX_PACKETS, count);
        if (gso) Atomics.add(ctrl, R_GSO_BATCHES, 1);
        return;
      }
      e = lib.errno();
    }
    if (count === 1 || e === E.EAGAIN || e === E.ENOBUFS) {
      Atomics.add(ctrl, e === E.EAGAIN || e === E.ENOBUFS ? R_TX_DROPPED : R_TX_ERRORS, count);
      return;
    }
  }
  // GSO refused (or off): one by one. If they all go, UDP_SEGMENT was the problem.
  let sent = 0;
  for (let i = 0; i < count; i++) {
    const off = i * segment;
    if (sendmsg(o, fd, off, Math.min(segment, bytes - off), control) >= 0) { sent++; continue; }
    const e = lib.errno();
    Atomics.add(ctrl, e === E.EAGAIN || e === E.ENOBUFS ? R_TX_DROPPED : R_TX_ERRORS, 1);
  }
  Atomics.add(ctrl, R_TX_PACKETS, sent);
  if (gso && sent === count && Atomics.compareExchange(shared, GSO_OFF, 0, 1) === 0) Atomics.add(ctrl, R_GSO_REFUSED, 1);
}

let tail = 0;
while (Atomics.load(shared, SEAL_STOP) === 0) {
  if (Atomics.load(ctrl, R_HEAD) === tail) {
    Atomics.store(ctrl, R_WAITING, 1);
    Atomics.wait(ctrl, R_HEAD, tail, 1000);
    Atomics.store(ctrl, R_WAITING, 0);
    continue;
  }
  const o = slotAt(tail & mask);
  const seq = i32[(o + J_SEQ) >> 2]!;
  if ((i32[(o + J_FLAGS) >> 2]! & SEALED) === 0) seal(o, i32[(o + J_COUNT) >> 2]!, i32[(o + J_SEGMENT) >> 2]!, i32[(o + J_BYTES) >> 2]!);
  // Jobs leave in the order they were made, whichever thread sealed them.
  let turn: number;
  while ((turn = Atomics.load(shared, TURN)) !== seq) {
    if (Atomics.load(shared, SEAL_STOP) !== 0) break;
    Atomics.wait(shared, TURN, turn, 100);
  }
  if (turn !== seq) break;
  send(o, seq);
  Atomics.store(shared, TURN, (seq + 1) | 0);
  Atomics.notify(shared, TURN);
  tail = (tail + 1) | 0;
  Atomics.store(ctrl, R_TAIL, tail);
  Atomics.notify(ctrl, R_TAIL);
}
