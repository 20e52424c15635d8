/**
 * Transport sealing on worker threads (sealer.ts), the main thread's side. The device takes a
 * packet's counter and key from the core (Endpoint.reserveTransport) and hands the plaintext
 * here; consecutive packets to one endpoint gather into one job (one UDP_SEGMENT sendmsg), and
 * jobs go to whichever sealer has the fewest waiting. Sealers seal in parallel and send in job
 * order (seal-ring.ts TURN), as wireguard-go's parallel encryption keeps a peer's order.
 * Anything else sent while jobs are in flight (handshakes, keepalives) joins the queue already
 * sealed, so nothing overtakes. Rings are small and fixed: when every sealer is full the main
 * thread waits up to FULL_WAIT_MS for room, then drops (counted), as a full queue does.
 */
import type { Worker } from 'node:worker_threads';
import { WireweaveError } from '../../core/errors.ts';
import type { TransportReservation } from '../../core/endpoint.ts';
import type { BindEndpoint } from '../bind.ts';
import { GSO_MAX_SEGMENTS } from './gso.ts';
import {
  J_BYTES, J_CONTROL, J_CONTROLLEN, J_COUNT, J_COUNTER_HI, J_COUNTER_LO, J_DATA, J_FD, J_FLAGS, J_INDEX, J_KEY, J_NAME, J_NAMELEN, J_SEGMENT,
  J_SEQ, JOB_DATA_BYTES, R_GSO_BATCHES, R_GSO_REFUSED, R_HEAD, R_SOURCE_CLEARED, R_TAIL, R_TX_DROPPED, R_TX_ERRORS, R_TX_PACKETS, R_WAITING,
  RING_CTRL_BYTES, ringBytes, SEAL_STOP, SEALED, SHARED_BYTES, SLOT_BYTES, TURN,
} from './seal-ring.ts';
import type { SealerData, SealerMessage, SendCounters } from './seal-ring.ts';
import { SOCKADDR_IN, SOCKADDR_IN6 } from './socket-abi.ts';
import { waitAsync } from './ring.ts';
import { startWorker } from '../worker.ts';

/** Jobs a sealer may hold: 8 of up to 64 KiB bound its memory and the delay a queue adds (~2 ms at 2 Gbit/s). */
export const DEFAULT_SEAL_SLOTS = 8;
const FULL_WAIT_MS = 2;
const DRAIN_WAIT_MS = 2000;

/** Writes msg_name at `nameAt` and the source control message at `controlAt`; returns the control length. */
export type HeaderWriter = (to: BindEndpoint, b: Uint8Array, w: Int32Array, nameAt: number, controlAt: number) => number;

interface Sealer {
  worker: Worker;
  u8: Uint8Array;
  i32: Int32Array;
  ctrl: Int32Array;
  head: number;
}

export class SealPipeline {
  private readonly sealers: Sealer[] = [];
  private readonly shared = new Int32Array(new SharedArrayBuffer(SHARED_BYTES));
  private readonly slots: number;
  private readonly writeHeader: HeaderWriter;
  private readonly onSourceRefused: (to: BindEndpoint, errno: number) => void;
  /** The endpoint of each job in flight, by sequence number, for a sealer's source refusal. */
  private readonly jobTo: (BindEndpoint | null)[];
  private nextSeq = 0;
  /** The job being filled: its sealer (-1: none) and what the next packet must match. */
  private readonly job = { sealer: -1, at: 0, to: null as BindEndpoint | null, fd: -1, count: 0, bytes: 0, segment: 0, short: false, sealed: false, index: 0, lo: 0, hi: 0 };
  private flushQueued = false;
  private failed = false;
  private mainDropped = 0;
  private exited: Promise<void>[] = [];

  constructor(workers: number, slots: number, writeHeader: HeaderWriter, onSourceRefused: (to: BindEndpoint, errno: number) => void) {
    this.slots = slots;
    this.writeHeader = writeHeader;
    this.onSourceRefused = onSourceRefused;
    let n = 1;
    while (n < workers * slots * 2) n <<= 1;
    this.jobTo = new Array<BindEndpoint | null>(n).fill(null);
    for (let i = 0; i < workers; i++) {
      const ring = new SharedArrayBuffer(ringBytes(slots));
      const data: SealerData = { ring, shared: this.shared.buffer as SharedArrayBuffer, slots };
      const worker = startWorker('sealer', { name: `sealer ${i}`, workerData: data });
      worker.unref();
      this.sealers.push({ worker, u8: new Uint8Array(ring), i32: new Int32Array(ring), ctrl: new Int32Array(ring, 0, RING_CTRL_BYTES / 4), head: 0 });
      this.exited.push(new Promise((resolve) => worker.once('exit', () => resolve())));
    }
  }

