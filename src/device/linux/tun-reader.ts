/**
 * The TUN reader thread (started by tun.ts through worker.ts; workerData: TunReaderData). It
 * loops read() until EAGAIN, each packet straight into the next ring slot, then poll()s the TUN
 * fd and the eventfd close() wakes it with. When the ring is full it waits for room at most
 * `fullWaitMs`, during which the kernel's own queue (txqueuelen) holds the burst; if the main
 * thread is still stalled it reads on into a scratch buffer and drops, counting DROPPED, so the
 * kernel is never held up for long. It posts { type: 'deleted' } on POLLERR/POLLHUP/POLLNVAL
 * and { type: 'error', errno } when a read or poll fails, and returns when STOP is set.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { libc, POLLBAD, POLLFD_SIZE, POLLIN } from './libc.ts';
import { controlBlock, HEAD, publish, STOP, TAIL, waitForRoom } from './ring.ts';
import { DROPPED, TUN_SLOT_SIZE, tunDataOffset, tunLengths } from './tun-ring.ts';
import type { TunReaderData, TunReaderMessage } from './tun-ring.ts';
import { errno } from '../errno.ts';

const d = workerData as TunReaderData;
const lib = libc();
const EAGAIN = errno('EAGAIN');
const EINTR = errno('EINTR');
const ctrl = controlBlock(d.sab);
const lens = tunLengths(d.sab, d.slots);
const dataOffset = tunDataOffset(d.slots);
const views: Uint8Array[] = [];
for (let i = 0; i < d.slots; i++) views.push(new Uint8Array(d.sab, dataOffset + i * TUN_SLOT_SIZE, TUN_SLOT_SIZE));
const scratch = new Uint8Array(TUN_SLOT_SIZE);
// Two struct pollfd: the TUN, then the eventfd.
const pfdBuf = new ArrayBuffer(2 * POLLFD_SIZE);
const pfd32 = new Int32Array(pfdBuf);
const pfd16 = new Int16Array(pfdBuf);
const pfd = new Uint8Array(pfdBuf);
pfd32[0] = d.fd; pfd16[2] = POLLIN; pfd32[2] = d.wakeFd; pfd16[6] = POLLIN;
const mask = d.slots - 1;

function post(m: TunReaderMessage): void {
  parentPort!.postMessage(m);
}

function run(): void {
  let head = Atomics.load(ctrl, HEAD);
  let fullSince = -1;
  for (;;) {
    if (Atomics.load(ctrl, STOP) !== 0) return;
    const tail = Atomics.load(ctrl, TAIL);
    const full = ((head - tail) | 0) >= d.slots;
    if (!full) fullSince = -1;
    else {
      // Ring full: give the main thread up to fullWaitMs, then read on and drop until it frees a slot.
      const now = performance.now();
      if (fullSince < 0) fullSince = now;
      const left = d.fullWaitMs - (now - fullSince);
      if (left > 0) {
        waitForRoom(ctrl, tail, left);
        continue;
      }
    }
    const slot = head & mask;
    const n = lib.read(d.fd, full ? scratch : views[slot]!, TUN_SLOT_SIZE);
    if (n > 0) {
      if (full) { Atomics.add(ctrl, DROPPED, 1); continue; }
      lens[slot] = n;
      head = (head + 1) | 0;
      publish(ctrl, head);
      continue;
    }
    if (n === 0) continue;
    const e = lib.errno();
    if (e === EINTR) continue;
    if (e !== EAGAIN) { post({ type: 'error', errno: e }); return; }
    pfd16[3] = 0; pfd16[7] = 0;
    if (lib.poll(pfd, 2, -1) < 0) {
      const pe = lib.errno();
      if (pe === EINTR) continue;
      post({ type: 'error', errno: pe });
      return;
    }
    if ((pfd16[3]! & POLLBAD) !== 0) { post({ type: 'deleted' }); return; }
  }
}

run();
