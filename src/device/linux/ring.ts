/**
 * The shared-memory ring between a reader thread (the TUN reader, the UDP receiver) and the main
 * thread. Items go straight from the kernel into slots of a SharedArrayBuffer (no copy); the
 * reader publishes `head`, the main thread `tail` (both counts of items, wrapping int32), and a
 * slot is the reader's again once `tail` has passed it.
 *
 * Waking: when the main thread has nothing to do it sets WAITING and sleeps in
 * Atomics.waitAsync on HEAD; the reader notifies only when that flag is set, so a busy tunnel
 * pays no wake-up per item. When the ring is full the reader waits for room the same way (the
 * mirror flag READER_WAITING, Atomics.wait on TAIL). STOP asks the reader to stop.
 *
 * The control block is CTRL_BYTES at the start of the buffer; this module owns words 0-3 and
 * TAIL (16, on its own cache line, away from HEAD). Words 4-15 are the user's (FIRST_USER_WORD).
 */

export const HEAD = 0;
const WAITING = 1;
export const STOP = 2;
const READER_WAITING = 3;
/** The first control word free for the ring's user (up to 15). */
export const FIRST_USER_WORD = 4;
export const TAIL = 16;
export const CTRL_BYTES = 128;
/**
 * Bytes handed out per turn of one ring before the main thread yields (timers, I/O and the
 * other ring get a turn): ACKs and pings waiting in the TUN ring must not sit behind a long run
 * of received data in the UDP ring, nor the reverse. Each item counts at least MIN_ITEM_BYTES,
 * so a turn is also at most 512 small items.
 */
export const DRAIN_BYTES = 128 * 1024;
export const MIN_ITEM_BYTES = DRAIN_BYTES / 512;
export const PAGE = 4096;

/** Throws unless `slots` is a power of two in 2..65536. */
export function checkSlots(slots: number): void {
  if (!Number.isInteger(slots) || slots < 2 || slots > 1 << 16 || (slots & (slots - 1)) !== 0) throw new RangeError(`ringSlots must be a power of two in 2..65536, not ${slots}`);
}

/** The control block of a ring buffer. */
export function controlBlock(sab: SharedArrayBuffer): Int32Array {
  return new Int32Array(sab, 0, CTRL_BYTES / 4);
}

// ---------------------------------------------------------------- reader thread

/** Makes items up to `head` visible to the main thread, waking it if it sleeps. */
export function publish(ctrl: Int32Array, head: number): void {
  Atomics.store(ctrl, HEAD, head);
  if (Atomics.load(ctrl, WAITING) !== 0) {
    Atomics.store(ctrl, WAITING, 0);
    Atomics.notify(ctrl, HEAD);
  }
}

/** Sleeps (at most `ms`) until the main thread moves TAIL from `tail`, i.e. frees a slot. */
export function waitForRoom(ctrl: Int32Array, tail: number, ms: number): void {
  Atomics.store(ctrl, READER_WAITING, 1);
  Atomics.wait(ctrl, TAIL, tail, ms);
  Atomics.store(ctrl, READER_WAITING, 0);
}

// ---------------------------------------------------------------- main thread

/** Gives the slots before `tail` back to the reader, waking it if it waits for room. */
export function release(ctrl: Int32Array, tail: number): void {
  Atomics.store(ctrl, TAIL, tail);
  if (Atomics.load(ctrl, READER_WAITING) !== 0) {
    Atomics.store(ctrl, READER_WAITING, 0);
    Atomics.notify(ctrl, TAIL);
  }
}

/** A handler's exception surfaces as an uncaught exception, like an EventEmitter listener's; the ring goes on. */
export function throwLater(e: unknown): void {
  process.nextTick(() => {
    throw e;
  });
}

/** Asks the reader to stop and wakes it if it waits for room (a poll() needs its eventfd too). */
export function stop(ctrl: Int32Array): void {
  Atomics.store(ctrl, STOP, 1);
  Atomics.notify(ctrl, TAIL);
}

interface AtomicsWithWaitAsync {
  waitAsync(array: Int32Array, index: number, value: number, timeoutMs?: number): { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
}
/** Atomics.waitAsync (Node has it; the TypeScript lib this project targets does not declare it). */
export const waitAsync = (Atomics as unknown as AtomicsWithWaitAsync).waitAsync;

/** What the main thread's pump needs from a ring's consumer. */
export interface RingConsumer {
  /**
   * Hands out items in order, releasing each slot, until their bytes (each counting at least
   * MIN_ITEM_BYTES) reach `budget` or the ring is empty; returns the bytes so counted.
   */
  drain(budget: number): number;
  /** False once closed: the pump ends. */
  isOpen(): boolean;
  /** Items consumed so far (the consumer's TAIL). */
  tail(): number;
}

/**
 * Drains the ring on the main thread: yields to the event loop after each full budget, sleeps
 * on HEAD (Atomics.waitAsync) when it is empty, and ends when the consumer closes. A close must
 * notify HEAD so that a pending wait settles.
 */
export function pumpRing(ctrl: Int32Array, consumer: RingConsumer): void {
  const pump = (): void => {
    for (;;) {
      const done = consumer.drain(DRAIN_BYTES);
      if (!consumer.isOpen()) return;
      if (done >= DRAIN_BYTES) {
        setImmediate(pump);
        return;
      }
      Atomics.store(ctrl, WAITING, 1);
      const w = waitAsync(ctrl, HEAD, consumer.tail());
      if (w.async) {
        void w.value.then(pump);
        return;
      }
      // The reader published more while we were getting ready to sleep: go on draining.
    }
  };
  pump();
}
