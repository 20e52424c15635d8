/**
 * The UDP receiver thread between opens: it leaves on QUIT even when the notify that goes with
 * QUIT came before it started waiting (a lost wakeup would hang the bind's close()).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { EFD_CLOEXEC, EFD_NONBLOCK, libc, wake } from '../../../src/device/linux/libc.ts';
import { controlBlock, stop } from '../../../src/device/linux/ring.ts';
import { GEN, NFDS, QUIT, udpRingLayout, WAKE_FD } from '../../../src/device/linux/udp-ring.ts';
import type { UdpReceiverData, UdpReceiverMessage } from '../../../src/device/linux/udp-ring.ts';
import { startWorker } from '../../../src/device/worker.ts';

describe('udp-receiver thread', () => {
  it('exits on QUIT without a notify (the notify can come before its wait)', { timeout: 60_000 }, async () => {
    const lib = libc();
    const slots = 4;
    const sab = new SharedArrayBuffer(udpRingLayout(slots).bytes);
    const ctrl = controlBlock(sab);
    const wakeFd = lib.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    assert.ok(wakeFd >= 0, 'eventfd');
    const worker = startWorker('udp-receiver', { name: 'udp-receiver-test', workerData: { sab, gen: 0, slots, batch: 1 } satisfies UdpReceiverData });
    const messages: UdpReceiverMessage[] = [];
    worker.on('message', (m: UdpReceiverMessage) => messages.push(m));
    const errors: unknown[] = [];
    worker.on('error', (e) => errors.push(e));
    const exited = once(worker, 'exit');
    const until = async (what: string, ok: () => boolean): Promise<void> => {
      for (const end = Date.now() + 30_000; !ok(); await sleep(10)) if (Date.now() > end) assert.fail(`timeout: ${what}`);
    };
    try {
      // One open with no sockets, only its eventfd, served and stopped as close() does.
      Atomics.store(ctrl, NFDS, 0);
      Atomics.store(ctrl, WAKE_FD, wakeFd);
      Atomics.store(ctrl, GEN, 1);
      Atomics.notify(ctrl, GEN);
      await until('ready', () => messages.some((m) => m.type === 'ready'));
      stop(ctrl);
      wake(lib, wakeFd);
      await until('stopped', () => messages.some((m) => m.type === 'stopped'));
      await sleep(300); // in its wait for the next open by now
      Atomics.store(ctrl, QUIT, 1); // and no Atomics.notify: as if it had come just before the wait
      const gone = await Promise.race([exited.then(() => true), sleep(5_000).then(() => false)]);
      assert.ok(gone, 'the thread exited');
      assert.deepEqual(errors, [], 'no error');
    } finally {
      await worker.terminate();
      lib.close(wakeFd);
    }
  });
});