  /** Resolves once every sealer has loaded libsodium; rejects (and stops them) if one cannot. */
  async ready(): Promise<void> {
    try {
      await Promise.all(this.sealers.map((s) => new Promise<void>((resolve, reject) => {
        const onMessage = (m: SealerMessage): void => {
          if (m.type === 'ready') resolve();
          else if (m.type === 'failed') reject(new WireweaveError('ERR_SEAL_THREADS', m.message));
        };
        s.worker.on('message', onMessage);
        s.worker.once('error', reject);
        s.worker.once('exit', () => reject(new WireweaveError('ERR_SEAL_THREADS', 'a sealing thread exited')));
      })));
    } catch (e) {
      await this.stop();
      throw e;
    }
    for (const s of this.sealers) {
      s.worker.removeAllListeners('message');
      s.worker.removeAllListeners('error');
      s.worker.on('message', (m: SealerMessage) => this.onMessage(m));
      s.worker.on('error', () => { this.failed = true; });
      s.worker.once('exit', () => { this.failed = true; });
    }
  }

  /** False once a sealer died: the sender goes back to sealing on the main thread. */
  get usable(): boolean {
    return !this.failed;
  }

  /** Jobs are open or in flight: a datagram sent now must queue behind them. */
  get busy(): boolean {
    return this.job.sealer >= 0 || Atomics.load(this.shared, TURN) !== this.nextSeq;
  }

  /**
   * Queues one transport message: `packet` padded to `padded` bytes, sealed with the
   * reservation's key and counter, to `to` on socket `fd`.
   */
  sendTransport(fd: number, to: BindEndpoint, packet: Uint8Array, padded: number, r: Readonly<TransportReservation>): void {
    const size = 32 + padded;
    const j = this.job;
    if (j.sealer >= 0 && !(j.to === to && j.fd === fd && !j.sealed && !j.short && size <= j.segment && j.count < GSO_MAX_SEGMENTS &&
      j.bytes + size <= JOB_DATA_BYTES && j.index === r.remoteIndex && j.hi === r.counterHi && j.lo + j.count === r.counterLo)) this.publish();
    if (j.sealer < 0) {
      if (!this.open(fd, to, false)) { this.mainDropped++; return; }
      const s = this.sealers[j.sealer]!;
      j.segment = size; j.index = r.remoteIndex; j.lo = r.counterLo; j.hi = r.counterHi;
      s.u8.set(r.sendKey, j.at + J_KEY);
    }
    const u8 = this.sealers[j.sealer]!.u8;
    const at = j.at + J_DATA + j.bytes + 16;
    u8.set(packet, at);
    u8.fill(0, at + packet.length, at + padded);
    j.bytes += size;
    j.count++;
    if (size < j.segment) j.short = true; // only the last datagram may be shorter
  }

  /** Queues a datagram that is sealed already, behind the jobs in flight. */
  sendSealed(fd: number, to: BindEndpoint, datagram: Uint8Array): void {
    if (datagram.length > JOB_DATA_BYTES) { this.mainDropped++; return; }
    this.publish();
    if (!this.open(fd, to, true)) { this.mainDropped++; return; }
    const j = this.job;
    this.sealers[j.sealer]!.u8.set(datagram, j.at + J_DATA);
    j.bytes = j.segment = datagram.length;
    j.count = 1;
    this.publish();
  }

