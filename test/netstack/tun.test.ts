/**
 * NetstackTun: the stack as the device's TUN. A scripted stack checks what the TUN promises:
 * tunnel packets reach the stack as private copies after the device's call returned, stack
 * output reaches the device's handler, and one timer follows nextDeadline().
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/device/clock.ts';
import { NetstackTun } from '../../src/netstack/tun.ts';
import type { TcpIpStackApi, StackIO } from '../../src/netstack/stack/types.ts';

class ScriptedStack {
  readonly inputs: { packet: Uint8Array; now: number }[] = [];
  readonly ticks: number[] = [];
  deadline = Infinity;
  io: StackIO;
  /** What input does besides recording: by default echo the packet back. */
  onInput: (p: Uint8Array) => void = (p) => this.io.output(p);
  constructor(io: StackIO) { this.io = io; }
  counters = {};
  /** begin/input/end calls in order. */
  readonly calls: string[] = [];
  input(packet: Uint8Array, now: number): void { this.calls.push('input'); this.inputs.push({ packet, now }); this.onInput(packet); }
  beginInputBurst(): void { this.calls.push('begin'); }
  endInputBurst(): void { this.calls.push('end'); }
  tick(now: number): void { this.ticks.push(now); this.deadline = Infinity; }
  nextDeadline(): number { return this.deadline; }
}

function make(clock = new ManualClock()): { tun: NetstackTun; stack: ScriptedStack; clock: ManualClock } {
  let stack!: ScriptedStack;
  const tun = new NetstackTun({ clock, createStack: (io) => (stack = new ScriptedStack(io)) as unknown as TcpIpStackApi });
  return { tun, stack, clock };
}

const flush = async () => { for (let i = 0; i < 5; i++) await Promise.resolve(); };

describe('NetstackTun', () => {
  it('feeds tunnel packets to the stack later, as copies, and hands stack output to the device', async () => {
    const { tun, stack } = make();
    const seen: number[][] = [];
    tun.start((p) => seen.push([...p]));
    const buf = Uint8Array.of(0x45, 1, 2, 3);
    assert.equal(tun.write(buf), true, 'write accepted');
    assert.equal(stack.inputs.length, 0, 'not fed inside the device call');
    buf.fill(0); // the device reuses its buffer
    await flush();
    assert.equal(stack.inputs.length, 1, 'fed after a microtask');
    assert.deepEqual([...stack.inputs[0]!.packet], [0x45, 1, 2, 3], 'the stack got a private copy');
    assert.deepEqual(seen, [[0x45, 1, 2, 3]], 'the echo went to the device');
    assert.equal(tun.counters.input, 1, 'input counted');
    assert.equal(tun.counters.output, 1, 'output counted');
  });

  it('feeds the packets of one drain to the stack as one input burst', async () => {
    const { tun, stack } = make();
    tun.start(() => {});
    for (let i = 0; i < 3; i++) tun.write(Uint8Array.of(0x45, i));
    await flush();
    tun.write(Uint8Array.of(0x45, 9));
    await flush();
    assert.deepEqual(stack.calls, ['begin', 'input', 'input', 'input', 'end', 'begin', 'input', 'end']);
  });

  it('drops stack output before start and tunnel packets beyond the queue limit', async () => {
    let stack!: ScriptedStack;
    const tun = new NetstackTun({ clock: new ManualClock(), queueLimit: 2, createStack: (io) => (stack = new ScriptedStack(io)) as unknown as TcpIpStackApi });
    stack.io.output(Uint8Array.of(1));
    assert.equal(tun.counters.outputDropped, 1, 'output before start is dropped');
    tun.start(() => {});
    assert.equal(tun.write(Uint8Array.of(1)), true, 'first queued');
    assert.equal(tun.write(Uint8Array.of(2)), true, 'second queued');
    assert.equal(tun.write(Uint8Array.of(3)), false, 'third dropped');
    assert.equal(tun.counters.inputDropped, 1, 'drop counted');
    await flush();
    assert.equal(stack.inputs.length, 2, 'two fed');
  });

  it('ticks the stack at its deadline with one timer, and stops on close', async () => {
    const { tun, stack, clock } = make();
    tun.start(() => {});
    stack.deadline = 100;
    tun.poke();
    await clock.advance(99);
    assert.deepEqual(stack.ticks, [], 'not yet');
    await clock.advance(1);
    assert.deepEqual(stack.ticks, [100], 'ticked at the deadline');
    stack.deadline = 250;
    tun.poke();
    await tun.close();
    await clock.advance(500);
    assert.deepEqual(stack.ticks, [100], 'no tick after close');
    assert.equal(tun.write(Uint8Array.of(1)), false, 'closed: writes refused');
  });

  it('a stack that throws loses one packet, not the ones queued behind it', async () => {
    const { tun, stack } = make();
    tun.start(() => {});
    stack.onInput = (p) => { if (p[0] === 1) throw new Error('boom'); };
    tun.write(Uint8Array.of(1));
    tun.write(Uint8Array.of(2));
    await flush();
    assert.equal(stack.inputs.length, 2, 'the second packet still reached the stack');
    assert.equal(tun.counters.stackErrors, 1, 'the throw was counted');
  });
});
