/**
 * relay() (src/netstack/relay.ts) over random interleavings of writes, ends, slow deliveries and
 * closes (fast-check), on a model of two duplex ends: each end is a Duplex whose readable side
 * its peer feeds and whose writable side completes only when the test lets a write reach the
 * peer (a full network or a slow reader). Properties, per direction:
 * - once the writer ended and nothing was cut, every byte it wrote arrives, then exactly one end;
 * - an end is never seen more than once, and never after a short stream (a cut stream is a reset).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import fc from 'fast-check';
import { relay } from '../../src/netstack/relay.ts';

/** One end of the relay as the relay sees it, with the remote peer's view alongside. */
class ModelEnd extends Duplex {
  /** Bytes the peer wrote into this end (the relay reads them). */
  readonly written: number[] = [];
  /** Bytes the relay wrote through this end that reached the peer. */
  readonly arrived: number[] = [];
  ends = 0;
  resets = 0;
  peerEnded = false;
  private readonly writes: { chunk: Buffer; callback: (e?: Error | null) => void }[] = [];
  private finalCallback: ((e?: Error | null) => void) | null = null;
  private nextByte: number;

  constructor(seed: number) {
    super({ allowHalfOpen: true });
    this.nextByte = seed;
  }

  peerWrite(n: number): void {
    if (this.peerEnded || this.destroyed) return;
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) { b[i] = this.nextByte & 0xff; this.written.push(this.nextByte & 0xff); this.nextByte++; }
    this.push(b);
  }

  peerEnd(): void {
    if (this.peerEnded || this.destroyed) return;
    this.peerEnded = true;
    this.push(null);
  }

  /** Lets up to `n` queued writes reach the peer (and the end, if it is next). */
  deliver(n: number): void {
    for (let i = 0; i < n; i++) {
      const w = this.writes.shift();
      if (!w) break;
      for (const byte of w.chunk) this.arrived.push(byte);
      w.callback();
    }
    if (this.writes.length === 0 && this.finalCallback) {
      const cb = this.finalCallback;
      this.finalCallback = null;
      this.ends++;
      cb();
    }
  }

  /** The peer resets the connection. */
  peerReset(): void {
    this.destroy(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }));
  }

  resetAndDestroy(): this {
    this.resets++;
    this.writes.length = 0;
    this.finalCallback = null;
    return this.destroy();
  }

  override _read(): void {}

  override _write(chunk: Buffer, _e: BufferEncoding, callback: (e?: Error | null) => void): void {
    this.writes.push({ chunk, callback });
  }

  override _final(callback: (e?: Error | null) => void): void {
    this.finalCallback = callback;
    this.deliver(0);
  }

  override _destroy(error: Error | null, callback: (e?: Error | null) => void): void {
    // Destroyed without a reset: like close(2) on a kernel socket, what reached the peer is
    // followed by a FIN. That is exactly the truncation the properties look for.
    if (this.resets === 0 && !error && this.ends === 0) {
      this.writes.length = 0;
      this.ends++;
    }
    callback(error);
  }
}

type Action =
  | { t: 'write'; side: 0 | 1; n: number }
  | { t: 'end'; side: 0 | 1 }
  | { t: 'deliver'; side: 0 | 1; n: number }
  | { t: 'tick' }
  | { t: 'reset'; side: 0 | 1 };

const side = fc.constantFrom<0 | 1>(0, 1);
const action = (withResets: boolean): fc.Arbitrary<Action> => fc.oneof(
  { weight: 5, arbitrary: fc.record({ t: fc.constant('write' as const), side, n: fc.integer({ min: 1, max: 40_000 }) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('end' as const), side }) },
  { weight: 5, arbitrary: fc.record({ t: fc.constant('deliver' as const), side, n: fc.integer({ min: 0, max: 4 }) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('tick' as const) }) },
  { weight: withResets ? 1 : 0, arbitrary: fc.record({ t: fc.constant('reset' as const), side }) },
);

const tick = () => new Promise<void>((r) => setImmediate(r));

async function run(actions: Action[], finish: boolean): Promise<{ ends: ModelEnd[]; cut: boolean }> {
  const ends = [new ModelEnd(0), new ModelEnd(128)];
  relay(ends[0]!, ends[1]!);
  let cut = false;
  for (const a of actions) {
    const e = a.t === 'tick' ? undefined : ends[a.side]!;
    if (a.t === 'write') e!.peerWrite(a.n);
    else if (a.t === 'end') e!.peerEnd();
    else if (a.t === 'deliver') e!.deliver(a.n);
    else if (a.t === 'reset') { if (!e!.destroyed) cut = true; e!.peerReset(); }
    else await tick();
  }
  if (finish) {
    // Both peers end and then read everything: a graceful finish in whatever state we are in.
    for (const e of ends) e.peerEnd();
    for (let i = 0; i < 200; i++) {
      for (const e of ends) e.deliver(1000);
      await tick();
    }
  } else {
    for (let i = 0; i < 20; i++) await tick();
  }
  return { ends, cut };
}

function check(ends: ModelEnd[], cut: boolean, finished: boolean): void {
  for (const [from, to] of [[ends[0]!, ends[1]!], [ends[1]!, ends[0]!]] as const) {
    assert.ok(to.ends <= 1, 'an end is passed on at most once');
    if (to.ends === 1) {
      assert.ok(from.peerEnded, 'an end only after the writer ended');
      assert.equal(to.arrived.length, from.written.length, 'an end only after every byte');
      assert.deepEqual(Buffer.from(to.arrived), Buffer.from(from.written), 'the bytes, in order');
    }
    // Whatever arrived is a prefix of what was written.
    assert.deepEqual(Buffer.from(to.arrived), Buffer.from(from.written.slice(0, to.arrived.length)), 'a prefix');
    if (finished && !cut) {
      assert.equal(to.ends, 1, 'graceful: the end arrives');
      assert.equal(to.resets, 0, 'graceful: no reset');
      assert.equal(to.arrived.length, from.written.length, 'graceful: every byte arrives');
    }
  }
}

describe('relay() over random interleavings (property)', () => {
  it('graceful runs: all bytes written before an end arrive, and the end exactly once', { timeout: 120_000 }, async () => {
    await fc.assert(fc.asyncProperty(fc.array(action(false), { maxLength: 60 }), async (actions) => {
      const { ends, cut } = await run(actions, true);
      check(ends, cut, true);
    }), { numRuns: 300 });
  });

  it('with resets: never a clean end at a short offset; the other side is reset instead', { timeout: 120_000 }, async () => {
    await fc.assert(fc.asyncProperty(fc.array(action(true), { maxLength: 60 }), async (actions) => {
      const { ends, cut } = await run(actions, false);
      check(ends, cut, false);
      if (cut) for (const e of ends) assert.ok(e.destroyed, 'a cut tears down both sides');
    }), { numRuns: 300 });
  });
});
