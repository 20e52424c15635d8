/**
 * The main thread's pump over two rings (src/device/linux/ring.ts): one ring's backlog yields
 * to the other after DRAIN_BYTES, so an ACK or a ping in the TUN ring does not wait behind a
 * long run of received data in the UDP ring (latency under load, issue 15).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CTRL_BYTES, DRAIN_BYTES, HEAD, MIN_ITEM_BYTES, controlBlock, publish, pumpRing } from '../../../src/device/linux/ring.ts';

/** A ring whose items are only sizes: `drain` hands them to `onItem` in order. */
function fakeRing(onItem: (bytes: number) => void) {
  const ctrl = controlBlock(new SharedArrayBuffer(CTRL_BYTES));
  const sizes: number[] = [];
  let tail = 0;
  let open = true;
  return {
    ctrl,
    push(...bytes: number[]): void { sizes.push(...bytes); publish(ctrl, sizes.length); },
    close(): void { open = false; Atomics.notify(ctrl, HEAD); },
    consumer: {
      drain(budget: number): number {
        let done = 0;
        while (open && done < budget && tail < Atomics.load(ctrl, HEAD)) {
          const n = sizes[tail++]!;
          done += Math.max(n, MIN_ITEM_BYTES);
          onItem(n);
        }
        return done;
      },
      isOpen: () => open,
      tail: () => tail,
    },
  };
}

/** Runs a backlog in `udp` while one item arrives in `tun` after the first; bytes of `udp` handled before it. */
async function bytesAheadOfTheTunItem(backlog: number[]): Promise<number> {
  let udpBytes = 0;
  let before = -1;
  let finished = (): void => undefined;
  const done = new Promise<void>((resolve) => { finished = resolve; });
  const tun = fakeRing(() => { before = udpBytes; });
  let handled = 0;
  const udp = fakeRing((n) => {
    udpBytes += n;
    if (++handled === 1) tun.push(60); // an ACK arrives while the backlog is being handled
    if (handled === backlog.length) finished();
  });
  pumpRing(tun.ctrl, tun.consumer);
  udp.push(...backlog);
  pumpRing(udp.ctrl, udp.consumer);
  await done;
  tun.close();
  udp.close();
  return before;
}

describe('pumpRing: two rings share the main thread', () => {
  it('a TUN item waits behind at most one turn of 64 KiB GRO batches, not the whole backlog', async () => {
    const backlog = new Array<number>(400).fill(65_536); // 26 MB of received data
    const ahead = await bytesAheadOfTheTunItem(backlog);
    assert.ok(ahead >= 0, 'the TUN item was handled');
    // Two turns at most: the wake-up of the sleeping TUN pump arrives as a task, which may come
    // after the turn the UDP pump had already queued (setImmediate).
    assert.ok(ahead <= 2 * DRAIN_BYTES + 65_536, `${ahead} bytes of UDP items were handled first`);
  });

  it('and behind at most 512 small items', async () => {
    const backlog = new Array<number>(5000).fill(60);
    const ahead = await bytesAheadOfTheTunItem(backlog);
    assert.ok(ahead >= 0, 'the TUN item was handled');
    assert.ok(ahead / 60 <= 2 * 512, `${ahead / 60} small UDP items were handled first`);
  });
});