  /** Starts a job in the sealer with the fewest waiting; false when all stayed full. */
  private open(fd: number, to: BindEndpoint, sealed: boolean): boolean {
    let best = -1, least = Infinity;
    for (let i = 0; i < this.sealers.length; i++) {
      const s = this.sealers[i]!;
      const waiting = (s.head - Atomics.load(s.ctrl, R_TAIL)) | 0;
      if (waiting < least) { least = waiting; best = i; }
    }
    const s = this.sealers[best]!;
    if (least >= this.slots) {
      // Every ring is full: wait briefly for this one (the sealers push back on the TUN reader).
      const tail = Atomics.load(s.ctrl, R_TAIL);
      if (((s.head - tail) | 0) >= this.slots) Atomics.wait(s.ctrl, R_TAIL, tail, FULL_WAIT_MS);
      if (((s.head - Atomics.load(s.ctrl, R_TAIL)) | 0) >= this.slots) return false;
    }
    const j = this.job;
    j.sealer = best;
    j.at = RING_CTRL_BYTES + (s.head & (this.slots - 1)) * SLOT_BYTES;
    j.to = to; j.fd = fd; j.count = 0; j.bytes = 0; j.short = false; j.sealed = sealed;
    const i32 = s.i32;
    i32[(j.at + J_CONTROLLEN) >> 2] = this.writeHeader(to, s.u8, i32, j.at + J_NAME, j.at + J_CONTROL);
    i32[(j.at + J_NAMELEN) >> 2] = to.family === 4 ? SOCKADDR_IN : SOCKADDR_IN6;
    i32[(j.at + J_FD) >> 2] = fd;
    if (!sealed && !this.flushQueued) { this.flushQueued = true; queueMicrotask(this.flushTask); }
    return true;
  }

  private readonly flushTask = (): void => {
    this.flushQueued = false;
    this.publish();
  };

  /** Hands the job being filled to its sealer. */
  publish(): void {
    const j = this.job;
    if (j.sealer < 0) return;
    const s = this.sealers[j.sealer]!;
    j.sealer = -1;
    const i32 = s.i32;
    const seq = this.nextSeq;
    this.nextSeq = (seq + 1) | 0;
    this.jobTo[seq & (this.jobTo.length - 1)] = j.to;
    i32[(j.at + J_SEQ) >> 2] = seq;
    i32[(j.at + J_COUNT) >> 2] = j.count;
    i32[(j.at + J_BYTES) >> 2] = j.bytes;
    i32[(j.at + J_SEGMENT) >> 2] = j.segment;
    i32[(j.at + J_FLAGS) >> 2] = j.sealed ? SEALED : 0;
    i32[(j.at + J_INDEX) >> 2] = j.index;
    i32[(j.at + J_COUNTER_LO) >> 2] = j.lo;
    i32[(j.at + J_COUNTER_HI) >> 2] = j.hi;
    j.to = null;
    s.head = (s.head + 1) | 0;
    Atomics.store(s.ctrl, R_HEAD, s.head);
    if (Atomics.load(s.ctrl, R_WAITING) !== 0) Atomics.notify(s.ctrl, R_HEAD);
  }

  /** Publishes what is open and resolves once every job has been sent (or after DRAIN_WAIT_MS). */
  async drained(): Promise<void> {
    this.publish();
    const until = Date.now() + DRAIN_WAIT_MS;
    for (;;) {
      const turn = Atomics.load(this.shared, TURN);
      if (turn === this.nextSeq || this.failed || Date.now() >= until) return;
      const w = waitAsync(this.shared, TURN, turn, 50);
      if (w.async) await w.value;
    }
  }

  /** Adds what the sealing threads counted (and the jobs dropped here) to `c`. */
  addCountersTo(c: SendCounters): void {
    c.txDropped += this.mainDropped;
    for (const { ctrl } of this.sealers) {
      c.txPackets += Atomics.load(ctrl, R_TX_PACKETS);
      c.txDropped += Atomics.load(ctrl, R_TX_DROPPED);
      c.txErrors += Atomics.load(ctrl, R_TX_ERRORS);
      c.sourceCleared += Atomics.load(ctrl, R_SOURCE_CLEARED);
      c.gsoBatches += Atomics.load(ctrl, R_GSO_BATCHES);
      c.gsoRefused += Atomics.load(ctrl, R_GSO_REFUSED);
    }
  }

  private onMessage(m: SealerMessage): void {
    if (m.type !== 'sourceRefused') return;
    const to = this.jobTo[m.seq & (this.jobTo.length - 1)];
    if (to) this.onSourceRefused(to, m.errno);
  }

  /** Stops the sealers (after draining, when asked to) and wipes the rings (keys of unsent jobs). */
  async stop(): Promise<void> {
    this.failed = true;
    Atomics.store(this.shared, SEAL_STOP, 1);
    Atomics.notify(this.shared, TURN);
    for (const s of this.sealers) Atomics.notify(s.ctrl, R_HEAD);
    await Promise.all(this.exited);
    for (const s of this.sealers) s.u8.fill(0);
  }
}
